"""Tripwire: what a build backend must never change in the main repository — detected and undone.

A linked worktree shares ``config``, ``hooks`` and refs with the main repository, so
an agent that reached git could rewrite them. Before the backend runs Kavi takes a
snapshot of the common git dir's config files, hooks, ``info/``, submodules' config and hooks,
``objects/info/alternates``, HEAD, packed-refs, every worktree's private files, and
every ref — plus the type and permissions of those directories and any ``*.lock``
file under ``refs/``; afterwards it compares. Any difference fails the build, and
:func:`restore` puts the snapshot back (files rewritten or removed, directories
rebuilt, permissions reset, stale locks removed, refs reset or deleted), so the
repository ends as it was. It walks iteratively and never opens a non-regular file,
so a nested maze or a FIFO cannot crash or hang it.

While the backend runs the snapshot also waits on disk (:func:`save`), so that
``git kavi doctor`` can tell what changed after Kavi itself was killed mid-build. The
backend could have rewritten that file too, so ``doctor`` only reports from it and
quarantines hooks — it never writes content it read there.

It is the fallback for machines without user namespaces (see
:mod:`kavi.confine.jail`): a same-user process can still read anything, write the
object database or the working tree, and race the restore; only the jail stops that.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from kavi.errors import KaviError
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
_DIRS = ("hooks", "info", "worktrees", "modules")
# Inside submodules' git dirs (``modules/<name>/``) config and hooks matter (``git status``
# recurses into submodules and runs their fsmonitor); their objects and refs do not.
_MODULES_PRUNE = frozenset(("objects", "refs", "logs"))
_WORKTREE_VOLATILE = ("index", "ORIG_HEAD", "FETCH_HEAD", "gitdir", "locked")
_TYPED_DIRS = ("", "hooks", "info", "refs", "refs/heads", "refs/tags", "objects", "worktrees", "modules")
MAX_DEPTH = 32


@dataclass
class Snapshot:
    files: dict[str, tuple[int, bytes] | None] = field(default_factory=dict)  # rel → (mode, bytes)
    refs: dict[str, str] = field(default_factory=dict)
    dirs: dict[str, int | None] = field(default_factory=dict)  # rel → lstat mode (type and bits)
    locks: set[str] = field(default_factory=set)  # ``*.lock`` files under refs/ and the git dir


def _read(path: Path) -> tuple[int, bytes] | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if stat.S_ISLNK(st.st_mode):
        return (st.st_mode, b"symlink:" + os.fsencode(os.readlink(path)))
    if not stat.S_ISREG(st.st_mode):  # a directory, FIFO, socket: its type is what counts
        return (st.st_mode, b"")
    try:
        with open(path, "rb") as fh:
            return (st.st_mode, fh.read())
    except OSError:
        return (st.st_mode, b"(unreadable)")


def _lmode(path: Path) -> int | None:
    try:
        return os.lstat(path).st_mode
    except OSError:
        return None


def _scan(
    base: Path, common: Path, depth_limit: int = MAX_DEPTH, prune: frozenset[str] = frozenset()
) -> list[tuple[str, os.DirEntry[str], bool]]:
    """(rel, entry, is_dir) for everything under ``base``: iterative, at most ``depth_limit``
    deep, not descending into directories named in ``prune``."""
    out: list[tuple[str, os.DirEntry[str], bool]] = []
    stack = [(base, 0)]
    while stack:
        current, depth = stack.pop()
        try:
            with os.scandir(current) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            out.append((Path(entry.path).relative_to(common).as_posix(), entry, is_dir))
            if is_dir and depth + 1 < depth_limit and entry.name not in prune:
                stack.append((Path(entry.path), depth + 1))
    return out


def take(repo: GitRepo) -> Snapshot:
    common = repo.common_dir
    snap = Snapshot()
    for rel in _FILES:
        snap.files[rel] = _read(common / rel)
    for rel in _TYPED_DIRS:
        snap.dirs[rel] = _lmode(common / rel if rel else common)
    for top in _DIRS:
        prune = _MODULES_PRUNE if top == "modules" else frozenset()
        for rel, entry, is_dir in _scan(common / top, common, prune=prune):
            if rel.endswith(".lock") or "/logs/" in f"/{rel}":
                continue
            if top in ("worktrees", "modules") and entry.name in _WORKTREE_VOLATILE:
                continue
            if is_dir:
                snap.dirs[rel] = _lmode(Path(entry.path))
            else:
                snap.files[rel] = _read(Path(entry.path))
    snap.locks = {rel for rel, _e, is_dir in _scan(common / "refs", common) if rel.endswith(".lock")}
    snap.locks |= {p.name for p in common.glob("*.lock")}
    try:
        snap.refs = repo.refs("refs/")
    except KaviError as exc:
        snap.refs = {"(refs)": f"unreadable: {exc.message}"}
    return snap


def rescan(repo: GitRepo, before: Snapshot) -> Snapshot:
    """A new snapshot that also looks at every path the old one knew about."""
    after = take(repo)
    for rel in before.files:
        if rel not in after.files:
            after.files[rel] = _read(repo.common_dir / rel)
    for rel in before.dirs:
        if rel not in after.dirs:
            after.dirs[rel] = _lmode(repo.common_dir / rel if rel else repo.common_dir)
    return after


def _what(mode: int | None) -> str:
    if mode is None:
        return "missing"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "a symlink" if stat.S_ISLNK(mode) else "a file"


def compare(before: Snapshot, after: Snapshot) -> list[str]:
    """Human-readable list of what changed: ``<where> was created|modified|deleted``."""
    changed: list[str] = []
    for rel in sorted(set(before.dirs) | set(after.dirs)):
        old, new = before.dirs.get(rel), after.dirs.get(rel)
        if old == new:
            continue
        where = f".git/{rel}" if rel else ".git"
        if old is not None and new is not None and stat.S_ISDIR(old) and stat.S_ISDIR(new):
            bits = f"{stat.S_IMODE(old):o} → {stat.S_IMODE(new):o}"
            changed.append(f"{where} permissions changed ({bits})")
        elif old is None:
            changed.append(f"{where} was created ({_what(new)})")
        else:
            changed.append(f"{where} was replaced ({_what(old)} → {_what(new)})")
    for rel in sorted(set(before.files) | set(after.files)):
        old_file, new_file = before.files.get(rel), after.files.get(rel)
        if old_file == new_file:
            continue
        verb = "created" if old_file is None else "deleted" if new_file is None else "modified"
        changed.append(f".git/{rel} was {verb}")
    for rel in sorted(after.locks - before.locks):
        changed.append(f".git/{rel} was created (a lock file: git would refuse to update that ref)")
    for name in sorted(set(before.refs) | set(after.refs)):
        old_ref, new_ref = before.refs.get(name), after.refs.get(name)
        if old_ref == new_ref:
            continue
        verb = "created" if old_ref is None else "deleted" if new_ref is None else "moved"
        changed.append(f"{name} was {verb}")
    return changed


def saved_path(repo: GitRepo, build_id: str) -> Path:
    """Where a build's snapshot waits while its backend runs (for ``doctor`` after a crash)."""
    return repo.common_dir / "kavi" / "tripwire" / f"{build_id}.json"


