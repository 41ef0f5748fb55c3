"""Run a child process in its own process group with a hard deadline.

On timeout the whole group and every descendant are killed (SIGKILL), so an
agent cannot leave background children behind, even ones that left the group with
``setsid``; after a normal exit, stragglers are killed too. SIGTERM/SIGHUP sent to
Kavi while a backend runs unwind the same way. Output is captured through temporary files (no pipe deadlocks),
bounded when read back.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from kavi.confine.launch import die_with_parent, prctl

MAX_CAPTURE = 1_000_000

_RUNNING: set[int] = set()  # processes run_bounded is waiting for, in any thread


def kill_running() -> None:
    """Kill every process :func:`run_bounded` is waiting for, with its descendants.

    For a Ctrl-C in the main thread while worker threads run tools (the verify gates):
    the threads' waits then return at once instead of running the tools to the end."""
    for pid in list(_RUNNING):
        kill_tree(pid)


@dataclass(frozen=True)
class ProcResult:
    returncode: int | None  # None when killed on timeout
    stdout: str
    stderr: str
    timed_out: bool
    duration_s: float


def _children() -> dict[int, list[int]]:
    """Parent pid → child pids, from ``/proc`` (empty where there is no ``/proc``)."""
    out: dict[int, list[int]] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return out
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        # ``pid (comm) state ppid …``: comm may hold spaces and parentheses.
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 1 and fields[1].isdigit():
            out.setdefault(int(fields[1]), []).append(int(name))
    return out


