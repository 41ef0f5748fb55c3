"""Tripwire: what a build backend must never change in the main repository — detected and undone.

A linked worktree shares ``config``, ``hooks`` and refs with the main repository, so
an agent that reached git could rewrite them. Before the backend runs Kavi takes a
snapshot of the common git dir's config files, hooks, ``info/``,
``objects/info/alternates``, HEAD, packed-refs, every worktree's private files, and
every ref; afterwards it compares. Any difference fails the build, and
:func:`restore` puts the snapshot back (files rewritten or removed, refs reset or
deleted), so the repository ends as it was.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from kavi.gitstore.repo import GitRepo

_FILES = (
    "config",
    "config.worktree",
    "HEAD",
    "packed-refs",
    "objects/info/alternates",
    "commondir",
    "shallow",
)
_DIRS = ("hooks", "info", "worktrees")
_WORKTREE_VOLATILE = ("index", "ORIG_HEAD", "FETCH_HEAD", "gitdir", "locked")


@dataclass
class Snapshot:
    files: dict[str, tuple[int, bytes] | None] = field(default_factory=dict)  # rel → (mode, bytes)
    refs: dict[str, str] = field(default_factory=dict)


def _read(path: Path) -> tuple[int, bytes] | None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if os.path.islink(path):
        return (st.st_mode, b"symlink:" + os.fsencode(os.readlink(path)))
    if not os.path.isfile(path):
        return (st.st_mode, b"")
    with open(path, "rb") as fh:
        return (st.st_mode, fh.read())


def take(repo: GitRepo) -> Snapshot:
    common = repo.common_dir
    snap = Snapshot()
    for rel in _FILES:
        snap.files[rel] = _read(common / rel)
    for rel_dir in _DIRS:
        base = common / rel_dir
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for name in sorted(filenames + [d for d in dirnames if os.path.islink(Path(dirpath, d))]):
                full = Path(dirpath) / name
                rel = full.relative_to(common).as_posix()
                if rel.endswith(".lock") or "/logs/" in f"/{rel}":
                    continue
                if rel_dir == "worktrees" and name in _WORKTREE_VOLATILE:
                    continue
                snap.files[rel] = _read(full)
    snap.refs = repo.refs("refs/")
    return snap


def _rescan(repo: GitRepo, before: Snapshot) -> Snapshot:
    """A new snapshot that also looks at every path the old one knew about."""
    after = take(repo)
    for rel in before.files:
        if rel not in after.files:
            after.files[rel] = _read(repo.common_dir / rel)
    return after


def compare(before: Snapshot, after: Snapshot) -> list[str]:
    """Human-readable list of what changed: ``<where> was created|modified|deleted``."""
    changed: list[str] = []
    for rel in sorted(set(before.files) | set(after.files)):
        old, new = before.files.get(rel), after.files.get(rel)
        if old == new:
            continue
        verb = "created" if old is None else "deleted" if new is None else "modified"
        changed.append(f".git/{rel} was {verb}")
    for name in sorted(set(before.refs) | set(after.refs)):
        old_ref, new_ref = before.refs.get(name), after.refs.get(name)
        if old_ref == new_ref:
            continue
        verb = "created" if old_ref is None else "deleted" if new_ref is None else "moved"
        changed.append(f"{name} was {verb}")
    return changed


def check(repo: GitRepo, before: Snapshot) -> list[str]:
    """Compare with ``before``; if anything changed, restore it. Returns the changes."""
    after = _rescan(repo, before)
    changes = compare(before, after)
    if changes:
        restore(repo, before, after)
    return changes


def restore(repo: GitRepo, before: Snapshot, after: Snapshot) -> None:
    common = repo.common_dir
    for rel in set(before.files) | set(after.files):
        old, new = before.files.get(rel), after.files.get(rel)
        if old == new:
            continue
        path = common / rel
        if path.is_symlink() or path.is_file():
            path.unlink()
        if old is not None and not old[1].startswith(b"symlink:"):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(old[1])
            os.chmod(path, old[0] & 0o7777)
        elif old is not None:
            os.symlink(os.fsdecode(old[1][len(b"symlink:") :]), path)
    for name in set(before.refs) | set(after.refs):
        old_ref, new_ref = before.refs.get(name), after.refs.get(name)
        if old_ref == new_ref:
            continue
        if old_ref is None:
            repo.delete_ref(name)
        else:
            repo.set_ref(name, old_ref, message="kavi: tripwire restore")
