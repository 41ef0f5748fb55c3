"""``run-skill`` as its own process: the worker starts first, the process ends itself.

The command starts its confined worker before it imports anything else and, once the
run is recorded and its output written, ends without the interpreter's teardown. These
tests run the real command in a child process and check that nothing is lost on the way:
the output, the ledger's record (readable by a later command), the RUN_RECORD file, a
refused run's worker, a stdout nobody reads.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import Verified
from support.forge import kavi_json

GOOD = {"path": "Inbox/p.md", "title": "P", "body": "process"}


@pytest.fixture
def trusted(verified: Verified) -> Path:
    kavi_json("promote-skill", verified.proposal_id, "--yes", cwd=verified.repo)
    return verified.repo


def _kavi(repo: Path, *args: str, stdout: int | None = subprocess.PIPE) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kavi", *args],
        cwd=repo,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def _runs(repo: Path) -> list[tuple[str, str]]:
    db = repo / ".git" / "kavi" / "ledger.db"
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return [(r[0], r[1]) for r in conn.execute("SELECT id, status FROM runs ORDER BY started_at")]


@contextlib.contextmanager
def _adopting_orphans() -> Iterator[None]:
    """This process adopts the orphans of its descendants while the block runs
    (``PR_SET_CHILD_SUBREAPER``): a worker the command left behind becomes our child."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(36, 1, 0, 0, 0)
    try:
        yield
    finally:
        libc.prctl(36, 0, 0, 0, 0)


def _left_behind() -> list[str]:
    """Our children other than the command itself, once the jail's last processes (killed
    by the kernel as the command ended) are reaped; a worker still running after 5 s stays."""
    deadline = time.monotonic() + 5
    while True:
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        found = []
        for pid in os.listdir("/proc"):
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
                cmd = (
                    Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
                )
            except (OSError, ValueError):
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == os.getpid():
                found.append(cmd)
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_a_run_in_its_own_process_is_complete(trusted: Path) -> None:
    with _adopting_orphans():
        proc = _kavi(trusted, "run-skill", "write_note", "--json", json.dumps(GOOD), "--format", "json")
        assert not _left_behind()
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["status"] == "SUCCEEDED" and out["output"]["written_path"] == "Inbox/p.md"
    # the ledger has it, committed: another process reads it (the connection was closed first)
    assert (out["run_id"], "SUCCEEDED") in _runs(trusted)
    assert (trusted / out["record"]).read_text().count(out["run_id"]) >= 1
    assert (trusted / "vault_out" / "Inbox" / "p.md").read_text().startswith("# P")
    # a later command sees the same run
    shown = kavi_json("show", out["run_id"], cwd=trusted)
    assert out["run_id"] in json.dumps(shown) and "SUCCEEDED" in json.dumps(shown)


def test_a_refused_run_leaves_no_worker_behind(trusted: Path) -> None:
    before = _runs(trusted)
    with _adopting_orphans():
        bad = _kavi(trusted, "run-skill", "write_note", "--json", '{"path": 1}', "--format", "json")
        missing = _kavi(trusted, "run-skill", "no_such_skill", "--json", "{}", "--format", "json")
        usage = _kavi(trusted, "run-skill", "write_note", "--format", "json")
        assert not _left_behind()
    assert bad.returncode != 0 and json.loads(bad.stdout)["code"] == "KAVI-INVALID"
    assert missing.returncode != 0 and "no_such_skill" in json.loads(missing.stdout)["message"]
    assert usage.returncode == 2 and "exactly one of --json or --input-file" in usage.stdout
    assert len(_runs(trusted)) == len(before) + 1  # the invalid input is recorded as refused


def test_a_closed_stdout_is_an_error_not_a_silent_success(trusted: Path) -> None:
    read, write = os.pipe()
    os.close(read)  # nobody will read what the command prints
    try:
        proc = _kavi(trusted, "run-skill", "write_note", "--json", json.dumps(GOOD), stdout=write)
    finally:
        os.close(write)
    assert proc.returncode == 141, proc.stderr  # as if killed by SIGPIPE, and said on stderr
    assert "KAVI-IO-ERROR" in proc.stderr and "reader closed the pipe" in proc.stderr
    assert "internal error" not in proc.stderr
    assert _runs(trusted)[-1][1] == "SUCCEEDED"  # the run itself happened and was recorded


def test_a_closed_or_full_stdout_is_reported_on_stderr(trusted: Path) -> None:
    before = len(_runs(trusted))
    argv = [
        sys.executable,
        "-m",
        "kavi",
        "run-skill",
        "write_note",
        "--json",
        json.dumps(GOOD),
        "--format",
        "json",
    ]
    closed = subprocess.run(
        argv, cwd=trusted, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=120,
        preexec_fn=lambda: os.close(1),  # the caller closed descriptor 1 (`>&-`)
    )  # fmt: skip
    with open("/dev/full", "w") as full:
        filled = subprocess.run(
            argv, cwd=trusted, stdout=full, stderr=subprocess.PIPE, text=True, timeout=120
        )
    for proc in (closed, filled):
        assert proc.returncode == 2, proc.stderr
        assert "KAVI-IO-ERROR" in proc.stderr and "output could not be written" in proc.stderr
        assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
    assert "stdout is closed" in closed.stderr and "No space left" in filled.stderr
    assert [status for _id, status in _runs(trusted)[before:]] == ["SUCCEEDED", "SUCCEEDED"]
