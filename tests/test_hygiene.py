"""Proposal hygiene: withdraw, prune (commits survive git gc), re-proposal warnings,
promote-skill's diffstat, and the files backend taking exactly the two expected paths."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from conftest import Verified
from support.forge import (
    WRITE_NOTE_DIR,
    WRITE_NOTE_SCHEMA,
    git,
    kavi,
    kavi_json,
    make_forge,
    propose_write_note,
)


def _half(tmp_path: Path) -> Path:
    src = tmp_path / "half"
    (src / "skills").mkdir(parents=True)
    shutil.copy(WRITE_NOTE_DIR / "skills/write_note.py", src / "skills/write_note.py")
    return src


def test_withdraw_rejects_with_the_reason_recorded(tmp_path: Path) -> None:
    repo = make_forge(tmp_path)
    pid = propose_write_note(repo)
    res = kavi("withdraw", pid, "--reason", "   ", "--format", "json", cwd=repo)
    assert res.code == 2 and "needs a reason" in res.json["message"]
    out = kavi_json("withdraw", pid, "--reason", "not needed after all", cwd=repo)
    assert out["status"] == "REJECTED"
    con = sqlite3.connect(repo / ".git/kavi/ledger.db")
    payload = json.loads(
        con.execute("SELECT payload_json FROM events ORDER BY seq DESC LIMIT 1").fetchone()[0]
    )
    assert payload["to"] == "REJECTED" and payload["reason"] == "withdrawn: not needed after all"
    again = kavi("withdraw", pid, "--reason", "twice", "--format", "json", cwd=repo)
    assert again.code == 1 and again.json["code"] == "KAVI-STATE"
    res = kavi("build-skill", pid, "--from", str(WRITE_NOTE_DIR), "--format", "json", cwd=repo)
    assert res.code == 1 and "REJECTED" in res.json["message"]


def test_a_trusted_skill_is_revoked_not_withdrawn(verified: Verified) -> None:
    kavi_json("promote-skill", verified.proposal_id, "--yes", cwd=verified.repo)
    res = kavi("withdraw", verified.proposal_id, "--reason", "x", "--format", "json", cwd=verified.repo)
    assert res.code == 1 and "revoke-skill write_note" in res.json["remedy"]


def test_prune_keeps_the_commits_of_failed_and_superseded_attempts(tmp_path: Path) -> None:
    repo = make_forge(tmp_path)
    pid = propose_write_note(repo)
    (_half(tmp_path) / "notes.txt").write_text("ignored by the files backend\n")
    extra = tmp_path / "extra"
    shutil.copytree(WRITE_NOTE_DIR, extra)
    (extra / "skills/write_note.py").chmod(0o755)  # the gate refuses the mode: a FAILED build with a commit
    failed = kavi("build-skill", pid, "--from", str(extra), "--format", "json", cwd=repo).json
    first = kavi_json("build-skill", pid, "--from", str(WRITE_NOTE_DIR), cwd=repo)
    second = kavi_json("build-skill", pid, "--from", str(WRITE_NOTE_DIR), cwd=repo)
    assert failed["status"] == "FAILED" and failed["commit"]

    dry = kavi_json("prune", "--dry-run", cwd=repo)
    assert {p["build_id"] for p in dry["pruned"]} == {failed["build_id"], first["build_id"]}
    assert git("branch", "--list", "skill/*", cwd=repo).count("skill/") == 3  # nothing moved yet

    done = kavi_json("prune", cwd=repo)
    assert {p["why"] for p in done["pruned"]} == {"failed attempt", "superseded by a later attempt"}
    branches = git("branch", "--list", "skill/*", cwd=repo)
    assert branches.strip() == f"skill/write_note-{second['build_id'][:8]}"  # the current candidate stays
    for build in (failed, first):
        kept = f"refs/kavi-attic/{build['branch']}"
        assert git("rev-parse", kept, cwd=repo) == build["commit"]
    # git gc with immediate pruning keeps them: they are reachable from the attic refs
    git("reflog", "expire", "--expire=now", "--all", cwd=repo)
    git("gc", "-q", "--prune=now", cwd=repo)
    for build in (failed, first):
        assert git("cat-file", "-t", build["commit"], cwd=repo) == "commit"
    shown = kavi_json("show", pid, cwd=repo)
    kept = {b["id"]: b["kept_ref"] for b in shown["builds"]}
    assert (
        kept[failed["build_id"]] == f"refs/kavi-attic/{failed['branch']}" and kept[second["build_id"]] is None
    )
    assert "(branch pruned)" in kavi("show", pid, cwd=repo).stdout
    assert kavi_json("prune", cwd=repo)["pruned"] == []  # idempotent
    # the attic does not travel: it is outside the refspecs init configures
    assert not any(
        "kavi-attic" in spec
        for spec in git("config", "--get-all", "remote.origin.push", cwd=repo, check=False).split()
    )
    # verify and promote still work on the current candidate
    assert kavi_json("verify-skill", pid, cwd=repo)["status"] == "PASSED"


def test_a_moved_branch_is_left_alone(tmp_path: Path) -> None:
    repo = make_forge(tmp_path)
    pid = propose_write_note(repo)
    old = kavi_json("build-skill", pid, "--from", str(WRITE_NOTE_DIR), cwd=repo)
    kavi_json("build-skill", pid, "--from", str(WRITE_NOTE_DIR), cwd=repo)
    git("update-ref", f"refs/heads/{old['branch']}", "HEAD", cwd=repo)
    out = kavi_json("prune", pid, cwd=repo)
    assert out["pruned"] == [] and "moved since the build" in out["skipped"][0]["why"]


def test_reproposing_a_trusted_name_with_another_contract_warns(verified: Verified) -> None:
    repo = verified.repo
    kavi_json("promote-skill", verified.proposal_id, "--yes", cwd=repo)
    same = kavi_json(
        "propose-skill", "--name", "write_note", "--desc", "v2", "--side-effect", "FILE_WRITE",
        "--io-schema-json", WRITE_NOTE_SCHEMA, cwd=repo,
    )  # fmt: skip
    assert same["warnings"] == []
    schema = json.dumps({"input": {"url": "str"}, "output": {"written_path": "str", "sha256": "str"}})
    res = kavi(
        "propose-skill", "--name", "write_note", "--desc", "v3", "--side-effect", "NETWORK",
        "--io-schema-json", schema, "--secret", "API_TOKEN", cwd=repo,
    )  # fmt: skip
    assert res.code == 0
    assert "warning: write_note is TRUSTED as FILE_WRITE; this proposal declares NETWORK" in res.stderr
    assert "+input.url: str" in res.stderr and "-input.path" in res.stderr
    assert "API_TOKEN" in res.stderr


def test_promote_shows_the_diffstat_and_the_full_diff_command(verified: Verified) -> None:
    res = kavi("promote-skill", verified.proposal_id, cwd=verified.repo)  # no terminal: shows, then refuses
    assert res.code == 1
    assert "skills/write_note.py" in res.stderr and "insertion(s)(+)" in res.stderr
    line = next(x for x in res.stderr.splitlines() if x.startswith("Full diff: "))
    command = line[len("Full diff: ") :].split()
    assert command[:2] == ["git", "diff"]
    diff = git(*command[1:], cwd=verified.repo)
    assert "+class WriteNoteSkill" in diff and "tests/test_skill_write_note.py" in diff
    out = kavi_json("promote-skill", verified.proposal_id, "--yes", cwd=verified.repo)
    assert {d["path"] for d in out["diffstat"]} == {"skills/write_note.py", "tests/test_skill_write_note.py"}


def test_the_files_backend_takes_exactly_the_two_paths(tmp_path: Path) -> None:
    repo = make_forge(tmp_path)
    pid = propose_write_note(repo)
    src = tmp_path / "src"
    shutil.copytree(WRITE_NOTE_DIR, src)
    for junk in (
        "skills/__pycache__/write_note.cpython-311.pyc",
        ".mypy_cache/x.json",
        "notes.md",
        "skills/other.py",
    ):
        (src / junk).parent.mkdir(parents=True, exist_ok=True)
        (src / junk).write_text("junk\n")
    out = kavi_json("build-skill", pid, "--from", str(src), cwd=repo)
    assert out["status"] == "SUCCEEDED" and out["violations"] == []
    log = (repo / out["log_artifact"]).read_text()
    ignored = ".mypy_cache/x.json, notes.md, skills/__pycache__/write_note.cpython-311.pyc, skills/other.py"
    assert f"ignored (not one of the two files): {ignored}" in log
    assert git("show", "--stat", "--format=", out["commit"], cwd=repo).count("|") == 2


@pytest.mark.parametrize("layout", ["missing", "flat"])
def test_the_files_backend_names_what_is_missing(tmp_path: Path, layout: str) -> None:
    repo = make_forge(tmp_path)
    pid = propose_write_note(repo)
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(
        WRITE_NOTE_DIR / "skills/write_note.py", src / ("write_note.py" if layout == "flat" else "x.py")
    )
    res = kavi("build-skill", pid, "--from", str(src), "--format", "json", cwd=repo)
    assert res.code == 1
    assert "has no skills/write_note.py and no tests/test_skill_write_note.py" in res.json["summary"]
    if layout == "flat":
        assert "write_note.py found at the top level" in res.json["summary"]


def test_a_symlink_among_the_two_paths_is_still_judged_by_the_gate(tmp_path: Path) -> None:
    repo = make_forge(tmp_path)
    pid = propose_write_note(repo)
    src = tmp_path / "src"
    shutil.copytree(WRITE_NOTE_DIR, src)
    (src / "skills/write_note.py").unlink()
    (src / "skills/write_note.py").symlink_to("/etc/passwd")
    res = kavi("build-skill", pid, "--from", str(src), "--format", "json", cwd=repo)
    assert res.code == 1 and any(v["rule"] == "symlink" for v in res.json["violations"])
