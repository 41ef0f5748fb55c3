"""A ledger that is empty, foreign, damaged, deleted or out of step with its mirror.

Each case: what a plain command says (exit code, error code, what to do), what ``doctor``
reports, and that the advised repair works and loses nothing that can be kept.
"""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import pytest

from conftest import Verified
from support.forge import git, kavi, kavi_json

pytestmark = pytest.mark.slow

RUN = ("run-skill", "write_note", "--json", '{"path": "a.md", "title": "A", "body": "B"}')


@pytest.fixture
def promoted(verified: Verified) -> Path:
    """write_note TRUSTED and mirrored, then two runs recorded but not mirrored yet."""
    repo = verified.repo
    kavi_json("promote-skill", verified.proposal_id, "--yes", cwd=repo)
    kavi_json(*RUN, cwd=repo)
    kavi_json(*RUN, cwd=repo)
    assert kavi_json("status", cwd=repo)["unmirrored"] == 4  # two runs: artifact + run each
    return repo


def _ledger(repo: Path) -> Path:
    return repo / ".git/kavi/ledger.db"


def _events(repo: Path) -> list[tuple[int, str]]:
    con = sqlite3.connect(_ledger(repo))
    try:
        return [tuple(r) for r in con.execute("SELECT seq, hash FROM events ORDER BY seq")]  # type: ignore[misc]
    finally:
        con.close()


def _aside(repo: Path) -> list[Path]:
    found = (repo / ".git/kavi").glob("ledger.db.damaged-*")
    return sorted(p for p in found if not p.name.endswith(("-wal", "-shm")))


@pytest.mark.parametrize("damage", ["empty", "text", "foreign-sqlite"])
def test_a_ledger_file_that_is_not_a_ledger_is_refused_then_rebuilt(promoted: Path, damage: str) -> None:
    repo = promoted
    mirrored = [e for e in _events(repo)][: len(_events(repo)) - 4]
    path = _ledger(repo)
    path.unlink()
    if damage == "empty":
        path.write_bytes(b"")
    elif damage == "text":
        path.write_text("this is not a database\n")
    else:
        con = sqlite3.connect(path)
        con.execute("CREATE TABLE notes (x TEXT)")
        con.commit()
        con.close()
    res = kavi("status", "--format", "json", cwd=repo)
    assert res.code == 2 and res.json["code"] == "KAVI-LEDGER-DAMAGED", res.output
    assert "ledger import" in res.json["remedy"]
    assert path.exists() and kavi("list-skills", cwd=repo).code == 2  # never silently a new ledger
    report = kavi_json("doctor", cwd=repo, expect=1)
    assert report["findings"][0]["check"] == "ledger file"
    out = kavi_json("ledger", "import", cwd=repo)  # the advised command works on the same file
    assert out["set_aside"] and Path(out["set_aside"]).exists()
    assert _events(repo) == mirrored  # the unmirrored runs were in that file: nothing to recover
    # their vault records are no ledger's any more: doctor moves them out of the vault, keeping them
    report = kavi_json("doctor", "--repair", cwd=repo)
    moved = [f for f in report["findings"] if f["check"] == "vault"]
    assert len(moved) == 2 and all(f["repaired"] for f in moved)
    assert len(list((repo / ".git/kavi/unrecorded").rglob("RUN_RECORD_*.md"))) == 2
    assert kavi_json("doctor", cwd=repo)["findings"] == []
    assert [s["name"] for s in kavi_json("list-skills", cwd=repo)["skills"]] == ["write_note"]


def _corrupt_a_page(path: Path, page: int) -> None:
    data = bytearray(path.read_bytes())
    size = int.from_bytes(data[16:18], "big") or 65536
    start = size * (page - 1)
    data[start + 8 : start + size] = b"\xa5" * (size - 8)
    path.write_bytes(bytes(data))