def kill_tree(pid: int) -> None:
    """SIGKILL ``pid``'s process group and every descendant of ``pid``.

    A descendant that left the group (``setsid``) is still a descendant; killing the
    init of a PID namespace kills everything inside it. The tree is read before the
    first kill (a killed parent's children are re-parented away from it)."""
    doomed = {pid}
    for _round in range(3):  # a fork racing the kill is caught on the next round
        children = _children()
        stack, found = list(doomed), set()
        while stack:
            for child in children.get(stack.pop(), []):
                if child not in doomed and child not in found:
                    found.add(child)
                    stack.append(child)
        if _round == 0:
            for kill, target in ((os.killpg, pid), (os.kill, pid)):  # its group, and itself
                try:
                    kill(target, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        if not found:
            return
        for child in found:
            try:
                os.kill(child, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        doomed |= found


def _child_setup(limits: Mapping[str, object] | None) -> Callable[[], None]:
    """What a child does before exec: die with Kavi; with ``limits``, take them on (the
    unconfined fallback: without a PID namespace the process count is not limited)."""
    if not limits:
        return die_with_parent
    from kavi.confine.init import apply_limits

    own = {k: v for k, v in limits.items() if k != "processes"}

    def setup() -> None:
        die_with_parent()
        apply_limits(0, own)
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)

    return setup


class _Subreaper:
    """While a backend runs, Kavi is a child subreaper: a daemon the backend double-forks
    is re-parented to Kavi, not to init, so it is still found — and killed — afterwards."""

    def __init__(self, wanted: bool) -> None:
        import threading

        self.me = os.getpid()
        # only where no sibling could be mistaken for a stray (the verify gates run
        # concurrently from worker threads and never ask for this)
        self.enabled = wanted and threading.current_thread() is threading.main_thread()
        self.before = set(_children().get(self.me, [])) if self.enabled else set()
        self.enabled = self.enabled and prctl(36, 1) == 0  # PR_SET_CHILD_SUBREAPER

    def finish(self) -> None:
        if not self.enabled:
            return
        strays = [p for p in _children().get(self.me, []) if p not in self.before]
        for pid in strays:
            kill_tree(pid)
        for pid in strays:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        prctl(36, 0)


class _Terminated(KeyboardInterrupt):
    """Kavi itself was asked to stop (SIGTERM/SIGHUP) while a backend ran."""


def _terminate(signum: int, frame: object) -> None:
    raise _Terminated(f"signal {signum}")


def _read(fh: IO[bytes]) -> str:
    fh.seek(0)
    data = fh.read(MAX_CAPTURE + 1)
    text = data[:MAX_CAPTURE].decode("utf-8", "replace")
    if len(data) > MAX_CAPTURE:
        text += "\n[... output truncated by Kavi ...]\n"
    return text


MAX_LINE = 4_000_000
DROPPED_LINE = "\0kavi: line dropped"  # handed to on_line in place of an over-long line


class _Tail:
    """Hands each complete line written to the capture file ``fd`` to ``on_line`` while the
    process runs (``pread``: the child's file offset is never moved). A line longer than
    :data:`MAX_LINE` is replaced by :data:`DROPPED_LINE`, so the reader knows it missed one."""

    def __init__(self, fd: int, on_line: Callable[[str], None]) -> None:
        self.fd, self.on_line = fd, on_line
        self.offset = 0
        self.partial = b""
        self.dropping = False

    def feed(self) -> None:
        while True:
            chunk = os.pread(self.fd, 65536, self.offset)
            if not chunk:
                return
            self.offset += len(chunk)
            *lines, rest = (self.partial + chunk).split(b"\n")
            for line in lines:
                too_long = self.dropping or len(line) > MAX_LINE
                self._emit(DROPPED_LINE if too_long else line.decode("utf-8", "replace"))
                self.dropping = False
            self.partial = rest
            if len(self.partial) > MAX_LINE:
                self.partial, self.dropping = b"", True

    def finish(self) -> None:
        self.feed()
        if self.partial or self.dropping:
            self._emit(DROPPED_LINE if self.dropping else self.partial.decode("utf-8", "replace"))
        self.partial, self.dropping = b"", False

    def _emit(self, line: str) -> None:
        try:
            self.on_line(line)
        except Exception:  # a reader's bug must not stop the process being watched or killed
            pass


_TRAPPED = (signal.SIGTERM, signal.SIGHUP)


def _trap_termination() -> dict[int, object] | None:
    """While a backend runs, SIGTERM/SIGHUP (a cancelled CI job, a closed terminal)
    unwind through the caller's cleanup instead of leaving the agent running."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None
    return {sig: signal.signal(sig, _terminate) for sig in _TRAPPED}


def _restore_handlers(previous: dict[int, object] | None) -> None:
    for sig, handler in (previous or {}).items():
        signal.signal(sig, handler)  # type: ignore[arg-type]


def _wait(proc: subprocess.Popen[bytes], deadline: float, tail: _Tail | None) -> None:
    """Wait for ``proc`` until ``deadline`` (``TimeoutExpired`` then), feeding ``tail``."""
    if tail is None:
        proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        return
    while True:
        left = deadline - time.monotonic()
        try:
            proc.wait(timeout=max(0.0, min(0.1, left)))
            return
        except subprocess.TimeoutExpired:
            if left <= 0.1:
                raise
        finally:
            tail.feed()


def run_bounded(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    stdin_data: bytes | None = None,
    reap_orphans: bool = False,
    on_line: Callable[[str], None] | None = None,
    limits: Mapping[str, object] | None = None,
    pass_fds: Sequence[int] = (),
) -> ProcResult:
    """Run ``argv`` to completion or ``timeout``; with ``reap_orphans`` (an untrusted
    backend, one at a time, from the main thread) also kill the daemons it double-forked;
    with ``on_line``, every line of its stdout is handed over as it is written (all of
    them, also beyond what the result keeps); with ``limits`` (see
    :func:`kavi.confine.init.apply_limits`) as its rlimits."""
    start = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        reaper = _Subreaper(reap_orphans)
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.PIPE if stdin_data is not None else subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
            preexec_fn=_child_setup(limits),
            pass_fds=tuple(pass_fds),
        )
        timed_out = False
        previous = _trap_termination()
        tail = _Tail(out.fileno(), on_line) if on_line is not None else None
        _RUNNING.add(proc.pid)
        try:
            if stdin_data is not None and proc.stdin is not None:
                try:
                    proc.stdin.write(stdin_data)
                    proc.stdin.close()
                except BrokenPipeError:
                    pass
            _wait(proc, start + timeout, tail)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            kill_tree(proc.pid)
            proc.wait()
            _RUNNING.discard(proc.pid)
            reaper.finish()
            _restore_handlers(previous)
            if tail is not None:
                tail.finish()
        return ProcResult(
            returncode=None if timed_out else proc.returncode,
            stdout=_read(out),
            stderr=_read(err),
            timed_out=timed_out,
            duration_s=time.monotonic() - start,
        )
