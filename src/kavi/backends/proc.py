"""Run a child process in its own process group with a hard deadline.

On timeout the whole group is killed (SIGKILL), so an agent cannot leave
background children behind; after a normal exit, stragglers in the group are
killed too. Output is captured through temporary files (no pipe deadlocks),
bounded when read back.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

MAX_CAPTURE = 4_000_000


@dataclass(frozen=True)
class ProcResult:
    returncode: int | None  # None when killed on timeout
    stdout: str
    stderr: str
    timed_out: bool
    duration_s: float


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _read(fh: IO[bytes]) -> str:
    fh.seek(0)
    data = fh.read(MAX_CAPTURE + 1)
    text = data[:MAX_CAPTURE].decode("utf-8", "replace")
    if len(data) > MAX_CAPTURE:
        text += "\n[... output truncated by Kavi ...]\n"
    return text


def run_bounded(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    stdin_data: bytes | None = None,
) -> ProcResult:
    start = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.PIPE if stdin_data is not None else subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
        timed_out = False
        try:
            if stdin_data is not None and proc.stdin is not None:
                try:
                    proc.stdin.write(stdin_data)
                    proc.stdin.close()
                except BrokenPipeError:
                    pass
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            _kill_group(proc.pid)
            proc.wait()
        return ProcResult(
            returncode=None if timed_out else proc.returncode,
            stdout=_read(out),
            stderr=_read(err),
            timed_out=timed_out,
            duration_s=time.monotonic() - start,
        )
