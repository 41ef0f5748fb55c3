"""The one journal: revoke and promote interrupted at each step, finished by doctor or by the
next command, never signed with a key the forge does not trust, never forced over a
change someone else made."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import Verified
from support.forge import git, kavi, kavi_json, ssh_key

pytestmark = pytest.mark.slow


def _crash(repo: Path, point: str, *args: str) -> int:
    env = {**os.environ, "KAVI_FAILPOINT": point}
    return subprocess.run(
        [sys.executable, "-m", "kavi", *args], cwd=repo, env=env, capture_output=True, text=True
    ).returncode


def _finding(repo: Path) -> dict[str, object]:
    report = kavi_json("doctor", cwd=repo, expect=1)
    (found,) = [f for f in report["findings"] if f["check"] == "interrupted change"]
    return found


def _clean(repo: Path) -> None:
    assert kavi_json("doctor", cwd=repo)["findings"] == []
    assert kavi_json("audit", cwd=repo)["ok"] is True
    assert git("status", "--porcelain", cwd=repo) == ""
    assert subprocess.run(["git", "fsck", "--no-dangling"], cwd=repo, capture_output=True).returncode == 0


@pytest.fixture
def promoted(verified: Verified) -> Verified:
    kavi_json("promote-skill", verified.proposal_id, "--yes", cwd=verified.repo)
    return verified


@pytest.mark.parametrize(
    "point", ["after-commit", "after-tag", "after-ledger", "after-notes", "after-mirror"]
)
def test_an_interrupted_revocation_is_finished_by_the_next_revoke(promoted: Verified, point: str) -> None:
    repo = promoted.repo
    assert _crash(repo, point, "revoke-skill", "write_note", "--reason", "unsafe", "--yes") == 137
    found = _finding(repo)
    assert "revoke of write_note v1" in str(found["problem"]) and str(found["repair"]).startswith("finish it")
    out = kavi_json("revoke-skill", "write_note", "--reason", "unsafe", "--yes", cwd=repo)
    assert out["status"] == "REVOKED" and out["already_revoked"] is True
    assert git("log", "--format=%s", "-2", "main", cwd=repo).splitlines()[0] == "kavi: revoke write_note v1"
    assert git("log", "--format=%s", "-2", "main", cwd=repo).splitlines()[1].startswith("kavi: promote")
    assert git("rev-parse", "kavi/write_note/v1-revoked^{commit}", cwd=repo) == git(
        "rev-parse", "main", cwd=repo
    )
    assert not (repo / "skills/write_note.py").exists()
    assert kavi_json("status", cwd=repo)["unmirrored"] == 0
    _clean(repo)
    assert kavi("run-skill", "write_note", "--json", "{}", cwd=repo).code == 1


def test_a_rerun_promote_finishes_the_interrupted_one(verified: Verified) -> None:
    repo = verified.repo
    assert _crash(repo, "after-tag", "promote-skill", verified.proposal_id, "--yes") == 137
    out = kavi_json("promote-skill", verified.proposal_id, "--yes", cwd=repo)
    assert out["already_promoted"] is True and out["version"] == 1
    assert git("tag", "--list", "kavi/*", cwd=repo).splitlines() == ["kavi/write_note/v1"]
    _clean(repo)


def test_the_checkout_comes_last_and_keeps_local_edits(verified: Verified) -> None:
    repo = verified.repo
    assert _crash(repo, "after-mirror", "promote-skill", verified.proposal_id, "--yes") == 137
    assert git("rev-parse", "HEAD", cwd=repo) == git("rev-parse", "main", cwd=repo)
    assert not (repo / "skills/write_note.py").exists()  # the branch moved, the checkout not yet
    assert "checkout" in str(_finding(repo)["problem"]).split("missing: ")[1]
    (repo / "skills").mkdir(exist_ok=True)
    (repo / "skills/write_note.py").write_text("# my own edit after the crash\n")
    report = kavi_json("doctor", "--repair", cwd=repo)
    (found,) = [f for f in report["findings"] if f["check"] == "interrupted change"]
    assert found["repaired"] and "kept your local changes to skills/write_note.py" in str(found["repair"])
    assert (repo / "skills/write_note.py").read_text() == "# my own edit after the crash\n"
    assert git("diff", "--cached", "--name-only", cwd=repo) == ""  # the index follows the commit
    assert git("diff", "--name-only", cwd=repo) == "skills/write_note.py"  # the edit is kept, unstaged
    git("checkout", "--", "skills/write_note.py", cwd=repo)
    _clean(repo)


def test_doctor_never_signs_with_an_untrusted_key(verified: Verified, tmp_path: Path) -> None:
    repo = verified.repo
    assert _crash(repo, "after-notes", "promote-skill", verified.proposal_id, "--yes") == 137
    mirror_before = git("rev-parse", "-q", "--verify", "refs/kavi/ledger", cwd=repo, check=False)
    stranger = ssh_key(tmp_path / "stranger")
    home = Path(os.environ["HOME"])
    config = (home / ".gitconfig").read_text()
    (home / ".gitconfig").write_text(config + f"[user]\n\tsigningkey = {stranger}.pub\n")
    found = _finding(repo)
    assert "the mirror step needs a trusted key" in str(found["repair"])
    assert "not in .kavi/allowed_signers" in str(found["repair"])
    report = kavi_json("doctor", "--repair", cwd=repo)
    (done,) = [f for f in report["findings"] if f["check"] == "interrupted change"]
    assert done["repaired"] and "ledger sync" in str(done["repair"])
    # nothing signed by the stranger
    assert git("rev-parse", "-q", "--verify", "refs/kavi/ledger", cwd=repo, check=False) == mirror_before
    assert not (repo / ".git/kavi/journal.json").exists()
    sync = kavi("ledger", "sync", "--format", "json", cwd=repo)
    assert sync.code == 1 and sync.json["code"] == "KAVI-SIGNING"
    (home / ".gitconfig").write_text(config)  # the trusted key again
    assert kavi_json("ledger", "sync", cwd=repo)["mirrored"] > 0
    _clean(repo)


def test_missing_notes_are_not_signed_by_a_stranger(promoted: Verified, tmp_path: Path) -> None:
    repo = promoted.repo
    git("update-ref", "-d", "refs/notes/kavi", cwd=repo)
    stranger = ssh_key(tmp_path / "stranger")
    home = Path(os.environ["HOME"])
    config = (home / ".gitconfig").read_text()
    (home / ".gitconfig").write_text(config + f"[user]\n\tsigningkey = {stranger}.pub\n")
    report = kavi_json("doctor", "--repair", cwd=repo, expect=1)
    (notes,) = [f for f in report["findings"] if f["check"] == "promotion notes"]
    assert not notes["repaired"] and "never signs with a key the forge does not trust" in str(notes["repair"])
    assert subprocess.run(["git", "rev-parse", "-q", "--verify", "refs/notes/kavi"], cwd=repo).returncode != 0
    (home / ".gitconfig").write_text(config)
    assert kavi_json("doctor", "--repair", cwd=repo)["ok"] is True
    _clean(repo)


def test_a_journal_whose_branch_was_moved_elsewhere_is_not_forced(verified: Verified) -> None:
    repo = verified.repo
    old_main = git("rev-parse", "main", cwd=repo)
    assert _crash(repo, "after-merge", "promote-skill", verified.proposal_id, "--yes") == 137
    git("update-ref", "refs/heads/main", old_main, cwd=repo)
    git("reset", "-q", "--hard", old_main, cwd=repo)
    git("commit", "-q", "--allow-empty", "-m", "someone else's work", cwd=repo)
    elsewhere = git("rev-parse", "main", cwd=repo)
    found = _finding(repo)
    assert "cannot finish it automatically" in str(found["repair"]) and "something else moved it" in str(
        found["repair"]
    )
    assert kavi_json("doctor", "--repair", cwd=repo, expect=1)
    assert git("rev-parse", "main", cwd=repo) == elsewhere
    res = kavi("promote-skill", verified.proposal_id, "--yes", "--format", "json", cwd=repo)
    assert res.code == 1 and "cannot be finished" in res.json["message"]


def test_an_unreadable_journal_is_set_aside(verified: Verified) -> None:
    repo = verified.repo
    (repo / ".git/kavi/journal.json").write_text("{ half a journal")
    res = kavi("promote-skill", verified.proposal_id, "--yes", "--format", "json", cwd=repo)
    assert res.code == 1 and "doctor --repair" in res.json["remedy"]
    report = kavi_json("doctor", "--repair", cwd=repo)
    assert report["findings"][0]["repaired"]
    assert list((repo / ".git/kavi").glob("journal.json.unreadable-*"))
    assert kavi_json("promote-skill", verified.proposal_id, "--yes", cwd=repo)["status"] == "TRUSTED"
