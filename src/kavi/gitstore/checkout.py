"""Moving a checkout from one tree to the next, path by path, after its branch moved.

Promotion and revocation move the target branch first and update the working tree and
index *last* (so a crash in between leaves a state the journal recognises, never a
working tree ahead of its branch). libgit2's checkout cannot do that — it takes HEAD
as the baseline, which by then is already the new commit — so this module does it
for the few paths the change touches, with git's SAFE rules:

* a working file (or index entry) is replaced only if it holds exactly the *old*
  content; a file already holding the *new* content is left as it is;
* anything else — local edits, staged changes, an ignored or untracked file where the
  old tree has none, a directory or a link — is a conflict and is never overwritten.

Each file is written to a temporary name and renamed into place, and the index is
written once at the end, so re-running after a crash at any point finishes the job.
:func:`conflicts` checks a plan without writing anything (not even ``.git/index``).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

import pygit2

from kavi.gitstore.repo import MODE_BLOB, MODE_EXEC, GitRepo, TreeEntry

Entry = tuple[int, str] | None  # (mode, blob id) or absent


@dataclass
class Advance:
    """The outcome of :func:`advance`: what changed, and what was kept because it was in the way."""

    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


def _entry(found: TreeEntry | None) -> Entry:
    return None if found is None else (found.mode, found.oid)


def _work_state(path: Path) -> Entry | str:
    """The working file as a tree entry, None if absent, or a string naming what else it is."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        return "a file where a directory is expected"
    if stat.S_ISLNK(st.st_mode):
        return "a symbolic link"
    if stat.S_ISDIR(st.st_mode):
        return "a directory"
    if not stat.S_ISREG(st.st_mode):
        return "a special file"
    mode = MODE_EXEC if st.st_mode & 0o100 else MODE_BLOB
    return mode, str(pygit2.hashfile(str(path)))


def _index_state(index: pygit2.Index, path: str) -> Entry:
    try:
        found = index[path]
    except KeyError:
        return None
    return int(found.mode), str(found.id)


def _same(a: Entry | str, b: Entry) -> bool:
    return not isinstance(a, str) and a == b


def _paths(repo: GitRepo, old_tree: str, new_tree: str) -> list[tuple[str, Entry, Entry]]:
    out = []
    for delta in repo.diff_raw(old_tree, new_tree):
        path = delta.path
        out.append((path, _entry(repo.entry(old_tree, path)), _entry(repo.entry(new_tree, path))))
    return out


def conflicts(repo: GitRepo, old_tree: str, paths: list[str], new_tree: str | None = None) -> list[str]:
    """Which of ``paths`` are not exactly as ``old_tree`` has them (in the working tree or the
    index), and so would stop a safe move away from it. Writes nothing."""
    index = repo.raw.index
    index.read(False)
    out = []
    for path in sorted(set(paths)):
        old = _entry(repo.entry(old_tree, path))
        new = _entry(repo.entry(new_tree, path)) if new_tree else old
        work = _work_state(repo.workdir / path)
        if not (_same(work, old) or _same(work, new)) or _index_state(index, path) not in (old, new):
            out.append(path)
    return out


def pending_paths(repo: GitRepo, old_tree: str, new_tree: str) -> tuple[list[str], bool]:
    """The paths whose working file or index entry is not at ``new_tree`` yet, and whether
    every one of them is still exactly at ``old_tree`` (nothing written yet). Writes nothing."""
    index = repo.raw.index
    index.read(False)
    left: list[str] = []
    at_old = True
    for path, old, new in _paths(repo, old_tree, new_tree):
        work = _work_state(repo.workdir / path)
        staged = _index_state(index, path)
        if _same(work, new) and staged == new:
            if new != old:
                at_old = False
            continue
        left.append(path)
        if not (_same(work, old) and staged == old):
            at_old = False
    return left, at_old


def advance(repo: GitRepo, old_tree: str, new_tree: str) -> Advance:
    """Bring the working tree and index from ``old_tree`` to ``new_tree`` (idempotent).

    Paths in the way (see the module docstring) are kept as they are and listed in
    ``kept``; their index entry still moves to the new content when it held the old,
    so ``git status`` shows the local edit against the new commit.
    """
    result = Advance()
    index = repo.raw.index
    index.read(False)
    workdir = repo.workdir
    index_changes: list[tuple[str, Entry]] = []
    for path, old, new in _paths(repo, old_tree, new_tree):
        target = workdir / path
        work = _work_state(target)
        staged = _index_state(index, path)
        if _same(work, new):
            pass
        elif _same(work, old):
            if new is None:
                target.unlink()
                _prune_empty_parents(target.parent, workdir)
                result.removed.append(path)
            else:
                _write_blob(repo, target, new)
                result.written.append(path)
        else:
            result.kept.append(path)
        if staged != new and staged in (old, new):
            index_changes.append((path, new))
        elif staged not in (old, new) and path not in result.kept:
            result.kept.append(path)
    if index_changes:
        for path, new in index_changes:
            if new is None:
                try:
                    index.remove(path)
                except (KeyError, OSError, pygit2.GitError):
                    pass
            elif _same(_work_state(workdir / path), new):
                index.add(path)  # with the file's stat data, so git does not re-hash it
            else:
                index.add(pygit2.IndexEntry(path, pygit2.Oid(hex=new[1]), pygit2.enums.FileMode(new[0])))
        index.write()
    return result


def _write_blob(repo: GitRepo, target: Path, entry: tuple[int, str]) -> None:
    mode, oid = entry
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.kavi-{os.getpid()}.tmp")
    fd = os.open(
        tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o777 if mode == MODE_EXEC else 0o666
    )
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(repo.read_blob(oid))
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _prune_empty_parents(directory: Path, top: Path) -> None:
    while directory != top and top in directory.parents:
        try:
            directory.rmdir()
        except OSError:
            return
        directory = directory.parent
