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
import hashlib
import os
import re
import shutil
import stat
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kavi.errors import GitError
from kavi.gitstore.repo import MODE_BLOB, MODE_EXEC, MODE_LINK, GitRepo
from kavi.layout import is_agent_config
from kavi.ledger.models import Violation
from kavi.secrets import redact, redact_bytes
from kavi.textsafe import is_git_dir_name

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
    root_id: tuple[int, int] = (0, 0)  # (device, inode) of root: found again if it is moved
    work_id: tuple[int, int] = (0, 0)  # (device, inode) of the worktree: walked only if unchanged


def create(
    repo: GitRepo,
    *,
    root: Path,
    worktree_name: str,
    branch: str,
    base_commit: str,
    exclude: Iterable[str],
    keep: Iterable[str] = (),
) -> Sandbox:
    """Create branch + worktree at ``root/<worktree_name>``; withhold files matching ``exclude``
    and agent configuration (:func:`kavi.layout.is_agent_config`), but never a path in ``keep``.

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
    st = os.lstat(root)
    wst = os.lstat(work)
    box = Sandbox(
        root,
        work,
        home,
        tmp,
        name,
        branch,
        base_commit,
        root_id=(st.st_dev, st.st_ino),
        work_id=(wst.st_dev, wst.st_ino),
    )
    (work / ".git").unlink()  # no usable git link while the backend runs
    withhold = name_matcher(exclude)
    kept = set(keep)
    for dirpath, dirnames, filenames in os.walk(work):
        rel_dir = os.path.relpath(dirpath, work)
        prefix = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
        links = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        for name in filenames + links:
            rel = prefix + name
            full = os.path.join(dirpath, name)
            if rel not in kept and (withhold(name) or withhold(rel) or is_agent_config(rel)):
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


def name_matcher(patterns: Iterable[str]) -> Callable[[str], bool]:
    """One compiled regex for all fnmatch-style patterns."""
    parts = [fnmatch.translate(p) for p in patterns]
    if not parts:
        return lambda _name: False
    rx = re.compile("|".join(f"(?:{p})" for p in parts))
    return lambda name: rx.match(name) is not None


def locate(box: Sandbox) -> Path:
    """Where the sandbox directory is now.

    The backend owns its sandbox and may rename it (or put a symlink in its place):
    the directory is found again by its device and inode, at ``root`` or beside it.
    """
    if _identity(box.root) == box.root_id:
        return box.root
    try:
        with os.scandir(box.root.parent) as it:
            for entry in it:
                if _identity(Path(entry.path)) == box.root_id:
                    return Path(entry.path)
    except OSError:
        pass
    raise GitError(
        f"the build sandbox {box.root} was moved where Kavi cannot find it",
        why="the backend renamed its sandbox directory out of the sandbox base",
        remedy=f"remove the stray directory by hand; look for {box.root.name} under {box.root.parent}",
    )


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISDIR(st.st_mode) else None


def remove(repo: GitRepo, box: Sandbox) -> None:
    """Delete the sandbox directory and prune the worktree's metadata (idempotent).

    Whatever the backend left: directories nested thousands deep, read-only
    directories, the root renamed or replaced by a symlink.
    """
    try:
        real: Path | None = locate(box)
    except GitError:
        real = None
    if real is not None and real != box.root:
        remove_tree(real)
    remove_tree(box.root)
    prune_worktree(repo, box.worktree_name)


def remove_tree(path: Path) -> None:
    """``rm -rf`` that also empties read-only directories, iteratively (any depth).

    A symlink is removed, never followed.
    """
    if os.path.islink(path) or (os.path.lexists(path) and not os.path.isdir(path)):
        os.unlink(path)
        return
    if not os.path.lexists(path):
        return
    for attempt in range(2):
        try:
            subprocess.run(["rm", "-rf", "--", str(path)], capture_output=True, check=False)
        except OSError:
            shutil.rmtree(path, ignore_errors=True)
        if not os.path.lexists(path) or attempt:
            return
        try:  # read-only directories inside: make them writable (chmod -R never follows links)
            subprocess.run(["chmod", "-R", "u+rwx", "--", str(path)], capture_output=True, check=False)
        except OSError:
            return


def prune_worktree(repo: GitRepo, name: str) -> None:
    """Remove a worktree's metadata, also when it is half-removed (files missing, a file
    where a directory should be, unreadable): libgit2's prune first, then the directory."""
    try:
        wt = repo.raw.lookup_worktree(name)
    except Exception:
        wt = None
    if wt is not None:
        try:
            wt.prune(True)
        except Exception:
            pass
    meta = repo.common_dir / "worktrees" / name
    if meta.is_symlink() or meta.is_file():
        meta.unlink()
    elif meta.exists():
        remove_tree(meta)


