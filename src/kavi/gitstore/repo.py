"""The git repository, as Kavi uses it. The only place (with its siblings) that imports pygit2.

Methods take and return plain data (hex object ids, paths, bytes), so the rest of
Kavi never handles pygit2 objects.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import pygit2

from kavi.errors import BusyError, ConflictError, GitError, NotAForgeError, environment_fault

MODE_BLOB = 0o100644
MODE_EXEC = 0o100755
MODE_LINK = 0o120000
MODE_TREE = 0o040000
MODE_COMMIT = 0o160000

ZERO_OID = "0" * 40

# libgit2 keeps a parsed tree in its object cache only if the tree is under 4 KiB, so a
# wide root tree (20,000 files: ~600 KiB) was parsed again for every path looked up in
# it — the hook and the audit ask a commit's root for several files. Trees up to 16 MiB
# are kept now (within libgit2's overall cache limit, 256 MiB by default).
TREE_CACHE_LIMIT = 16 * 1024 * 1024
pygit2.settings.cache_object_limit(pygit2.enums.ObjectType.TREE, TREE_CACHE_LIMIT)

# libgit2 keeps only objects under 4 kB in its cache: a root tree of 20,000 entries was
# re-read and re-parsed (~15 ms) at every lookup of a path in it. Trees and commits up to
# 16 MB stay cached (the cache as a whole stays bounded by libgit2's total limit).
pygit2.settings.cache_object_limit(pygit2.enums.ObjectType.TREE, 16 * 1024 * 1024)
pygit2.settings.cache_object_limit(pygit2.enums.ObjectType.COMMIT, 1024 * 1024)


class Signer(Protocol):
    """Something that can produce an armored signature over bytes (see kavi.sshsig)."""

    @property
    def principal(self) -> str: ...

    def sign(self, payload: bytes) -> str: ...


@dataclass(frozen=True)
class Person:
    name: str
    email: str
    time: int
    offset: int  # minutes east of UTC

    def signature(self) -> pygit2.Signature:
        return pygit2.Signature(self.name, self.email, self.time, self.offset)

    def git_format(self) -> str:
        sign = "+" if self.offset >= 0 else "-"
        hours, minutes = divmod(abs(self.offset), 60)
        return f"{self.name} <{self.email}> {self.time} {sign}{hours:02d}{minutes:02d}"


@dataclass(frozen=True)
class CommitInfo:
    id: str
    tree: str
    parents: tuple[str, ...]
    message: str
    author: Person
    committer: Person
    signed: bool


@dataclass(frozen=True)
class TreeEntry:
    path: str
    mode: int
    oid: str


def _parse_git_date(value: str) -> tuple[int, int]:
    """Parse the date formats tests and users put in GIT_*_DATE."""
    value = value.strip()
    m = re.fullmatch(r"@?(\d+)(?:\s+([+-])(\d{2})(\d{2}))?", value)
    if m:
        offset = 0
        if m.group(2):
            offset = int(m.group(3)) * 60 + int(m.group(4))
            offset = -offset if m.group(2) == "-" else offset
        return int(m.group(1)), offset
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            dt = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            raise GitError(
                f"cannot parse git date {value!r}",
                remedy="use '@<unix seconds> +0000' or ISO 8601 in GIT_AUTHOR_DATE/GIT_COMMITTER_DATE",
            ) from None
    delta = dt.utcoffset()
    offset = int(delta.total_seconds() // 60) if delta else 0
    return int(dt.timestamp()), offset


class GitRepo:
    def __init__(self, repo: pygit2.Repository) -> None:
        self.raw = repo

    # -- opening ---------------------------------------------------------------

    @classmethod
    def open(cls, path: Path | str) -> GitRepo:
        try:
            return cls(pygit2.Repository(str(path)))
        except (pygit2.GitError, KeyError):
            raise NotAForgeError(
                f"not a git repository: {path}",
                remedy="run Kavi inside a git repository",
            ) from None

    @classmethod
    def open_from_env(cls) -> GitRepo:
        """Open the repository the way git hooks must (sees quarantined objects)."""
        return cls(pygit2.Repository(".", pygit2.enums.RepositoryOpenFlag.FROM_ENV))

    @property
    def git_dir(self) -> Path:
        return Path(self.raw.path).resolve()

    @property
    def common_dir(self) -> Path:
        git_dir = self.git_dir
        commondir = git_dir / "commondir"
        if commondir.is_file():
            return (git_dir / commondir.read_text().strip()).resolve()
        return git_dir

    @property
    def workdir(self) -> Path:
        if self.raw.workdir is None:
            raise GitError("this operation needs a working tree; the repository is bare")
        return Path(self.raw.workdir).resolve()

    @property
    def is_bare(self) -> bool:
        return bool(self.raw.is_bare)

    # -- identities --------------------------------------------------------------

    def _person(self, role: str) -> Person:
        cfg = self.raw.config
        name = os.environ.get(f"GIT_{role}_NAME") or _cfg(cfg, "user.name")
        email = os.environ.get(f"GIT_{role}_EMAIL") or _cfg(cfg, "user.email")
        if not name or not email:
            raise GitError(
                "git does not know who you are (user.name / user.email unset)",
                remedy='run `git config --global user.name "Your Name"` and '
                "`git config --global user.email you@example.com`",
            )
        date = os.environ.get(f"GIT_{role}_DATE")
        if date:
            when, offset = _parse_git_date(date)
        else:
            now = datetime.now().astimezone()
            delta = now.utcoffset()
            when, offset = int(now.timestamp()), int(delta.total_seconds() // 60) if delta else 0
        return Person(name, email, when, offset)

    def author(self) -> Person:
        return self._person("AUTHOR")

    def committer(self) -> Person:
        return self._person("COMMITTER")

    # -- config ------------------------------------------------------------------

    def config_get(self, key: str) -> str | None:
        return _cfg(self.raw.config, key)

    def config_get_all(self, key: str) -> list[str]:
        try:
            return [str(v) for v in self.raw.config.get_multivar(key)]
        except (KeyError, pygit2.GitError):
            return []

    def config_set(self, key: str, value: str) -> None:
        self.raw.config[key] = value

    def config_add(self, key: str, value: str) -> None:
        """Add ``value`` to a multi-valued key unless it is already there."""
        if value in self.config_get_all(key):
            return
        self.raw.config.set_multivar(key, "^$", value)  # '^$' matches no existing value

    def remotes(self) -> list[str]:
        return sorted(str(r.name) for r in self.raw.remotes)

    # -- refs ----------------------------------------------------------------------

    def ref_target(self, name: str) -> str | None:
        try:
            ref = self.raw.references[name]
        except (KeyError, pygit2.InvalidSpecError):
            return None
        try:
            target = ref.resolve().target
        except (KeyError, pygit2.GitError):  # a symbolic ref pointing nowhere
            return None
        return str(target)

    def refs(self, prefix: str = "refs/") -> dict[str, str]:
        """Every ref under ``prefix`` → the object it resolves to.

        A symbolic ref that resolves nowhere is listed as ``ref: <target>`` rather than
        left out: callers comparing snapshots must see it appear.
        """
        out: dict[str, str] = {}
        for name in self.raw.references:
            if name.startswith(prefix):
                target = self.ref_target(name)
                if target is None:
                    try:
                        target = f"ref: {self.raw.references[name].target}"
                    except (KeyError, pygit2.GitError, pygit2.InvalidSpecError):
                        continue
                out[name] = target
        return out

    def set_ref(self, name: str, oid: str, *, message: str, old: str | None = None) -> None:
        """Create or move ``name`` to ``oid``.

        With ``old`` (the value read before; ``ZERO_OID``: the ref must not exist) this is a
        compare-and-swap done by libgit2 under git's own ``<ref>.lock``: if another process
        moved the ref in between, nothing changes and a :class:`ConflictError` says so.
        Without ``old`` the ref is set whatever it held (only for restoring a snapshot).
        """
        target = pygit2.Oid(hex=oid)
        try:
            if old is None:
                self.raw.create_reference_direct(name, target, True, message=message)
            elif old == ZERO_OID:
                self.raw.create_reference_direct(name, target, False, message=message)
            else:
                try:
                    ref = self.raw.references[name]
                except KeyError:
                    ref = None
                current = None if ref is None else self.ref_target(name)
                if ref is None or current != old:
                    raise ConflictError(
                        f"ref {name} moved concurrently "
                        f"(expected {old[:12]}, found {(current or 'none')[:12]})",
                        why="another process changed it after Kavi read it; nothing was changed",
                        remedy="re-run the command (`git kavi doctor` shows what happened)",
                    )
                ref.set_target(target, message)
        except pygit2.AlreadyExistsError:
            current = self.ref_target(name)
            raise ConflictError(
                f"ref {name} already exists (at {(current or 'none')[:12]})",
                why="another process created it after Kavi looked; nothing was changed",
                remedy="re-run the command (`git kavi doctor` shows what happened)",
            ) from None
        except (OSError, pygit2.GitError) as exc:
            raise ref_error(name, exc) from exc

    def delete_ref(self, name: str) -> None:
        try:
            self.raw.references.delete(name)
        except KeyError:
            pass

    def head_branch(self) -> str | None:
        """Short name of the branch HEAD points at (also when unborn)."""
        try:
            target = self.raw.references["HEAD"].target
        except KeyError:
            return None
        if isinstance(target, str) and target.startswith("refs/heads/"):
            return target[len("refs/heads/") :]
        return None

    def branch_tip(self, branch: str) -> str | None:
        return self.ref_target(f"refs/heads/{branch}")

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        if ancestor == descendant:
            return True
        return bool(self.raw.descendant_of(pygit2.Oid(hex=descendant), pygit2.Oid(hex=ancestor)))

    # -- objects -------------------------------------------------------------------

    def has_object(self, oid: str) -> bool:
        try:
            return pygit2.Oid(hex=oid) in self.raw.odb
        except ValueError:
            return False

    def object_type(self, oid: str) -> str | None:
        try:
            obj = self.raw.get(oid)
        except ValueError:
            return None
        return None if obj is None else str(obj.type_str)

    def write_blob(self, data: bytes) -> str:
        return str(self.raw.create_blob(data))

    def read_blob(self, oid: str) -> bytes:
        blob = self.raw.get(oid)
        if not isinstance(blob, pygit2.Blob):
            raise GitError(f"{oid} is not a blob")
        return bytes(blob.data)

    def read_raw(self, oid: str) -> tuple[str, bytes]:
        """The object's type name and raw content (e.g. a tag or commit body)."""
        obj = self.raw.odb.read(pygit2.Oid(hex=oid))
        type_names = {1: "commit", 2: "tree", 3: "blob", 4: "tag"}
        return type_names.get(int(obj[0]), str(obj[0])), bytes(obj[1])

    def write_raw(self, type_name: str, data: bytes) -> str:
        types = {"commit": 1, "tree": 2, "blob": 3, "tag": 4}
        return str(self.raw.odb.write(types[type_name], data))

    def commit(self, oid: str) -> CommitInfo:
        obj = self.raw.get(oid)
        if not isinstance(obj, pygit2.Commit):
            raise GitError(f"{oid} is not a commit")
        return _commit_info(obj)

    def commit_tree(self, commit_id: str) -> str:
        return self.commit_meta(commit_id)[0]

    def subject(self, oid: str) -> str | None:
        """A commit's first message line (None for anything that is not a commit here)."""
        if not self.has_object(oid) or self.object_type(oid) != "commit":
            return None
        return (self.commit(oid).message.splitlines() or [""])[0]

    def commit_meta(self, commit_id: str) -> tuple[str, tuple[str, ...]]:
        """(tree, parents) of a commit — cheaper than :meth:`commit` on hot paths."""
        obj = self.raw.get(commit_id)
        if not isinstance(obj, pygit2.Commit):
            raise GitError(f"{commit_id} is not a commit")
        return str(obj.tree_id), tuple(str(p) for p in obj.parent_ids)

    def top_entries(self, tree_id: str) -> dict[str, str]:
        """Name → object id of a tree's top-level entries."""
        return {str(e.name): str(e.id) for e in self._tree(tree_id)}

    def extract_signature(self, commit_id: str) -> tuple[str, bytes] | None:
        """(armored signature, signed payload) of a commit, or None if unsigned.

        Parsed from the raw object the way git does: the signature is the ``gpgsig``
        *header* (with its continuation lines); a ``gpgsig`` line inside the message
        does not count. The payload is the object without that header.
        """
        try:
            kind, raw = self.read_raw(commit_id)
        except (KeyError, ValueError, pygit2.GitError):
            return None
        if kind != "commit":
            return None
        head, sep, message = raw.partition(b"\n\n")
        lines = head.split(b"\n")
        kept: list[bytes] = []
        sig_lines: list[bytes] = []
        in_sig = False
        for line in lines:
            if in_sig and line.startswith(b" "):
                sig_lines.append(line[1:])
                continue
            in_sig = False
            if line.startswith(b"gpgsig ") and not sig_lines:
                in_sig = True
                sig_lines.append(line[len(b"gpgsig ") :])
                continue
            kept.append(line)
        if not sig_lines:
            return None
        payload = b"\n".join(kept) + sep + message
        return b"\n".join(sig_lines).decode("utf-8", "replace") + "\n", payload

    # -- trees -----------------------------------------------------------------------

    def _tree(self, tree_id: str) -> pygit2.Tree:
        obj = self.raw.get(tree_id)
        if isinstance(obj, pygit2.Commit):
            return obj.tree
        if not isinstance(obj, pygit2.Tree):
            raise GitError(f"{tree_id} is not a tree")
        return obj

    def entry(self, tree_or_commit: str, path: str) -> TreeEntry | None:
        tree = self._tree(tree_or_commit)
        try:
            item = tree[path]
        except KeyError:
            return None
        return TreeEntry(path, int(item.filemode), str(item.id))

    def file_bytes(self, tree_or_commit: str, path: str) -> bytes | None:
        found = self.entry(tree_or_commit, path)
        if found is None or found.mode not in (MODE_BLOB, MODE_EXEC):
            return None
        return self.read_blob(found.oid)

    def walk_tree(self, tree_or_commit: str, prefix: str = "") -> Iterator[TreeEntry]:
        """Every non-tree entry, recursively, as full paths."""
        yield from _walk(self._tree(tree_or_commit), prefix)

    def list_dir(self, tree_or_commit: str, path: str) -> dict[str, TreeEntry]:
        tree: Any = self._tree(tree_or_commit)
        if path:
            try:
                tree = tree[path]
            except KeyError:
                return {}
            if not isinstance(tree, pygit2.Tree):
                return {}
        return {
            str(e.name): TreeEntry(f"{path}/{e.name}" if path else str(e.name), int(e.filemode), str(e.id))
            for e in tree
        }

    def update_tree(self, base: str | None, changes: Mapping[str, tuple[int, str] | None]) -> str:
        """A new tree: ``base`` with ``path → (mode, oid)`` set, or removed when None."""
        base_tree = self._tree(base) if base else None
        try:
            return str(self._update(base_tree, _nest(changes)))
        except (pygit2.GitError, ValueError) as exc:
            raise GitError(
                f"cannot write the tree: {exc}",
                why="a path is one git refuses to store (e.g. a name it reads as .git)",
            ) from exc

    def _update(self, tree: pygit2.Tree | None, changes: dict[str, Any]) -> pygit2.Oid:
        builder = self.raw.TreeBuilder(tree) if tree is not None else self.raw.TreeBuilder()
        for name, change in changes.items():
            if isinstance(change, dict):
                sub: pygit2.Tree | None = None
                if tree is not None:
                    try:
                        existing = tree[name]
                    except KeyError:
                        existing = None
                    if isinstance(existing, pygit2.Tree):
                        sub = existing
                new_sub = self._update(sub, change)
                new_tree: Any = self.raw.get(new_sub)
                if len(new_tree) == 0:
                    if builder.get(name) is not None:
                        builder.remove(name)
                else:
                    builder.insert(name, new_sub, MODE_TREE)
            elif change is None:
                if builder.get(name) is not None:
                    builder.remove(name)
            else:
                mode, oid = change
                builder.insert(name, pygit2.Oid(hex=oid), mode)
        return builder.write()

    def empty_tree(self) -> str:
        return str(self.raw.TreeBuilder().write())

    # -- commits -------------------------------------------------------------------------

    def write_commit(
        self,
        *,
        tree: str,
        parents: Iterable[str],
        message: str,
        signer: Signer | None = None,
        author: Person | None = None,
        committer: Person | None = None,
    ) -> str:
        author = author or self.author()
        committer = committer or self.committer()
        parent_oids = [pygit2.Oid(hex=p) for p in parents]
        tree_oid = pygit2.Oid(hex=tree)
        if signer is None:
            return str(
                self.raw.create_commit(
                    None, author.signature(), committer.signature(), message, tree_oid, parent_oids
                )
            )
        content: Any = self.raw.create_commit_string(
            author.signature(), committer.signature(), message, tree_oid, list(parent_oids)
        )
        text = str(content)  # pygit2 returns the commit text as str
        signature = signer.sign(text.encode("utf-8"))
        return str(self.raw.create_commit_with_signature(text, signature))

    def merge_commits(self, ours: str, theirs: str) -> tuple[str | None, list[str]]:
        """Three-way merge of commits; (tree id, []) or (None, conflicting paths)."""
        index = self.raw.merge_commits(pygit2.Oid(hex=ours), pygit2.Oid(hex=theirs))
        if index.conflicts is not None:
            paths = sorted({str(e.path) for c in index.conflicts for e in c if e is not None})
            return None, paths
        return str(index.write_tree(self.raw)), []

    def merge_base(self, a: str, b: str) -> str | None:
        found = self.raw.merge_base(pygit2.Oid(hex=a), pygit2.Oid(hex=b))
        return None if found is None else str(found)

    def walk_new_commits(self, tip: str, hide: Iterable[str]) -> list[str]:
        """Commits reachable from ``tip`` but not from any of ``hide`` (topological, oldest first)."""
        walker = self.raw.walk(
            pygit2.Oid(hex=tip), pygit2.enums.SortMode.TOPOLOGICAL | pygit2.enums.SortMode.REVERSE
        )
        for h in hide:
            if self.has_object(h):
                walker.hide(pygit2.Oid(hex=h))
        return [str(c.id) for c in walker]

    def first_parent_chain(self, tip: str, stop: str | None) -> list[str]:
        """First-parent commits from ``tip`` back to (excluding) ``stop``; newest first."""
        chain: list[str] = []
        current: str | None = tip
        while current is not None and current != stop:
            chain.append(current)
            info = self.commit(current)
            current = info.parents[0] if info.parents else None
        return chain

    def diff_raw(self, old_tree: str | None, new_tree: str) -> list[RawDelta]:
        """Raw tree diff: no rename detection, type changes reported as such."""
        new = self._tree(new_tree)
        flags = pygit2.enums.DiffOption.INCLUDE_TYPECHANGE
        if old_tree is None:
            diff = new.diff_to_tree(swap=True, flags=flags)
        else:
            diff = self._tree(old_tree).diff_to_tree(new, flags=flags)
        out: list[RawDelta] = []
        for delta in diff.deltas:
            out.append(
                RawDelta(
                    status=_STATUS.get(int(delta.status), str(delta.status)),
                    old_path=str(delta.old_file.path),
                    new_path=str(delta.new_file.path),
                    old_mode=int(delta.old_file.mode),
                    new_mode=int(delta.new_file.mode),
                    old_oid=str(delta.old_file.id),
                    new_oid=str(delta.new_file.id),
                )
            )
        return out

    def diff_stat(self, old_tree: str, new_tree: str) -> list[tuple[str, int, int]]:
        """``(path, lines added, lines deleted)`` per changed file (binary files count 0)."""
        diff = self._tree(old_tree).diff_to_tree(self._tree(new_tree))
        out: list[tuple[str, int, int]] = []
        for patch in diff:
            if patch is None:
                continue
            _context, added, deleted = patch.line_stats
            out.append((str(patch.delta.new_file.path), int(added), int(deleted)))
        return sorted(out)

    # -- index / checkout ---------------------------------------------------------------

    def stage_paths(self, commit_id: str, paths: Iterable[str]) -> None:
        """Make the index match ``commit_id`` at ``paths`` (and only there)."""
        index = self.raw.index
        index.read()
        for path in paths:
            found = self.entry(commit_id, path)
            if found is None:
                try:
                    index.remove(path)
                except (OSError, KeyError, pygit2.GitError):
                    pass
            else:
                index.add(
                    pygit2.IndexEntry(path, pygit2.Oid(hex=found.oid), pygit2.enums.FileMode(found.mode))
                )
        index.write()

    def staged_paths(self, paths: Iterable[str]) -> list[str]:
        """Which of ``paths`` have changes staged in the index (vs HEAD)."""
        staged = (
            pygit2.enums.FileStatus.INDEX_NEW
            | pygit2.enums.FileStatus.INDEX_MODIFIED
            | pygit2.enums.FileStatus.INDEX_DELETED
            | pygit2.enums.FileStatus.INDEX_RENAMED
            | pygit2.enums.FileStatus.INDEX_TYPECHANGE
        )
        out = []
        for path in paths:
            try:
                flags = self.raw.status_file(path)
            except (KeyError, pygit2.GitError):
                continue
            if flags & staged:
                out.append(path)
        return out