def save(snapshot: Snapshot, path: Path) -> None:
    """Write ``snapshot`` (owner-only) so that ``doctor`` can undo an interrupted build."""
    import base64
    import json

    data = {
        "files": {
            rel: None if v is None else [v[0], base64.b64encode(v[1]).decode()]
            for rel, v in snapshot.files.items()
        },
        "refs": snapshot.refs,
        "dirs": snapshot.dirs,
        "locks": sorted(snapshot.locks),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)


_MAX_SAVED = 16 << 20


def _known_rel(rel: object) -> bool:
    """A relative path the snapshot may name: one of ours, inside the git dir."""
    if not isinstance(rel, str) or "\0" in rel or rel.startswith("/"):
        return False
    if rel == "" or rel in _FILES or rel in _TYPED_DIRS:
        return True
    parts = rel.split("/")
    return parts[0] in _DIRS and all(p not in ("", ".", "..") for p in parts)


def _mode(value: object) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or not 0 <= value < 1 << 32:
        raise ValueError("bad mode")
    if not (stat.S_ISREG(value) or stat.S_ISDIR(value) or stat.S_ISLNK(value) or value == 0):
        return value & ~0o777  # a special file: its type is all that was recorded
    return value


def load(path: Path) -> Snapshot | None:
    """A snapshot written by :func:`save`, or None if it is missing, not a regular file,
    too large, malformed, or names anything outside the git dir's watched paths. The
    backend could have rewritten it: callers use it to *report*, never to write content."""
    import base64
    import json

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > _MAX_SAVED:
            return None
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = json.loads(fh.read(_MAX_SAVED + 1))
        files: dict[str, tuple[int, bytes] | None] = {}
        for rel, v in data["files"].items():
            if not _known_rel(rel):
                return None
            if v is None:
                files[rel] = None
            else:
                mode = _mode(v[0])
                files[rel] = (mode or 0, base64.b64decode(v[1], validate=True))
        dirs = {rel: _mode(v) for rel, v in data["dirs"].items() if _known_rel(rel)}
        if len(dirs) != len(data["dirs"]):
            return None
        refs = {str(k): str(v) for k, v in data["refs"].items() if str(k).startswith("refs/")}
        locks = {str(x) for x in data["locks"] if _known_rel(str(x)) or str(x).endswith(".lock")}
        return Snapshot(files=files, refs=refs, dirs=dirs, locks=locks)
    except Exception:  # whatever the file holds, it is only a missing snapshot
        return None
    finally:
        os.close(fd)


