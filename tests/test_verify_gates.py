"""verify-skill with real ruff, mypy and pytest on generated skills.

The good write_note passes every gate; each defect fails exactly the right gate with
a readable `file:line` finding; when a static gate fails the test file never runs.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from support.forge import git, kavi, kavi_json, make_forge, propose_write_note
from support.variants import write_variant

pytestmark = pytest.mark.slow


def _verify_variant(tmp_path: Path, name: str) -> tuple[Path, int, dict]:
    repo = make_forge(tmp_path)
    src = write_variant(tmp_path / f"variant-{name}", name)
    pid = propose_write_note(repo)
    build = kavi_json("build-skill", pid, "--backend", "files", "--from", str(src), cwd=repo)
    assert build["status"] == "SUCCEEDED", build
    res = kavi("verify-skill", pid, "--format", "json", cwd=repo)
    return repo, res.code, res.json


def _failed(result: dict) -> set[str]:
    return {name for name, g in result["gates"].items() if not g["ok"] and not g["skipped"]}


def test_good_skill_passes_every_gate(tmp_path: Path) -> None:
    repo, code, v = _verify_variant(tmp_path, "good")
    assert code == 0, v
    assert v["status"] == "PASSED"
    assert set(v["gates"]) == {"scope", "policy", "invariants", "ruff", "mypy", "pytest"}
    assert all(g["ok"] and not g["findings"] for g in v["gates"].values())
    assert v["proposal_status"] == "VERIFIED"
    build_commit = git(
        "rev-parse", f"{kavi_json('show', v['proposal_id'], cwd=repo)['builds'][0]['branch_name']}", cwd=repo
    )
    assert v["commit"] == build_commit
    assert v["tree"] == git("rev-parse", f"{build_commit}^{{tree}}", cwd=repo)
    for gate in ("ruff", "mypy", "pytest"):
        assert v["gates"][gate]["tool_version"].startswith(gate)
    report = (repo / v["report"]).read_text()
    assert "| pytest | passed |" in report
    # the mypy cache lives under the git dir
    assert (repo / ".git/kavi/mypy-cache").is_dir()


EXPECTED = {
    "eval_in_skill": ("policy", "skills/write_note.py:"),
    "subprocess_in_test": ("policy", "tests/test_skill_write_note.py:"),
    "type_error": ("mypy", "skills/write_note.py:"),
    "lint_error": ("ruff", "skills/write_note.py:"),
    "wrong_side_effect": ("invariants", "side_effect_class"),
    "schema_mismatch": ("invariants", "tags"),
    "failing_test": ("pytest", "tests/test_skill_write_note.py:"),
    "socket_at_runtime": ("pytest", "runtime guard"),
    "process_at_runtime": ("pytest", "runtime guard"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_defect_fails_exactly_the_right_gate(tmp_path: Path, name: str) -> None:
    gate, fragment = EXPECTED[name]
    _repo, code, v = _verify_variant(tmp_path, name)
    assert code == 1
    assert v["status"] == "FAILED"
    assert v["proposal_status"] == "BUILT"
    assert _failed(v) == {gate}, v["gates"]
    findings = v["gates"][gate]["findings"]
    assert findings and any(fragment in f for f in findings), findings
    # findings are readable `file:line` strings
    assert all(":" in f.split(" ")[0] for f in findings if f.startswith(("skills/", "tests/")))
    if gate in ("policy", "invariants"):
        assert v["gates"]["pytest"]["skipped"], "pytest must not run after a failed static gate"


class PytestProbe:
    """Detects, without mocks and from outside any confinement, whether Kavi started
    pytest on generated tests below ``root``: it watches the host's process table."""

    def __init__(self, root: Path) -> None:
        self.marker = str(root).encode()
        self.seen = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set() and not self.seen:
            for pid in (p for p in os.listdir("/proc") if p.isdigit()):
                try:
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                except OSError:
                    continue
                if b"kavi.policy.pytest_guard" in cmdline and self.marker in cmdline:
                    self.seen = True
            time.sleep(0.002)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def test_test_file_never_runs_when_a_static_gate_fails(tmp_path: Path) -> None:
    # positive control: the detector sees pytest run when the static gates pass
    control = PytestProbe(tmp_path)
    _, code, v = _verify_variant(tmp_path / "control", "good")
    control.stop()
    assert code == 0, v["gates"]
    assert control.seen, "the probe detector did not see the tests run"
    # an eval in the skill: the policy gate fails, pytest never starts
    probe = PytestProbe(tmp_path)
    _, code, v = _verify_variant(tmp_path / "case", "eval_in_skill")
    time.sleep(0.2)
    probe.stop()
    assert code == 1 and _failed(v) == {"policy"}
    assert v["gates"]["pytest"]["skipped"]
    assert not probe.seen, "the test file was executed although a static gate failed"


def test_verify_refuses_unbuilt_proposal(tmp_path: Path) -> None:
    repo = make_forge(tmp_path)
    pid = propose_write_note(repo)
    res = kavi("verify-skill", pid, "--format", "json", cwd=repo)
    assert res.code == 1
    assert "build-skill" in res.json["remedy"]


def test_check_invariants_standalone(tmp_path: Path) -> None:
    repo = make_forge(tmp_path)
    src = write_variant(tmp_path / "v", "wrong_side_effect")
    pid = propose_write_note(repo)
    kavi_json("build-skill", pid, "--backend", "files", "--from", str(src), cwd=repo)
    res = kavi("check-invariants", pid, "--format", "json", cwd=repo)
    assert res.code == 1
    assert any("side_effect_class is READ_ONLY" in f for f in res.json["findings"])
