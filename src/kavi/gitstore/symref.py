"""Is a ref, as a push names it, really that ref? (standard library only: the hook's fast
lane uses it without loading pygit2)."""

from __future__ import annotations

import os


def alias_target(git_dir: str | os.PathLike[str], ref: str) -> str | None:
    """What ``ref`` really points through on this repository, if it is not itself: the
    target of a symbolic ref (an alias such as ``master -> main`` kept after a rename), or
    a note that the ref file or its directory is reached through a symlink. None for an
    ordinary (or not yet existing) ref."""
    base = os.path.realpath(git_dir)
    path = os.path.join(base, ref)
    parent = os.path.dirname(path)
    if os.path.lexists(parent) and os.path.realpath(parent) != parent:
        return "(a directory reached through a symlink)"
    try:
        if os.path.islink(path):
            return "(a symlink)"
        if not os.path.isfile(path):
            return None
        with open(path, "rb") as fh:
            head = fh.read(512)
    except OSError:
        return None
    return head[4:].strip().decode("utf-8", "replace") if head.startswith(b"ref:") else None