def discard(path: Path) -> None:
    """Remove a saved snapshot (whatever the backend may have put there instead)."""
    try:
        _remove(path)
    except OSError:
        pass


def check(repo: GitRepo, before: Snapshot) -> list[str]:
    """Compare with ``before``; if anything changed, restore it. Returns the changes."""
    after = rescan(repo, before)
    changes = compare(before, after)
    if changes:
        restore(repo, before, after)
    return changes


def restore(repo: GitRepo, before: Snapshot, after: Snapshot) -> None:
    """Put ``before`` back. Each path is restored on its own: one failure stops nothing."""
    common = repo.common_dir
    rebuilt: list[str] = []
    for rel in sorted(set(before.dirs) | set(after.dirs), key=lambda r: r.count("/")):
        old, new = before.dirs.get(rel), after.dirs.get(rel)
        if old == new or any(rel.startswith(r + "/") for r in rebuilt):
            continue
        path = common / rel if rel else common
        try:
            if old is not None and new is not None and stat.S_ISDIR(old) and stat.S_ISDIR(new):
                os.chmod(path, stat.S_IMODE(old))
                continue
            _remove(path)
            if old is not None and stat.S_ISDIR(old):
                path.mkdir(mode=stat.S_IMODE(old), parents=True)
                os.chmod(path, stat.S_IMODE(old))
            rebuilt.append(rel)
        except OSError:
            pass
    for rel in sorted(set(before.files) | set(after.files)):
        old_file, new_file = before.files.get(rel), after.files.get(rel)
        if old_file == new_file and not any(rel.startswith(r + "/") for r in rebuilt):
            continue
        try:
            _restore_file(common / rel, old_file)
        except OSError:
            pass
    for rel in after.locks - before.locks:
        try:
            os.unlink(common / rel)
        except OSError:
            pass
    for name in set(before.refs) | set(after.refs):
        old_ref, new_ref = before.refs.get(name), after.refs.get(name)
        if old_ref == new_ref or name == "(refs)":
            continue
        try:
            if old_ref is None or old_ref.startswith("ref: "):
                repo.delete_ref(name)
            else:
                repo.set_ref(name, old_ref, message="kavi: tripwire restore")
        except (KaviError, OSError):
            pass


def _remove(path: Path) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        from kavi.gitstore.sandbox import remove_tree

        remove_tree(path)
    elif os.path.lexists(path):
        os.unlink(path)  # never open(): a FIFO in place of a file would block


def _restore_file(path: Path, old: tuple[int, bytes] | None) -> None:
    """Replace whatever is at ``path`` (file, FIFO, directory tree) with ``old``."""
    _remove(path)
    if old is None or (not stat.S_ISREG(old[0]) and not stat.S_ISLNK(old[0])):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    if stat.S_ISLNK(old[0]):
        os.symlink(os.fsdecode(old[1][len(b"symlink:") :]), path)
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, stat.S_IMODE(old[0]))
    with os.fdopen(fd, "wb") as fh:
        fh.write(old[1])
    os.chmod(path, stat.S_IMODE(old[0]))
