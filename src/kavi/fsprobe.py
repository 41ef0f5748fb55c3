"""Can the repository be written right now? Asked when a write failed without saying why.

libgit2 and SQLite do not always pass the operating system's reason on ("GitError: no
error", "disk I/O error", "object not found" after an object write that failed half-way).
Rather than call that a bug, the top-level handler writes (and fsyncs, and removes) a
small probe file where Kavi writes — the git directory and the working tree: if the
probe fails, its errno names the fault (a full disk, a read-only file system, a refused
permission); if it succeeds, the failure was not the environment's.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

PROBE_BYTES = 64 * 1024
NEARLY_FULL = 1 << 20  # less free space than this is a full disk for Kavi's purposes


def probe(directory: Path) -> OSError | None:
    """The error writing a small file in ``directory`` raises, or None if it can be written."""
    try:
        fd, name = tempfile.mkstemp(prefix=".kavi-probe-", dir=directory)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return exc
    try:
        os.write(fd, b"\0" * PROBE_BYTES)
        os.fsync(fd)
    except OSError as exc:
        return exc
    finally:
        os.close(fd)
        try:
            os.unlink(name)
        except OSError:
            pass
    return None


def where_kavi_writes(start: Path | None = None) -> list[Path]:
    """The directories to probe: the forge's Kavi directory (or git directory) and work tree."""
    from kavi.errors import KaviError
    from kavi.locate import locate

    try:
        location = locate(start)
    except KaviError:
        return []
    kavi = location.kavi_dir if location.kavi_dir.is_dir() else location.common_dir
    return [kavi, location.workdir]


def write_failure(start: Path | None = None) -> OSError | None:
    import errno

    for directory in where_kavi_writes(start):
        try:
            st = os.statvfs(directory)
        except OSError:
            continue
        free = st.f_bavail * st.f_frsize
        if free < NEARLY_FULL:  # what failed may have freed a little space since
            return OSError(
                errno.ENOSPC, f"No space left on device (only {free // 1024} KiB free)", str(directory)
            )
        found = probe(directory)
        if found is not None:
            return found
    return None
