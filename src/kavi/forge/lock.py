"""The forge lock: one Kavi command at a time changes a forge.

Every command that changes the forge — ``init``, ``build-skill``, ``verify-skill``,
``promote-skill``, ``revoke-skill``, ``ledger sync``, ``ledger import``, ``doctor
--repair`` — holds an exclusive ``flock`` on ``<git-common-dir>/kavi/forge.lock`` for
its whole run. The kernel releases it when the process ends, however it ends
(``kill -9`` included), so the lock itself can never be stale. Who holds it (pid,
command, since when, host) is written into the file, so a second command can say
who is in its way; after a crash that text may name a dead process, which is
harmless and shown as such by ``git kavi doctor``.

``propose-skill`` and ``run-skill`` do not take it: they only append ledger events,
which SQLite serialises (every vault file they write is written inside their SQLite
write transaction), and touch no ref.

Usage::

    with forge_lock(forge.kavi_dir, "promote-skill write_note", wait=30):
        ...

``wait`` is how many seconds to wait for the holder to finish (0: refuse at once
with :class:`~kavi.errors.BusyError`, exit 1).
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path

from kavi.errors import BusyError

LOCK_FILE = "forge.lock"
POLL_SECONDS = 0.05
_HELD: dict[Path, Holder] = {}  # locks this process holds (taking one again is a no-op)


@dataclass(frozen=True)
class Holder:
    pid: int
    command: str
    since: str
    host: str

    def describe(self) -> str:
        return f"pid {self.pid}, `git kavi {self.command}`, since {self.since}" + (
            f" on {self.host}" if self.host and self.host != socket.gethostname() else ""
        )

    def alive(self) -> bool:
        """Whether the process named still exists (on this host)."""
        if self.host and self.host != socket.gethostname():
            return True  # cannot tell: assume so
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def lock_path(kavi_dir: Path) -> Path:
    return kavi_dir / LOCK_FILE


def read_holder(kavi_dir: Path) -> Holder | None:
    """What the lock file says about its (last) holder, if anything."""
    try:
        text = lock_path(kavi_dir).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    try:
        data = json.loads(text) if text.strip() else None
        if not isinstance(data, dict):
            return None
        return Holder(int(data["pid"]), str(data["command"]), str(data["since"]), str(data.get("host", "")))
    except (ValueError, KeyError, TypeError):
        return None


def is_held(kavi_dir: Path) -> bool:
    """Whether some process holds the forge lock right now (a probe, never blocks)."""
    import fcntl

    try:
        fd = os.open(lock_path(kavi_dir), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)  # closing drops the probe's shared lock
    return False


@contextmanager
def forge_lock(kavi_dir: Path, command: str, *, wait: float = 0.0) -> Iterator[Holder]:
    """Hold the forge lock for the duration of the block (see the module docstring)."""
    import fcntl
    from datetime import datetime

    key = kavi_dir.resolve()
    if key in _HELD:  # re-entrant: an inner step of a command that holds it already
        yield _HELD[key]
        return
    kavi_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path(kavi_dir), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o664)
    try:
        deadline = time.monotonic() + max(0.0, wait)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise _busy(kavi_dir, wait) from None
                time.sleep(POLL_SECONDS)
        holder = Holder(
            pid=os.getpid(),
            command=" ".join(command.split())[:200],
            since=datetime.now(UTC).isoformat(timespec="seconds"),
            host=socket.gethostname(),
        )
        _write_holder(fd, holder)
        _HELD[key] = holder
        try:
            yield holder
        finally:
            del _HELD[key]
            try:
                _write_holder(fd, None)
            except OSError:
                pass  # a full disk cannot truncate; the text names a dead pid, which is harmless
    finally:
        os.close(fd)  # releases the lock


def _write_holder(fd: int, holder: Holder | None) -> None:
    os.ftruncate(fd, 0)
    if holder is not None:
        data = json.dumps(holder.__dict__).encode() + b"\n"
        os.pwrite(fd, data, 0)


def _busy(kavi_dir: Path, wait: float) -> BusyError:
    holder = read_holder(kavi_dir)
    who = holder.describe() if holder is not None else "a process that has not said who it is yet"
    waited = f" (waited {wait:g}s)" if wait > 0 else ""
    return BusyError(
        f"another Kavi command ({who}) holds the forge{waited}",
        why="one command at a time may change a forge: its refs, ledger and working tree move together",
        remedy="wait for it to finish, or run this command with `--wait SECONDS` to wait for it",
        details={"holder": holder.__dict__ if holder is not None else None},
    )
