"""run-skill: only TRUSTED skills, only the approved bytes, validated, guarded and recorded."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from conftest import Verified, isolation
from support.forge import git, kavi, kavi_json

WRITE = {"path": "Inbox/AI/hello.md", "title": "Hello", "body": "World"}


@pytest.fixture
def trusted(verified: Verified) -> Verified:
    kavi_json("promote-skill", verified.proposal_id, "--yes", cwd=verified.repo)
    return verified


def _run(repo: Path, payload: dict[str, object], name: str = "write_note") -> tuple[int, dict]:
    res = kavi("run-skill", name, "--json", json.dumps(payload), "--format", "json", cwd=repo)
    return res.code, res.json


def test_runs_a_trusted_skill_and_records_it(trusted: Verified) -> None:
    repo = trusted.repo
    code, out = _run(repo, WRITE)
    assert code == 0, out
    assert out["output"]["written_path"] == "Inbox/AI/hello.md"
    assert (repo / "vault_out/Inbox/AI/hello.md").read_text() == "# Hello\n\nWorld\n"
    assert out["status"] == "SUCCEEDED" and out["run_id"]
    record = (repo / out["record"]).read_text()
    assert "SUCCEEDED" in record and "Inbox/AI/hello.md" in record
    # --input-file works the same way
    (repo.parent / "in.json").write_text(json.dumps({**WRITE, "path": "Inbox/AI/two.md"}))
    res = kavi("run-skill", "write_note", "--input-file", str(repo.parent / "in.json"), cwd=repo)
    assert res.code == 0 and (repo / "vault_out/Inbox/AI/two.md").exists()


def test_refuses_a_skill_that_is_not_trusted(verified: Verified) -> None:
    code, err = _run(verified.repo, WRITE)
    assert code == 1
    assert err["error"] == "TrustError" and "not TRUSTED" in err["message"]
    assert not (verified.repo / "vault_out/Inbox/AI/hello.md").exists()


def test_refuses_tampered_source(trusted: Verified) -> None:
    repo = trusted.repo
    path = repo / "skills/write_note.py"
    path.write_text(path.read_text().replace("# {input.title}", "# PWNED {input.title}"))
    code, err = _run(repo, WRITE)
    assert code == 1
    assert err["error"] == "TrustError" and err["code"] == "KAVI-TRUST"
    assert "does not match what was promoted" in err["message"]
    assert "git checkout kavi/write_note/v1 -- skills/write_note.py" in err["remedy"]
    assert not (repo / "vault_out/Inbox/AI/hello.md").exists()
    runs = kavi_json("audit", "write_note", cwd=repo, expect=1)
    assert runs["ok"] is False  # the audit sees the tampered file too


def test_refuses_when_registry_and_ledger_disagree(trusted: Verified) -> None:
    repo = trusted.repo
    path = repo / "skills/registry.yaml"
    data = yaml.safe_load(path.read_text())
    data["skills"]["write_note"]["version"] = 7
    path.write_text(yaml.safe_dump(data))
    code, err = _run(repo, WRITE)
    assert code == 1 and err["error"] == "TrustError"
    assert "disagrees with the ledger" in err["message"]
    assert "version: ledger=1 registry=7" in err["why"]


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({"path": "x.md", "title": "t"}, "body: Field required"),
        ({**WRITE, "extra": 1}, "extra: Extra inputs are not permitted"),
        ({**WRITE, "title": 5}, "title: Input should be a valid string"),
    ],
)
def test_refuses_invalid_input(trusted: Verified, payload: dict[str, object], fragment: str) -> None:
    code, err = _run(trusted.repo, payload)
    assert code == 2
    assert fragment in err["why"]


def test_refuses_non_json_input(trusted: Verified) -> None:
    res = kavi("run-skill", "write_note", "--json", "{nope", "--format", "json", cwd=trusted.repo)
    assert res.code == 2 and "not valid JSON" in res.json["message"]


def test_runtime_policy_refuses_denied_classes(trusted: Verified) -> None:
    repo = trusted.repo
    policy = yaml.safe_load((repo / ".kavi/policy.yaml").read_text())
    for rule in policy["runtime"]["rules"]:
        if rule["match"]["side_effect"] == "FILE_WRITE":
            rule["decision"] = "DENY"
            rule["reason"] = "file writes are frozen this week"
    (repo / ".kavi/policy.yaml").write_text(yaml.safe_dump(policy, sort_keys=False))
    git("commit", "-q", "-S", "-am", "freeze file writes", cwd=repo)
    code, err = _run(repo, WRITE)
    assert code == 1 and err["code"] == "KAVI-POLICY"
    assert "file writes are frozen this week" in err["message"]


@pytest.fixture(scope="session")
def naughty_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A forge where a skill that misbehaves at run time passed every gate and was promoted."""
    from support.forge import make_forge, propose_write_note, ssh_key, use_signing_key
    from support.variants import write_variant

    root = tmp_path_factory.mktemp("naughty")
    with isolation(root):
        use_signing_key(ssh_key(root / "keys"))
        repo = make_forge(root)
        pid = propose_write_note(repo)
        src = write_variant(root / "variant", "naughty")
        kavi_json("build-skill", pid, "--backend", "files", "--from", str(src), cwd=repo)
        v = kavi_json("verify-skill", pid, cwd=repo, expect=0)
        assert v["status"] == "PASSED"
        kavi_json("promote-skill", pid, "--yes", cwd=repo)
    return root


@pytest.fixture
def naughty(tmp_path: Path, naughty_template: Path) -> Path:
    import shutil

    from support.forge import use_signing_key

    shutil.copytree(naughty_template / "forge", tmp_path / "forge", symlinks=True)
    shutil.copytree(naughty_template / "keys", tmp_path / "keys")
    use_signing_key(tmp_path / "keys/id_ed25519")
    return tmp_path / "forge"


def test_runtime_guard_refuses_a_write_outside_the_allowed_paths(naughty: Path, tmp_path: Path) -> None:
    # not below /tmp: there the skill's own private /tmp would take the write; the skill
    # writes "vault_out/" + path, so climb to / and down again
    outside = Path("/var/tmp") / f"kavi-escape-{tmp_path.name}-{os.getpid()}.md"
    escape = "../" * 40 + str(outside).lstrip("/")
    code, err = _run(naughty, {"path": escape, "title": "escape", "body": "gotcha"})
    assert code == 1
    assert err["code"] == "KAVI-GUARD" and "runtime guard refused" in err["message"], err
    assert not outside.exists()
    # the refusal is on record
    runs = [
        r
        for r in kavi_json("audit", "write_note", cwd=naughty)["skills"]["write_note"]
        if r["title"].startswith("runs")
    ]
    assert runs and "REFUSED" in runs[0]["checks"][-1]["what"]


def test_refuses_invalid_output(naughty: Path) -> None:
    code, err = _run(naughty, {"path": "Inbox/x.md", "title": "bad-output", "body": "b"})
    assert code == 1
    assert err["error"] == "TrustError" and "does not match its output model" in err["message"]
    assert "sha256" in err["why"]
    ok, out = _run(naughty, {"path": "Inbox/x.md", "title": "fine", "body": "b"})
    assert ok == 0, out