@dataclass(frozen=True)
class RawDelta:
    status: str  # ADDED | DELETED | MODIFIED | TYPECHANGE | …
    old_path: str
    new_path: str
    old_mode: int
    new_mode: int
    old_oid: str
    new_oid: str

    @property
    def path(self) -> str:
        return self.new_path or self.old_path


_STATUS = {
    0: "UNMODIFIED",
    1: "ADDED",
    2: "DELETED",
    3: "MODIFIED",
    4: "RENAMED",
    5: "COPIED",
    6: "IGNORED",
    7: "UNTRACKED",
    8: "TYPECHANGE",
    9: "UNREADABLE",
    10: "CONFLICTED",
}


def ref_error(name: str, exc: BaseException) -> Exception:
    """What a failed ref update means: a concurrent change, a lock file in the way, or the
    environment (full disk, read-only, permissions — mapped by the top-level handler)."""
    text = str(exc)
    fault = environment_fault(exc)
    if fault is not None:
        return fault
    if "does not match" in text or "already exists" in text:
        return ConflictError(
            f"ref {name} moved concurrently: {text}",
            why="another process changed it after Kavi read it; nothing was changed",
            remedy="re-run the command (`git kavi doctor` shows what happened)",
        )
    if "lock" in text:
        return BusyError(
            f"cannot update {name}: git's lock file is in the way ({text.strip()})",
            why="another git process is updating it, or one was killed and left its .lock file",
            remedy="wait for the other git command; if none runs, `git kavi doctor --repair` "
            "removes stale lock files",
        )
    return GitError(f"cannot update {name}: {text}")


def _cfg(cfg: pygit2.Config, key: str) -> str | None:
    try:
        value = cfg[key]
    except (KeyError, pygit2.GitError):
        return None
    return str(value)


def _commit_info(obj: pygit2.Commit) -> CommitInfo:
    def person(sig: pygit2.Signature) -> Person:
        return Person(str(sig.name), str(sig.email), int(sig.time), int(sig.offset))

    return CommitInfo(
        id=str(obj.id),
        tree=str(obj.tree_id),
        parents=tuple(str(p) for p in obj.parent_ids),
        message=str(obj.message),
        author=person(obj.author),
        committer=person(obj.committer),
        signed=obj.gpg_signature[0] is not None,
    )


def _walk(tree: pygit2.Tree, prefix: str) -> Iterator[TreeEntry]:
    for entry in tree:
        path = f"{prefix}{entry.name}"
        if isinstance(entry, pygit2.Tree):
            yield from _walk(entry, path + "/")
        else:
            yield TreeEntry(path, int(entry.filemode), str(entry.id))


def _nest(changes: Mapping[str, tuple[int, str] | None]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for path, change in changes.items():
        parts = path.split("/")
        node = root
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise GitError(f"path {path} passes through a file")
            node = child
        node[parts[-1]] = change
    return root
