"""An audit a person can rely on: unknown skills, unmirrored events, every attempt listed,
and doctor agreeing with it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from support.forge import (
    WRITE_NOTE_DIR,
    kavi,
    kavi_json,
    make_forge,
    propose_write_note,
    ssh_key,
    use_signing_key,
)


def _forge(tmp_path: Path) -> Path:
    use_signing_key(ssh_key(tmp_path / "keys"))
    return make_forge(tmp_path)


def test_an_unknown_skill_is_a_usage_error(tmp_path: Path) -> None:
    repo = _forge(tmp_path)
    res = kavi("audit", "nosuch", "--format", "json", cwd=repo)
    assert res.code == 2, res.output
    assert res.json["code"] == "KAVI-NOT-FOUND" and "nosuch" in res.json["message"]
    assert "git kavi list-proposals" in res.json["remedy"]
    text = kavi("audit", "nosuch", cwd=repo)
    assert text.code == 2 and "audit passed" not in text.output


def test_unmirrored_events_are_a_warning_naming_sync_in_audit_and_doctor(tmp_path: Path) -> None:
    repo = _forge(tmp_path)
    propose_write_note(repo)
    res = kavi("audit", "write_note", cwd=repo)
    assert res.code == 0, res.output
    assert "audit passed" in res.stdout and "warning" in res.stdout
    assert "run `git kavi ledger sync`" in res.stdout
    report = kavi_json("audit", "write_note", cwd=repo)
    assert report["ok"] is True and report["unmirrored_warning"]
    assert any("git kavi ledger sync" in w for w in report["warnings"])
    # doctor says the same, as a warning, and is ok
    doctor = kavi_json("doctor", cwd=repo)
    assert doctor["ok"] is True
    (finding,) = [f for f in doctor["findings"] if f["check"] == "ledger mirror"]
    assert finding["warning"] is True and finding["problem"] == report["unmirrored_warning"]
    assert finding["repair"] == "git kavi ledger sync"
    # the command it names works as printed, and then neither warns
    kavi_json("ledger", "sync", cwd=repo)
    after = kavi_json("audit", "write_note", cwd=repo)
    assert after["ok"] is True and after["warnings"] == []
    assert kavi_json("doctor", cwd=repo)["findings"] == []


def test_audit_and_doctor_name_the_same_altered_artifact(tmp_path: Path) -> None:
    repo = _forge(tmp_path)
    propose_write_note(repo)
    kavi_json("ledger", "sync", cwd=repo)
    spec = next((repo / "vault_out/kavi/skill_spec").iterdir())
    spec.write_text(spec.read_text() + "\nedited\n")
    audit = kavi_json("audit", "write_note", cwd=repo, expect=1)
    failed = [c for s in audit["skills"]["write_note"] for c in s["checks"] if not c["ok"]]
    assert [c["detail"] for c in failed] == ["hash mismatch (edited)"]
    doctor = kavi_json("doctor", cwd=repo, expect=1)
    (finding,) = [f for f in doctor["findings"] if f["check"] == "artifact"]
    assert finding["problem"].endswith("hash mismatch (edited)")
    assert (
        str(spec.relative_to(repo)) in finding["problem"] and str(spec.relative_to(repo)) in failed[0]["what"]
    )
    # doctor restores it from the mirror; then both agree it is fine
    assert kavi_json("doctor", "--repair", cwd=repo)["ok"] is True
    assert kavi_json("audit", "write_note", cwd=repo)["ok"] is True


@pytest.mark.slow
def test_audit_lists_every_build_and_verification_failed_ones_included(tmp_path: Path) -> None:
    repo = _forge(tmp_path)
    pid = propose_write_note(repo)
    # attempt 1: the backend delivers nothing (FAILED build)
    empty = tmp_path / "empty"
    empty.mkdir()
    failed_build = kavi_json("build-skill", pid, "--from", str(empty), cwd=repo, expect=1)
    # attempt 2: builds, but its tests fail (FAILED verification)
    broken = tmp_path / "broken"
    shutil.copytree(WRITE_NOTE_DIR, broken)
    test = broken / "tests/test_skill_write_note.py"
    test.write_text(test.read_text() + "\n\ndef test_fails() -> None:\n    assert 1 == 2\n")
    second = kavi_json("build-skill", pid, "--from", str(broken), cwd=repo)
    failed_verification = kavi_json("verify-skill", pid, cwd=repo, expect=1)
    assert failed_verification["status"] == "FAILED"
    # attempt 3: passes and is promoted
    third = kavi_json("build-skill", pid, "--from", str(WRITE_NOTE_DIR), cwd=repo)
    passed = kavi_json("verify-skill", pid, cwd=repo)
    kavi_json("promote-skill", pid, "--yes", cwd=repo)
    report = kavi_json("audit", "write_note", cwd=repo)
    assert report["ok"] is True, report
    titles = [s["title"] for s in report["skills"]["write_note"]]
    builds = [t for t in titles if t.startswith("build #")]
    assert [t.split()[1] for t in builds] == ["#1", "#2", "#3"]
    assert failed_build["build_id"][:8] in builds[0] and "FAILED" in builds[0]
    assert second["build_id"][:8] in builds[1] and "SUCCEEDED" in builds[1]
    assert third["build_id"][:8] in builds[2] and builds[2].endswith("— promoted")
    verifications = [t for t in titles if t.startswith("verification ")]
    assert len(verifications) == 2
    assert failed_verification["verification_id"][:8] in verifications[0]
    assert "FAILED" in verifications[0] and "failed: pytest" in verifications[0]
    assert passed["verification_id"][:8] in verifications[1] and verifications[1].endswith("— promoted")
    text = kavi("audit", "write_note", cwd=repo).stdout
    assert "build #1" in text and "verification " + failed_verification["verification_id"][:8] in text
