"""Build sandboxes: a linked worktree outside the repository, and what a backend left in it.

The sandbox is a git worktree of the build branch, created outside the repository
and outside ``.git``. Its ``.git`` link is deleted before the backend runs (the agent
has no usable git), and the worktree's metadata is pruned when the build ends.

After the backend, :func:`snapshot` walks every entry of the sandbox — tracked,
untracked, ignored, hidden — and turns it into tree changes relative to the base
commit plus a list of problems (symlinks, nested repositories, special files,
oversized files, undecodable names). Files untouched since checkout are recognised
by their full ``lstat`` (inode, size, mtime and ctime — ctime cannot be set by a
process) and reuse the base blob id, so large repositories are cheap to snapshot.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import stat
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pygit2

from kavi.errors import GitError
from kavi.gitstore.repo import MODE_BLOB, MODE_EXEC, MODE_LINK, GitRepo
from kavi.ledger.models import Violation
from kavi.secrets import redact

StatKey = tuple[int, int, int, int, int]


def _stat_key(st: os.stat_result) -> StatKey:
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode)


@dataclass
class Sandbox:
    root: Path  # directory holding the worktree and the backend's HOME/TMP
    work: Path  # the worktree (backend's cwd)
    home: Path
    tmp: Path
    worktree_name: str
    branch: str
    base_commit: str
    withheld: list[str] = field(default_factory=list)
    baseline: dict[str, StatKey] = field(default_factory=dict)


def create(
    repo: GitRepo,
    *,
    root: Path,
    worktree_name: str,
    branch: str,
    base_commit: str,
    exclude: Iterable[str],
) -> Sandbox:
    """Create branch + worktree at ``root/<worktree_name>``; withhold files matching ``exclude``.

    The checkout is git's own (``git worktree add``, with hooks disabled): libgit2's
    checkout is about three times slower on large trees.
    """
    root.mkdir(parents=True, exist_ok=False)
    work = root / worktree_name
    home = root / "home"
    tmp = root / "tmp"
    home.mkdir()
    tmp.mkdir()
    add = subprocess.run(
        [
            "git", "-c", "core.hooksPath=/dev/null", "worktree", "add", "-q", "--no-track",
            "-b", branch, str(work), base_commit,
        ],
        cwd=repo.common_dir,
        capture_output=True,
        text=True,
        check=False,
        env={k: v for k, v in os.environ.items() if k not in _GIT_LOCATION_ENV},
    )  # fmt: skip
    if add.returncode != 0:
        repo.delete_ref(f"refs/heads/{branch}")
        prune_worktree(repo, worktree_name)
        raise GitError(f"git worktree add failed: {add.stderr.strip()}")
    gitdir = _gitfile_target(work / ".git")
    name = gitdir.name if gitdir is not None else worktree_name
    box = Sandbox(root, work, home, tmp, name, branch, base_commit)
    (work / ".git").unlink()  # no usable git link while the backend runs
    withhold = _matcher(exclude)
    for dirpath, dirnames, filenames in os.walk(work):
        rel_dir = os.path.relpath(dirpath, work)
        prefix = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
        links = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        for name in filenames + links:
            rel = prefix + name
            full = os.path.join(dirpath, name)
            if withhold(name) or withhold(rel):
                os.unlink(full)
                box.withheld.append(rel)
            else:
                box.baseline[rel] = _stat_key(os.lstat(full))
    return box


_GIT_LOCATION_ENV = frozenset(
    {"GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_COMMON_DIR"}
)


def _gitfile_target(path: Path) -> Path | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return Path(text[len("gitdir:") :].strip()) if text.startswith("gitdir:") else None


def _matcher(patterns: Iterable[str]) -> Callable[[str], bool]:
    """One compiled regex for all fnmatch-style patterns."""
    parts = [fnmatch.translate(p) for p in patterns]
    if not parts:
        return lambda _name: False
    rx = re.compile("|".join(f"(?:{p})" for p in parts))
    return lambda name: rx.match(name) is not None


def remove(repo: GitRepo, box: Sandbox) -> None:
    """Delete the sandbox directory and prune the worktree's metadata (idempotent)."""
    shutil.rmtree(box.root, ignore_errors=True)
    prune_worktree(repo, box.worktree_name)