@dataclass
class Snapshot:
    changes: dict[str, tuple[int, str] | None]
    problems: list[Violation]
    files_seen: int
    complete: bool = True  # False when a limit stopped the walk early


@dataclass(frozen=True)
class Limits:
    max_file_bytes: int
    max_files: int = 20_000
    max_depth: int = 64
    # Files outside the allowed paths are kept for inspection only while small:
    # beyond these, the build commit holds a placeholder naming size and hash.
    rejected_file_bytes: int = 64 * 1024
    rejected_total_bytes: int = 1024 * 1024


def placeholder(size: int, digest: str, why: str) -> bytes:
    return f"[kavi: content not kept — {why}; {size} bytes, sha256 {digest}]\n".encode()


def snapshot(
    repo: GitRepo,
    box: Sandbox,
    *,
    limits: Limits,
    allowed: Sequence[str] = (),
    ignore: Iterable[str] = (),
    secrets: Sequence[str] = (),
) -> Snapshot:
    """Tree changes (relative to the base commit) and problems found in the sandbox.

    The walk is iterative and bounded (``limits.max_depth`` levels, ``limits.max_files``
    entries). A file containing a secret value — or an encoded form of one — is reported
    and committed with the value replaced by ``[REDACTED]``; a name or symlink target
    containing one is reported under a redacted name and not committed: secrets never
    enter the object database. Files outside ``allowed`` are committed for inspection
    only while small (``limits.rejected_*``); beyond that, as a placeholder.
    """
    walker = _Walker(repo, box, limits, set(allowed), set(ignore), secrets)
    work = locate(box) / box.work.name
    if _identity(work) != box.work_id:  # a symlink (to ~/.ssh, /proc/self…) or another dir
        walker.problem(
            box.work.name,
            "the backend replaced its worktree (with a symlink or another directory); "
            "nothing in it was examined or committed",
            "sandbox",
        )
        walker.complete = False
    else:
        walker.walk(work)
    if walker.complete:
        for path in box.baseline:
            if path not in walker.seen:
                walker.changes[path] = None
    return Snapshot(walker.changes, walker.problems, len(walker.seen), walker.complete)


