"""Where the kernel offers no namespaces (macOS, locked-down CI): forced here with
``KAVI_TEST_NO_NAMESPACES=1``, which only takes confinement away and is recorded.

READ_ONLY and FILE_WRITE skills then run under the in-process guard alone, which also
confines reads (and the child gets only its own environment); NETWORK skills are refused
unless their runtime rule says ``confine: off`` (unquoted YAML works); every run record
and verification says how it ran. ``confine: off`` also runs a skill without namespaces
where they exist, and ``confine: required`` refuses to run without them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from support.forge import WRITE_NOTE_DIR, git, kavi, kavi_json, propose_write_note
from support.hostile import OPENAI, OTHER, TOKEN, everything_stored

pytestmark = pytest.mark.slow

GUARD_ONLY = "confinement: none: namespaces switched off (KAVI_TEST_NO_NAMESPACES=1)"


def _run(repo: Path, name: str, payload: dict[str, object]) -> tuple[int, dict]:
    res = kavi("run-skill", name, "--json", json.dumps(payload), "--format", "json", cwd=repo)
    return res.code, res.json


def _last_record(repo: Path) -> str:
    records = sorted(
        (repo / "vault_out" / "kavi" / "run_record").glob("*.md"), key=lambda p: p.stat().st_mtime
    )
    return records[-1].read_text()


def _set_network_confine(repo: Path, text: str) -> None:
    """Rewrite the NETWORK rule's ``confine`` as raw YAML text (``off`` unquoted)."""
    path = repo / ".kavi" / "policy.yaml"
    policy = yaml.safe_load(path.read_text())
    for rule in policy["runtime"]["rules"]:
        if rule["match"]["side_effect"] == "NETWORK":
            rule["confine"] = "__CONFINE__"
    path.write_text(yaml.safe_dump(policy, sort_keys=False).replace("__CONFINE__", text))
    git("commit", "-q", "-S", "-am", f"network skills: confine {text}", cwd=path.parents[1])


@pytest.fixture
def no_namespaces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAVI_TEST_NO_NAMESPACES", "1")


def test_read_only_and_file_write_run_under_the_guard(
    hostile: Path, isolated_env: Path, no_namespaces: None
) -> None:
    notes = hostile / "vault_out" / "notes"
    notes.mkdir(parents=True)
    (notes / "hello.md").write_text("hello\n")
    code, out = _run(hostile, "read_file", {"path": "notes/hello.md"})
    assert code == 0 and out["output"]["text"] == "hello\n", json.dumps(out)
    assert GUARD_ONLY in _last_record(hostile)
    assert "the runtime guard confines reads, writes and network in-process" in _last_record(hostile)
    for path in (str(isolated_env / ".ssh" / "id_ed25519"), "../.git/config", "/proc/self/environ"):
        code, err = _run(hostile, "read_file", {"path": path})
        assert code == 1 and err["code"] == "KAVI-GUARD" and "read outside read roots" in err["message"], err
    code, out = _run(hostile, "write_any", {"path": "notes/ok.md", "body": "fine"})
    assert code == 0 and (notes / "ok.md").read_text() == "fine", out
    code, err = _run(hostile, "write_any", {"path": "kavi/planted.md", "body": "pwned"})
    assert code == 1 and err["code"] == "KAVI-GUARD", err
    assert not (hostile / "vault_out" / "kavi" / "planted.md").exists()
    code, out = _run(hostile, "use_token", {"note": "x"})
    assert code == 0 and out["output"]["raw"] == "[REDACTED]", out
    stored = everything_stored(hostile)
    assert "theusersprivatekey" not in stored and all(v not in stored for v in (TOKEN, OTHER, OPENAI))


def test_network_skills_need_confine_off_without_namespaces(
    hostile: Path, no_namespaces: None, listener: tuple[int, list[str]]
) -> None:
    port, seen = listener
    code, err = _run(hostile, "net_ping", {"port": port})
    assert code == 1 and err["code"] == "KAVI-POLICY" and "run only confined" in err["message"], err
    assert "confine: off" in err["remedy"] and not seen
    assert "**REFUSED**" in _last_record(hostile)
    _set_network_confine(hostile, "off")  # unquoted: a boolean to YAML 1.1
    assert (
        yaml.safe_load((hostile / ".kavi" / "policy.yaml").read_text())["runtime"]["rules"][2]["confine"]
        is False
    )
    code, out = _run(hostile, "net_ping", {"port": port})
    assert code == 0 and out["output"]["reply"] == "loopback service", out
    assert "confinement: none: the policy says `confine: off`" in _last_record(hostile)


