"""One writer at a time: the forge lock, its message, ``--wait``, and what doctor sees of locks."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import Verified
from kavi.errors import BusyError
from kavi.forge.lock import forge_lock, is_held, read_holder
from support.forge import WRITE_NOTE_DIR, git, kavi, kavi_json

HOLD = (
    "import sys, time\n"
    "from pathlib import Path\n"
    "from kavi.forge.lock import forge_lock\n"
    "with forge_lock(Path(sys.argv[1]), 'promote-skill write_note'):\n"
    "    print('held', flush=True)\n"
    "    time.sleep(float(sys.argv[2]))\n"
)


def _holder(kavi_dir: Path, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(kavi_dir), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_is_told_who_holds_the_forge(verified: Verified) -> None:
    repo = verified.repo
    kavi_dir = repo / ".git/kavi"
    holder = _holder(kavi_dir, 30)
    try:
        before = git("rev-parse", "main", cwd=repo)
        res = kavi("promote-skill", verified.proposal_id, "--yes", "--format", "json", cwd=repo)
        assert res.code == 1 and res.json["code"] == "KAVI-BUSY", res.output
        message = res.json["message"]
        assert f"pid {holder.pid}" in message and "`git kavi promote-skill write_note`" in message
        assert "since 20" in message
        hint = res.json["remedy"].split("`")[1]
        assert hint == f"kavi promote-skill {verified.proposal_id} --yes --format json --wait 60"
        assert git("rev-parse", "main", cwd=repo) == before
        # every command that changes the forge takes the same lock
        for args in (
            ["build-skill", "write_note", "--backend", "files", "--from", str(WRITE_NOTE_DIR)],
            ["verify-skill", "write_note"],
            ["ledger", "sync"],
            ["ledger", "import"],
            ["doctor", "--repair"],
            ["init"],
        ):
            res = kavi(*args, "--format", "json", cwd=repo)
            assert res.code == 1 and res.json["code"] == "KAVI-BUSY", (args, res.output)
        # reading needs no lock
        assert kavi("status", cwd=repo).code == 0
        report = kavi_json("doctor", cwd=repo)
        assert any(f"pid {holder.pid}" in n for n in report["notes"]), report
    finally:
        holder.kill()
        holder.wait()
    # the hint works exactly as printed, once the holder is gone
    again = kavi(*shlex.split(hint)[1:], cwd=repo)
    assert again.code == 0 and again.json["status"] == "TRUSTED", again.output


@pytest.mark.slow
def test_wait_seconds_waits_for_the_holder(verified: Verified) -> None:
    repo = verified.repo
    holder = _holder(repo / ".git/kavi", 1.5)
    try:
        started = time.monotonic()
        out = kavi_json("promote-skill", verified.proposal_id, "--yes", "--wait", "60", cwd=repo)
        assert out["status"] == "TRUSTED"
        assert time.monotonic() - started >= 1.0
        assert holder.wait(timeout=30) == 0
    finally:
        holder.kill()


def test_a_killed_holder_releases_the_lock_and_leaves_only_a_record(verified: Verified) -> None:
    repo = verified.repo
    kavi_dir = repo / ".git/kavi"
    holder = _holder(kavi_dir, 60)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert not is_held(kavi_dir)
    found = read_holder(kavi_dir)
    assert found is not None and found.pid == holder.pid and not found.alive()
    report = kavi_json("doctor", cwd=repo, expect=1)
    (finding,) = [f for f in report["findings"] if not f["warning"]]
    assert finding["check"] == "forge lock" and "no longer running" in finding["problem"]
    assert kavi_json("doctor", "--repair", cwd=repo)["ok"] is True
    assert read_holder(kavi_dir) is None
    assert [f for f in kavi_json("doctor", cwd=repo)["findings"] if not f["warning"]] == []


def test_the_lock_is_reentrant_within_a_process(tmp_path: Path) -> None:
    with forge_lock(tmp_path, "outer") as outer, forge_lock(tmp_path, "inner") as inner:
        assert inner is outer and is_held(tmp_path)
    assert not is_held(tmp_path) and read_holder(tmp_path) is None
    other = _holder(tmp_path, 30)
    try:
        with pytest.raises(BusyError, match="holds the forge"), forge_lock(tmp_path, "x", wait=0.2):
            pass
    finally:
        other.kill()
        other.wait()


def test_stale_git_lock_files_are_found_and_removed_but_not_live_ones(verified: Verified) -> None:
    repo = verified.repo
    stale = [repo / ".git/index.lock", repo / ".git/refs/heads/main.lock", repo / ".git/packed-refs.lock"]
    for lock in stale:
        lock.write_text("")
    live = repo / ".git/refs/tags/in-use.lock"
    live.parent.mkdir(parents=True, exist_ok=True)
    keeper = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"f = open({str(live)!r}, 'w'); print('open', flush=True); import time; time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert keeper.stdout is not None and keeper.stdout.readline().strip() == "open"
        res = kavi("promote-skill", verified.proposal_id, "--yes", "--format", "json", cwd=repo)
        assert res.code == 1 and res.json["code"] == "KAVI-BUSY", res.output
        assert "doctor --repair" in res.json["remedy"]
        assert not (repo / ".git/kavi/journal.json").exists()  # nothing visible happened: no journal
        report = kavi_json("doctor", "--repair", cwd=repo, expect=1)
        locks = {f["problem"].split(" ")[0]: f for f in report["findings"] if f["check"] == "git lock file"}
        assert all(locks[f".git/{p.relative_to(repo / '.git')}"]["repaired"] for p in stale)
        live_finding = locks[".git/refs/tags/in-use.lock"]
        assert not live_finding["repaired"] and f"pid {keeper.pid}" in live_finding["problem"]
        assert live.exists() and not any(p.exists() for p in stale)
    finally:
        keeper.kill()
        keeper.wait()
    live.unlink()
    assert kavi_json("promote-skill", verified.proposal_id, "--yes", cwd=repo)["status"] == "TRUSTED"


def test_half_removed_worktree_metadata_is_pruned(verified: Verified) -> None:
    repo = verified.repo
    meta = repo / ".git/worktrees/kavi-0123456789ab"
    meta.mkdir(parents=True)
    (meta / "HEAD").write_text("ref: refs/heads/skill/x\n")  # no gitdir, no commondir
    other = repo / ".git/worktrees/kavi-ba9876543210"
    other.parent.mkdir(exist_ok=True)
    other.write_text("not even a directory\n")
    report = kavi_json("doctor", cwd=repo, expect=1)
    assert {f["check"] for f in report["findings"] if not f["warning"]} == {"leftover worktree"}
    assert kavi_json("doctor", "--repair", cwd=repo)["ok"] is True
    assert not meta.exists() and not other.exists()
    found = json.loads(kavi("doctor", "--format", "json", cwd=repo).stdout)["findings"]
    assert [f for f in found if not f["warning"]] == []


def test_the_plan_writes_nothing_not_even_the_index(verified: Verified) -> None:
    repo = verified.repo
    index = repo / ".git/index"
    before = (index.stat().st_ino, index.stat().st_mtime_ns, index.read_bytes())
    res = kavi("promote-skill", verified.proposal_id, "--format", "json", cwd=repo)  # no terminal, no --yes
    assert res.code == 1 and res.json["code"] == "KAVI-APPROVAL"
    assert (index.stat().st_ino, index.stat().st_mtime_ns, index.read_bytes()) == before


def test_sqlites_locking_protocol_error_is_a_busy_ledger_not_a_bug() -> None:
    """SQLITE_PROTOCOL: another process stopped while holding the write-ahead log's index
    (seen when a command is stopped at its very end): a clean KAVI-BUSY refusal."""
    import sqlite3

    from kavi.errors import BusyError, busy_fault

    found = busy_fault(sqlite3.OperationalError("locking protocol"))
    assert isinstance(found, BusyError) and found.code == "KAVI-BUSY"
    assert busy_fault(sqlite3.OperationalError("no such table: x")) is None
