"""Teams: a promotion that lost a race with someone else's push is published again.

Real bare repository with the hook, real `git push` from two clones, real keys.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import Verified
from support.forge import WRITE_NOTE_SCHEMA, git, kavi, kavi_json

pytestmark = pytest.mark.slow

ALL = ["main", "refs/tags/kavi/*:refs/tags/kavi/*", "refs/notes/kavi", "refs/kavi/ledger"]


def _push(repo: Path, *specs: str, force: bool = False) -> subprocess.CompletedProcess[str]:
    args = ["git", "push", *(["--force"] if force else []), "origin", *specs]
    return subprocess.run(args, cwd=repo, capture_output=True, text=True)


def _ok(res: subprocess.CompletedProcess[str]) -> None:
    assert res.returncode == 0, res.stdout + res.stderr


def _served(verified: Verified, tmp_path: Path) -> tuple[Path, Path]:
    """Ada's forge on a hooked server, and a second clone (same person, another machine)."""
    ada = verified.repo
    origin = tmp_path / "origin.git"
    git("init", "-q", "--bare", str(origin), cwd=tmp_path)
    git("remote", "add", "origin", str(origin), cwd=ada)
    kavi_json("hooks", "install", "--server", str(origin), cwd=ada)
    kavi_json("ledger", "sync", cwd=ada)
    _ok(_push(ada, "main", "refs/kavi/ledger"))
    other = tmp_path / "other"
    git("clone", "-q", str(origin), str(other), cwd=tmp_path)
    git("fetch", "-q", "origin", "refs/kavi/*:refs/kavi/*", cwd=other)
    kavi_json("init", cwd=other)  # configures Kavi's refspecs in this clone
    return ada, other


def test_republish_after_a_lost_race(verified: Verified, tmp_path: Path) -> None:
    ada, other = _served(verified, tmp_path)
    # the other clone wins the race: a proposal (ledger events) and ordinary work on main
    kavi_json(
        "propose-skill", "--name", "summarize", "--desc", "Summarise notes", "--side-effect", "READ_ONLY",
        "--io-schema-json", WRITE_NOTE_SCHEMA, cwd=other,
    )  # fmt: skip
    kavi_json("ledger", "sync", cwd=other)
    (other / "NOTES.md").write_text("meanwhile\n")
    git("add", "-A", cwd=other)
    git("commit", "-q", "-m", "meanwhile on main", cwd=other)
    _ok(_push(other, "main", "refs/kavi/ledger"))
    # Ada promotes from the old state, uses the skill, and pushes: refused for good
    kavi_json("promote-skill", verified.proposal_id, "--yes", cwd=ada)
    kavi_json("run-skill", "write_note", "--json", '{"path": "a.md", "title": "A", "body": "B"}', cwd=ada)
    kavi_json("ledger", "sync", cwd=ada)
    assert _push(ada, *ALL).returncode != 0
    forced = _push(ada, *ALL, force=True)
    assert forced.returncode != 0 and "git kavi promote-skill --republish" in forced.stderr, forced.stderr
    # republish: shows what changed, re-signs onto the new tips
    res = kavi("promote-skill", "--republish", "--yes", cwd=ada)
    assert res.code == 0, res.output
    assert "meanwhile on main" in res.stderr and "never reached origin" in res.stderr
    out = kavi_json("status", cwd=ada)
    assert out["unmirrored"] == 0
    next_push = res.stdout.split("Next: ", 1)[1].strip()
    _ok(subprocess.run(["sh", "-c", next_push], cwd=ada, capture_output=True, text=True))
    # the server now has both: a fresh clone imports the whole ledger and audits clean
    fresh = tmp_path / "fresh"
    git("clone", "-q", str(ada.parent / "origin.git"), str(fresh), cwd=tmp_path)
    git("fetch", "-q", "origin", "refs/kavi/*:refs/kavi/*", "refs/notes/kavi:refs/notes/kavi", cwd=fresh)
    skills = kavi_json("list-skills", cwd=fresh)["skills"]
    assert [s["name"] for s in skills] == ["write_note"]
    names = {p["name"] for p in kavi_json("list-proposals", cwd=fresh)["proposals"]}
    assert names == {"write_note", "summarize"}
    audit = kavi_json("audit", "write_note", cwd=fresh)
    assert audit["ok"] is True, audit
    runs = [s for s in audit["skills"]["write_note"] if s["title"].startswith("runs")]
    assert runs and runs[0]["checks"][0]["ok"]
    # the other clone fetches and imports the republished events
    git("pull", "-q", "--no-rebase", "origin", "main", cwd=other)
    git("fetch", "-q", "origin", "refs/kavi/*:refs/kavi/*", cwd=other)
    assert kavi_json("ledger", "import", cwd=other)["imported"] > 0


def test_republish_with_nothing_lost_says_so(verified: Verified, tmp_path: Path) -> None:
    ada, _ = _served(verified, tmp_path)
    res = kavi("promote-skill", "--republish", "--yes", "--format", "json", cwd=ada)
    assert res.code == 1 and "nothing" in res.json["message"], res.output


def test_republish_refuses_other_local_work_and_changes_nothing(verified: Verified, tmp_path: Path) -> None:
    ada, other = _served(verified, tmp_path)
    (other / "NOTES.md").write_text("meanwhile\n")
    git("add", "-A", cwd=other)
    git("commit", "-q", "-m", "meanwhile on main", cwd=other)
    _ok(_push(other, "main"))
    kavi_json("promote-skill", verified.proposal_id, "--yes", cwd=ada)
    (ada / "LOCAL.md").write_text("my own work\n")
    git("add", "-A", cwd=ada)
    git("commit", "-q", "-m", "unpushed work on top", cwd=ada)
    before = git("for-each-ref", cwd=ada)
    res = kavi("promote-skill", "--republish", "--yes", "--format", "json", cwd=ada)
    assert res.code == 1 and "not a Kavi promotion" in res.json["message"], res.output
    after = git("for-each-ref", cwd=ada)
    own = [r for r in after.splitlines() if "kavi-upstream" not in r and "refs/remotes/" not in r]
    assert own == [r for r in before.splitlines() if "refs/remotes/" not in r]