def prune_worktree(repo: GitRepo, name: str) -> None:
    try:
        wt = repo.raw.lookup_worktree(name)
    except (KeyError, pygit2.GitError):
        wt = None
    if wt is not None:
        try:
            wt.prune(True)
        except pygit2.GitError:
            pass
    meta = repo.common_dir / "worktrees" / name
    if meta.exists():
        shutil.rmtree(meta, ignore_errors=True)


@dataclass
class Snapshot:
    changes: dict[str, tuple[int, str] | None]
    problems: list[Violation]
    files_seen: int


def snapshot(
    repo: GitRepo,
    box: Sandbox,
    *,
    max_file_bytes: int,
    ignore: Iterable[str] = (),
    secrets: Sequence[str] = (),
) -> Snapshot:
    """Tree changes (relative to the base commit) and problems found in the sandbox.

    A file containing a secret value is reported and committed with the value
    replaced by ``[REDACTED]``: secrets never enter the object database.
    """
    base_tree = repo.commit_tree(box.base_commit)
    skip = set(ignore)
    changes: dict[str, tuple[int, str] | None] = {}
    problems: list[Violation] = []
    seen: set[str] = set()
    work = box.work

    def problem(path: str, reason: str, rule: str) -> None:
        problems.append(Violation(path=path, reason=reason, rule=rule))

    for dirpath, dirnames, filenames in os.walk(work, followlinks=False):
        rel_dir = os.path.relpath(dirpath, work)
        rel_dir = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
        kept = []
        for d in sorted(dirnames):
            rel = rel_dir + d
            full = os.path.join(dirpath, d)
            if os.path.islink(full):
                filenames.append(d)  # a symlink to a directory: judge it as an entry
                continue
            if d == ".git" or os.path.exists(os.path.join(full, ".git")):
                problem(rel, "nested git repository (a .git directory)", "nested-repo")
                continue
            kept.append(d)
        dirnames[:] = kept
        for name in sorted(filenames):
            rel = rel_dir + name
            full = os.path.join(dirpath, name)
            if rel in skip:
                continue
            try:
                rel.encode("utf-8")
            except UnicodeEncodeError:
                problem(repr(rel), "file name is not valid UTF-8", "bad-name")
                continue
            st = os.lstat(full)
            seen.add(rel)
            if name == ".git":
                problem(rel, "a .git file inside the sandbox (nested repository link)", "nested-repo")
                continue
            if box.baseline.get(rel) == _stat_key(st):
                continue  # untouched since checkout (same inode, size, mtime, ctime, mode)
            if stat.S_ISLNK(st.st_mode):
                target = os.readlink(full)
                problem(rel, f"symlink (→ {target})", "symlink")
                oid = repo.write_blob(os.fsencode(target))
                prior = repo.entry(base_tree, rel) if rel in box.baseline else None
                if prior is None or prior.mode != MODE_LINK or prior.oid != oid:
                    changes[rel] = (MODE_LINK, oid)
                continue
            if not stat.S_ISREG(st.st_mode):
                problem(rel, "special file (fifo, socket or device)", "special-file")
                continue
            if st.st_size > max_file_bytes:
                problem(rel, f"file is {st.st_size} bytes (limit {max_file_bytes})", "too-large")
                continue
            mode = MODE_EXEC if st.st_mode & 0o111 else MODE_BLOB
            with open(full, "rb") as fh:
                data = fh.read()
            leaked = [v for v in secrets if v.encode("utf-8", "surrogateescape") in data]
            if leaked:
                problem(rel, "contains a secret value (redacted in the build commit)", "secret")
                data = redact(data.decode("utf-8", "surrogateescape"), leaked).encode(
                    "utf-8", "surrogateescape"
                )
            oid = repo.write_blob(data)
            prior = repo.entry(base_tree, rel) if rel in box.baseline else None
            if prior is None or prior.oid != oid or prior.mode != mode:
                changes[rel] = (mode, oid)
    for path in box.baseline:
        if path not in seen:
            changes[path] = None
    return Snapshot(changes=changes, problems=problems, files_seen=len(seen))