def test_page_corruption_is_caught_by_doctor_and_audit_and_rebuilt_keeping_unmirrored_events(
    promoted: Path,
) -> None:
    repo = promoted
    before = _events(repo)
    con = sqlite3.connect(_ledger(repo))
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    pages = con.execute("PRAGMA page_count").fetchone()[0]
    index_page = con.execute("SELECT rootpage FROM sqlite_master WHERE name = 'proposals_name'").fetchone()[0]
    con.close()
    assert pages > index_page
    _corrupt_a_page(_ledger(repo), index_page)  # an index page: the events table still reads
    report = kavi_json("doctor", cwd=repo, expect=1)
    (finding,) = [f for f in report["findings"] if f["check"] == "ledger file"]
    assert "integrity_check" in finding["problem"]
    audit = kavi("audit", "--format", "json", cwd=repo)
    assert audit.code == 1 and not audit.json["ok"]
    assert any("integrity_check" in p for p in audit.json["ledger_problems"]), audit.json
    repaired = kavi_json("doctor", "--repair", cwd=repo)
    assert repaired["ok"] is True, repaired
    assert "4 unmirrored event(s) recovered" in repaired["findings"][0]["repair"]
    assert _events(repo) == before  # the two runs never mirrored survived the rebuild
    assert len(_aside(repo)) == 1
    assert [f for f in kavi_json("doctor", cwd=repo)["findings"] if not f["warning"]] == []
    assert kavi_json("audit", cwd=repo)["ok"] is True
    assert kavi_json("ledger", "sync", cwd=repo)["mirrored"] == 4


def test_a_deleted_ledger_with_unmirrored_events_is_reported_not_recreated(promoted: Path) -> None:
    repo = promoted
    for suffix in ("", "-wal", "-shm"):
        Path(f"{_ledger(repo)}{suffix}").unlink(missing_ok=True)
    res = kavi("list-skills", "--format", "json", cwd=repo)
    assert res.code == 1 and res.json["code"] == "KAVI-LEDGER-MISSING", res.output
    total = len(git("rev-list", "refs/kavi/ledger", cwd=repo).splitlines())
    assert f"events #{total + 1}…#{total + 4} were never mirrored" in res.json["message"]
    assert "--accept-loss" in res.json["remedy"]
    assert not _ledger(repo).exists()
    report = kavi_json("doctor", cwd=repo, expect=1)
    assert "were never mirrored" in report["findings"][0]["problem"]
    assert kavi_json("doctor", "--repair", cwd=repo, expect=1)["findings"][0]["repaired"] is False
    assert not _ledger(repo).exists()
    # the user decides: rebuild from the mirror, losing the two runs
    out = kavi_json("ledger", "import", "--accept-loss", cwd=repo)
    assert out["events"] == total
    # the lost runs' vault records are kept, out of the vault
    assert kavi_json("doctor", "--repair", cwd=repo)["ok"] is True
    assert len(list((repo / ".git/kavi/unrecorded").rglob("RUN_RECORD_*.md"))) == 2
    assert kavi_json("doctor", cwd=repo)["findings"] == []


def test_a_deleted_ledger_whose_events_were_all_mirrored_comes_back_by_itself(promoted: Path) -> None:
    repo = promoted
    kavi_json("ledger", "sync", cwd=repo)
    before = _events(repo)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{_ledger(repo)}{suffix}").unlink(missing_ok=True)
    assert [s["name"] for s in kavi_json("list-skills", cwd=repo)["skills"]] == ["write_note"]
    assert _events(repo) == before


def _wal_with_frames(repo: Path) -> bytes:
    """The write-ahead log of a ledger that another process changed and never checkpointed."""
    con = sqlite3.connect(_ledger(repo))
    con.execute("PRAGMA wal_autocheckpoint = 0")
    con.execute("INSERT INTO meta (key, value) VALUES ('stray', 'from the old file')")
    con.commit()
    wal = Path(f"{_ledger(repo)}-wal").read_bytes()
    con.close()
    return wal


def test_a_stray_wal_is_never_replayed_into_a_rebuilt_ledger(promoted: Path) -> None:
    repo = promoted
    kavi_json("ledger", "sync", cwd=repo)
    wal = _wal_with_frames(repo)
    assert len(wal) > 32
    _ledger(repo).unlink()
    Path(f"{_ledger(repo)}-shm").unlink(missing_ok=True)
    Path(f"{_ledger(repo)}-wal").write_bytes(wal)
    report = kavi_json("doctor", cwd=repo, expect=1)
    assert "stray write-ahead log" in report["findings"][0]["problem"]
    out = kavi_json("ledger", "import", cwd=repo)
    assert out["stray_wal_set_aside"] and Path(out["stray_wal_set_aside"][0]).read_bytes() == wal
    con = sqlite3.connect(_ledger(repo))
    assert con.execute("SELECT value FROM meta WHERE key = 'stray'").fetchone() is None
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    assert kavi_json("doctor", cwd=repo)["findings"] == []