class _Walker:
    def __init__(
        self,
        repo: GitRepo,
        box: Sandbox,
        limits: Limits,
        allowed: set[str],
        skip: set[str],
        secrets: Sequence[str],
    ) -> None:
        self.repo, self.box, self.limits = repo, box, limits
        self.allowed, self.skip, self.secrets = allowed, skip, secrets
        self.base_tree = repo.commit_tree(box.base_commit)
        self.changes: dict[str, tuple[int, str] | None] = {}
        self.problems: list[Violation] = []
        self.seen: set[str] = set()
        self.entries = 0
        self.complete = True
        self.rejected_bytes = 0

    def problem(self, path: str, reason: str, rule: str) -> None:
        self.problems.append(Violation(path=path, reason=reason, rule=rule))

    def walk(self, work: Path) -> None:
        stack: list[tuple[str, str, int]] = [(str(work), "", 0)]
        while stack:
            dirpath, prefix, depth = stack.pop()
            try:
                with os.scandir(dirpath) as it:
                    entries = sorted(it, key=lambda e: e.name, reverse=True)
            except OSError as exc:
                self.problem(
                    prefix.rstrip("/") or ".", f"directory cannot be read ({exc.strerror})", "unreadable"
                )
                continue
            subdirs: list[tuple[str, str, int]] = []
            for entry in reversed(entries):
                self.entries += 1
                if self.entries > self.limits.max_files:
                    self.problem(
                        prefix + entry.name,
                        f"more than {self.limits.max_files} entries in the sandbox; "
                        "the rest were not examined",
                        "too-many-files",
                    )
                    self.complete = False
                    return
                sub = self.entry(entry, prefix, depth)
                if sub is not None:
                    subdirs.append(sub)
            stack.extend(reversed(subdirs))

    def entry(self, entry: os.DirEntry[str], prefix: str, depth: int) -> tuple[str, str, int] | None:
        """Judge one entry; a directory to descend into is returned, not walked."""
        name = entry.name
        rel = prefix + name
        if rel in self.skip:
            return None
        try:
            rel.encode("utf-8")
        except UnicodeEncodeError:
            self.problem(repr(rel), "file name is not valid UTF-8", "bad-name")
            return None
        if redact(rel, self.secrets) != rel:
            self.problem(
                redact(rel, self.secrets), "the name contains a secret value (not committed)", "secret"
            )
            return None
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError as exc:
            self.problem(rel, f"cannot be examined ({exc.strerror})", "unreadable")
            return None
        if name == ".git" or is_git_dir_name(name):
            what = "a .git entry" if name == ".git" else "a name git reads as .git on some filesystems"
            self.problem(rel, f"{what} inside the sandbox (not committed)", "nested-repo")
            return None
        if stat.S_ISDIR(st.st_mode):
            if os.path.lexists(os.path.join(entry.path, ".git")):
                self.problem(rel, "nested git repository (a .git directory)", "nested-repo")
                return None
            if depth + 1 >= self.limits.max_depth:
                self.problem(
                    rel,
                    f"directories nested deeper than {self.limits.max_depth} levels (not examined)",
                    "too-deep",
                )
                self.complete = False
                return None
            return (entry.path, rel + "/", depth + 1)
        self.seen.add(rel)
        if self.box.baseline.get(rel) == _stat_key(st):
            return None  # untouched since checkout (same inode, size, mtime, ctime, mode)
        if stat.S_ISLNK(st.st_mode):
            self.symlink(rel, entry.path)
        elif not stat.S_ISREG(st.st_mode):
            self.problem(rel, "special file (fifo, socket or device)", "special-file")
        elif st.st_nlink > 1:
            self.problem(
                rel,
                f"hard link ({st.st_nlink} names for one file): its content may be a file's "
                "outside the sandbox (not committed)",
                "hard-link",
            )
        elif st.st_size > self.limits.max_file_bytes:
            self.problem(rel, f"file is {st.st_size} bytes (limit {self.limits.max_file_bytes})", "too-large")
        else:
            self.regular(rel, entry.path, st)
        return None

    def symlink(self, rel: str, full: str) -> None:
        target = redact(os.readlink(full), self.secrets)
        self.problem(rel, f"symlink (→ {target})", "symlink")
        oid = self.repo.write_blob(os.fsencode(target))
        prior = self.repo.entry(self.base_tree, rel) if rel in self.box.baseline else None
        if prior is None or prior.mode != MODE_LINK or prior.oid != oid:
            self.changes[rel] = (MODE_LINK, oid)

    def regular(self, rel: str, full: str, st: os.stat_result) -> None:
        mode = MODE_EXEC if st.st_mode & 0o111 else MODE_BLOB
        try:  # never through a symlink, never blocking on a FIFO swapped in since the lstat
            fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            with os.fdopen(fd, "rb") as fh:
                if (os.fstat(fh.fileno()).st_ino, os.fstat(fh.fileno()).st_dev) != (st.st_ino, st.st_dev):
                    raise OSError(0, "replaced while being read")
                data = fh.read(self.limits.max_file_bytes + 1)
        except OSError as exc:
            self.problem(rel, f"cannot be read ({exc.strerror})", "unreadable")
            return
        data, leaked = redact_bytes(data, self.secrets)
        if leaked:
            self.problem(rel, "contains a secret value (redacted in the build commit)", "secret")
        if rel not in self.allowed:
            data = self.rejected(data)
        oid = self.repo.write_blob(data)
        prior = self.repo.entry(self.base_tree, rel) if rel in self.box.baseline else None
        if prior is None or prior.oid != oid or prior.mode != mode:
            self.changes[rel] = (mode, oid)

    def rejected(self, data: bytes) -> bytes:
        """A file the gate will refuse: kept verbatim while small, else a placeholder."""
        size = len(data)
        if size > self.limits.rejected_file_bytes:
            why = f"outside the allowed paths and over {self.limits.rejected_file_bytes} bytes"
        elif self.rejected_bytes + size > self.limits.rejected_total_bytes:
            why = f"outside the allowed paths, beyond {self.limits.rejected_total_bytes} bytes kept in all"
        else:
            self.rejected_bytes += size
            return data
        return placeholder(size, hashlib.sha256(data).hexdigest(), why)