def test_confine_off_and_required_where_namespaces_exist(
    hostile: Path, listener: tuple[int, list[str]]
) -> None:
    from kavi.confine import jail

    if not jail.available():
        pytest.skip("no user namespaces here")
    port, _seen = listener
    code, out = _run(hostile, "net_ping", {"port": port})  # confined, with the host's network
    assert code == 0 and out["output"]["reply"] == "loopback service", out
    assert "confinement: namespaces" in _last_record(hostile) and "the host's network" in _last_record(
        hostile
    )
    _set_network_confine(hostile, "off")
    code, out = _run(hostile, "net_ping", {"port": port})
    assert code == 0 and "confine: off" in _last_record(hostile)
    _set_network_confine(hostile, "required")
    code, out = _run(hostile, "net_ping", {"port": port})
    assert code == 0 and "confinement: namespaces" in _last_record(hostile)


def test_confine_required_refuses_without_namespaces(
    hostile: Path, no_namespaces: None, listener: tuple[int, list[str]]
) -> None:
    _set_network_confine(hostile, "required")
    code, err = _run(hostile, "net_ping", {"port": listener[0]})
    assert code == 1 and "requires OS confinement" in err["message"], err


def test_verify_without_namespaces_says_so_and_confines_reads(
    tmp_path: Path, isolated_env: Path, no_namespaces: None
) -> None:
    from support.forge import make_forge, ssh_key, use_signing_key
    from support.skills import write_files

    use_signing_key(ssh_key(tmp_path / "keys"))
    repo = make_forge(tmp_path)
    pid = propose_write_note(repo)
    skill = (WRITE_NOTE_DIR / "skills" / "write_note.py").read_text()
    tests = (WRITE_NOTE_DIR / "tests" / "test_skill_write_note.py").read_text()
    key = isolated_env / ".ssh" / "id_ed25519"
    key.parent.mkdir()
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY----- fallbackkeybytes\n")
    # the path arrives as data read at run time (the scanner's documented blind spot): the
    # guard is what answers
    probe = (
        f"\n\n# given: {key}\n\n\ndef _given() -> str:\n"
        "    for line in Path(__file__).read_text().splitlines():\n"
        '        if line.startswith("# given: "):\n'
        '            return line[len("# given: ") :]\n'
        '    return ""\n\n\n'
        "def test_reads_the_key() -> None:\n    assert Path(_given()).read_text() == ''\n"
    )
    src = write_files(tmp_path / "reader", "write_note", skill, tests + probe)
    kavi_json("build-skill", pid, "--backend", "files", "--from", str(src), cwd=repo)
    v = kavi_json("verify-skill", pid, cwd=repo, expect=1)
    findings = "\n".join(v["gates"]["pytest"]["findings"])
    assert "read outside read roots" in findings and "fallbackkeybytes" not in everything_stored(repo), (
        findings
    )
    kavi_json("build-skill", pid, "--backend", "files", "--from", str(WRITE_NOTE_DIR), cwd=repo)
    v = kavi_json("verify-skill", pid, cwd=repo)
    assert v["status"] == "PASSED", v["gates"]
    report = (repo / v["report"]).read_text()
    assert "tests confined: not confined: namespaces switched off (KAVI_TEST_NO_NAMESPACES=1)" in report
    kavi_json("promote-skill", pid, "--yes", cwd=repo)
    note = git("notes", "--ref=kavi", "show", v["commit"], cwd=repo)
    assert "Kavi-Tests-Confined: not confined: namespaces switched off" in note


def test_a_kernel_that_refuses_namespaces_falls_back_and_says_why(
    hostile: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ``unshare`` that fails the way it does where a security module refuses user
    namespaces (Ubuntu's AppArmor restriction): the run falls back, once, and says why.
    (A stand-in for the kernel's refusal; the real jail is tested everywhere else.)"""
    from kavi.confine import session

    monkeypatch.setattr(session, "_NAMESPACES_FAILED", [])
    fake = tmp_path / "bin" / "unshare"
    fake.parent.mkdir()
    fake.write_text(
        "#!/bin/sh\necho 'unshare: write failed /proc/self/uid_map: Operation not permitted' >&2\nexit 1\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    (hostile / "vault_out" / "notes").mkdir(parents=True)
    (hostile / "vault_out" / "notes" / "a.md").write_text("a\n")
    code, out = _run(hostile, "read_file", {"path": "notes/a.md"})
    assert code == 0 and out["output"]["text"] == "a\n", out
    record = _last_record(hostile)
    assert "confinement: none: the namespaces could not be created (unshare: write failed" in record
    assert session._NAMESPACES_FAILED  # the next run in this process does not try again