def test_mirror_ahead_of_the_ledger_is_adopted_not_refused(promoted: Path) -> None:
    """A crash between moving refs/kavi/ledger and recording it: recognised by the events."""
    repo = promoted
    kavi_json("ledger", "sync", cwd=repo)
    tip = git("rev-parse", "refs/kavi/ledger", cwd=repo)
    con = sqlite3.connect(_ledger(repo))
    (last,) = con.execute("SELECT max(seq) FROM events").fetchone()
    con.execute("UPDATE events SET mirror_commit = NULL WHERE seq > ?", (last - 3,))
    con.commit()
    con.close()
    report = kavi_json("doctor", cwd=repo, expect=1)
    assert "3 event(s) are on refs/kavi/ledger but not recorded" in report["findings"][0]["problem"]
    # sync recognises its own commits: nothing is signed twice, nothing refused
    assert kavi_json("ledger", "sync", cwd=repo)["mirrored"] == 0
    assert git("rev-parse", "refs/kavi/ledger", cwd=repo) == tip
    assert kavi_json("doctor", cwd=repo)["findings"] == []


def test_mirror_behind_the_ledger_is_fast_forwarded(promoted: Path) -> None:
    repo = promoted
    kavi_json("ledger", "sync", cwd=repo)
    tip = git("rev-parse", "refs/kavi/ledger", cwd=repo)
    git("update-ref", "refs/kavi/ledger", f"{tip}~2", cwd=repo)
    report = kavi_json("doctor", cwd=repo, expect=1)
    assert "behind event" in report["findings"][0]["problem"]
    kavi_json("doctor", "--repair", cwd=repo)
    assert git("rev-parse", "refs/kavi/ledger", cwd=repo) == tip
    git("update-ref", "-d", "refs/kavi/ledger", cwd=repo)
    kavi_json(*RUN, cwd=repo)
    assert kavi_json("ledger", "sync", cwd=repo)["mirrored"] == 2  # restored to tip, then extended
    assert git("rev-parse", "refs/kavi/ledger~2", cwd=repo) == tip


def test_mirror_ahead_with_events_the_ledger_lacks_is_imported(promoted: Path) -> None:
    """The ledger file restored from an older backup: the signed mirror is ahead."""
    repo = promoted
    kavi_json("ledger", "sync", cwd=repo)
    backup = _ledger(repo).with_name("backup.db")
    con = sqlite3.connect(_ledger(repo))
    con.execute(f"VACUUM INTO '{backup}'")
    con.close()
    kavi_json(*RUN, cwd=repo)
    kavi_json("ledger", "sync", cwd=repo)
    after = _events(repo)
    for suffix in ("-wal", "-shm"):
        Path(f"{_ledger(repo)}{suffix}").unlink(missing_ok=True)
    backup.replace(_ledger(repo))
    report = kavi_json("doctor", cwd=repo, expect=1)
    (ahead,) = [f for f in report["findings"] if f["check"] == "ledger mirror"]
    assert "does not have (the mirror is ahead)" in ahead["problem"]
    sync = kavi("ledger", "sync", "--format", "json", cwd=repo)
    assert sync.code == 1 and "ledger import" in sync.json["remedy"]
    kavi_json("doctor", "--repair", cwd=repo)
    assert _events(repo) == after


def test_lost_mirror_commits_are_mirrored_again(promoted: Path) -> None:
    repo = promoted
    kavi_json("ledger", "sync", cwd=repo)
    tip = git("rev-parse", "refs/kavi/ledger", cwd=repo)
    git("update-ref", "refs/kavi/ledger", f"{tip}~3", cwd=repo)
    git("reflog", "expire", "--expire=now", "--all", cwd=repo)
    git("gc", "-q", "--prune=now", cwd=repo)
    assert subprocess.run(["git", "cat-file", "-e", tip], cwd=repo).returncode != 0
    report = kavi_json("doctor", cwd=repo, expect=1)
    assert "no longer exist" in report["findings"][0]["problem"]
    kavi_json("doctor", "--repair", cwd=repo)
    assert kavi_json("ledger", "sync", cwd=repo)["mirrored"] == 3
    assert kavi_json("audit", cwd=repo)["ok"] is True
    assert kavi_json("doctor", cwd=repo)["findings"] == []
