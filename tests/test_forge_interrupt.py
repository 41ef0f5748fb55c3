"""Ctrl-C stops `git kavi forge` cleanly, within and between attempts.

Each test runs the real command as a child process and sends it a real SIGINT at a
chosen moment (read from its progress output, or from what the stand-in server saw).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from support import packet_agent
from support.fake_openai import FakeOpenAIServer
from support.forge import git, kavi_json, make_forge, propose_write_note, use_advisor

pytestmark = pytest.mark.slow


def _default_sigint() -> None:
    # A suite started in the background by a non-interactive shell inherits SIGINT ignored
    # (and Python then installs no KeyboardInterrupt handler): give the command Ctrl-C back.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(repo: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "kavi", "forge", *args],
        cwd=repo,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
    )


def _interrupt_when(proc: subprocess.Popen[str], ready: Callable[[str], bool], timeout: float = 120) -> str:
    """Read progress lines until ``ready(line)``, then SIGINT; return everything read."""
    assert proc.stderr is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        if ready(line):
            time.sleep(0.5)  # let the step get going
            proc.send_signal(signal.SIGINT)
            return "".join(seen)
    proc.kill()
    raise AssertionError("the moment never came:\n" + "".join(seen))


def _finish(proc: subprocess.Popen[str], within: float = 20) -> tuple[int, str, str]:
    start = time.monotonic()
    out, err = proc.communicate(timeout=within)
    assert time.monotonic() - start < within
    return proc.returncode, out, err


def _ledger(repo: Path) -> sqlite3.Connection:
    con = sqlite3.connect(repo / ".git/kavi/ledger.db")
    con.row_factory = sqlite3.Row
    return con


def _alive(marker: str) -> list[int]:
    """Processes whose command line mentions ``marker``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmdline:
                found.append(int(entry))
    return found


def _clean(repo: Path, tmp_path: Path) -> None:
    assert git("worktree", "list", "--porcelain", cwd=repo).count("worktree ") == 1
    leftovers = [
        p.name for p in (tmp_path / "tmp").iterdir() if p.name.startswith(("kavi-build-", "kavi-verify-"))
    ]
    assert leftovers == []


def _agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str) -> Path:
    script = packet_agent.install(tmp_path / "bin", mode)
    monkeypatch.setenv("ANTHROPIC_API_KEY", packet_agent.CREDENTIAL)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    return script


def test_ctrl_c_while_the_agent_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = _agent(tmp_path, monkeypatch, "hang")
    repo = make_forge(tmp_path)
    pid = propose_write_note(repo)
    proc = _start(repo, pid, "--backend", "claude")
    _interrupt_when(proc, lambda line: "running the claude backend" in line)
    code, _out, err = _finish(proc)
    assert code == 130 and "KAVI-INTERRUPTED" in err, err
    con = _ledger(repo)
    build = con.execute("SELECT * FROM builds").fetchone()
    assert build["status"] == "FAILED" and "KeyboardInterrupt" in build["summary"]
    run = con.execute("SELECT * FROM forge_runs").fetchone()
    assert run["status"] == "INTERRUPTED" and json.loads(run["attempts_json"]) == [build["id"]]
    assert _alive(str(script)) == []
    _clean(repo, tmp_path)
    # the next run researches the interrupted attempt (not the agent's failure) and goes on
    _agent(tmp_path, monkeypatch, "learner")
    resumed = kavi_json("forge", pid, "--backend", "claude", cwd=repo)
    assert resumed["status"] == "VERIFIED"
    assert resumed["steps"][0]["failure_kind"] == "INTERRUPTED"


def test_ctrl_c_while_the_tests_run_at_verify(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _agent(tmp_path, monkeypatch, "slowtest")
    repo = make_forge(tmp_path)
    proc = _start(repo, propose_write_note(repo), "--backend", "claude")
    _interrupt_when(proc, lambda line: "running the tests" in line)
    code, _out, err = _finish(proc, within=15)  # the test would sleep for 60 s
    assert code == 130, err
    con = _ledger(repo)
    assert con.execute("SELECT count(*) FROM verifications").fetchone()[0] == 0
    assert con.execute("SELECT status FROM builds").fetchone()[0] == "SUCCEEDED"
    assert con.execute("SELECT status FROM forge_runs").fetchone()[0] == "INTERRUPTED"
    assert _alive(str(tmp_path / "tmp")) == []  # pytest ran in this test's temp dir: it is gone
    _clean(repo, tmp_path)


def test_ctrl_c_between_attempts_while_the_advisor_thinks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _agent(tmp_path, monkeypatch, "learner")
    repo = make_forge(tmp_path)
    pid = propose_write_note(repo)
    with FakeOpenAIServer() as server:
        use_advisor(repo, server.base_url, timeout_seconds=60)
        server.answer("{}", delay=30)
        proc = _start(repo, pid, "--backend", "claude", "--format", "json")
        deadline = time.monotonic() + 120
        while not server.chat_requests and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert server.chat_requests, "the advisor was never asked"
        proc.send_signal(signal.SIGINT)
        code, out, err = _finish(proc)
    assert code == 130, err
    assert json.loads(out)["code"] == "KAVI-INTERRUPTED"  # one JSON object, as every command prints
    con = _ledger(repo)
    assert con.execute("SELECT count(*) FROM researches").fetchone()[0] == 0  # nothing half-written
    assert con.execute("SELECT count(*) FROM builds").fetchone()[0] == 1
    assert con.execute("SELECT status FROM forge_runs").fetchone()[0] == "INTERRUPTED"
    notes = list((repo / "vault_out/kavi").glob("research_note/*.md"))
    assert notes == []
    _clean(repo, tmp_path)
    # resumed without the advisor: the failed verification is researched, then fixed
    resumed = kavi_json("forge", pid, "--no-advise", cwd=repo)
    assert resumed["status"] == "VERIFIED" and len(resumed["attempts"]) == 1
