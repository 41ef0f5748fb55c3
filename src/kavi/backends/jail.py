"""Confinement for backend processes: Linux namespaces, when the kernel allows them.

The backend runs as ``unshare --user --map-root-user --pid --fork --kill-child --mount
--mount-proc -- python -I -S jail_init.py SPEC``; :mod:`kavi.backends.jail_init` builds
its view of the filesystem and execs it through ``setpriv --bounding-set=-all
--no-new-privs``. So the backend has:

* its own PID namespace: when its first process ends (or is killed), the kernel kills
  every process left in it — a ``setsid`` double-fork daemon cannot outlive the build;
* its own ``/proc``: it cannot read Kavi's ``/proc/<pid>/environ`` (secrets), ``cwd`` or
  open files;
* a read-only world: the only writable place is its sandbox (worktree, HOME, TMPDIR);
  the Kavi installation, other checkouts and every other repository are read-only;
* a copy-on-write view of the forge and its git dir: every write there lands in a
  scratch layer it cannot see (never in the real files), and :meth:`Jail.escapes` lists
  those writes afterwards so the build fails naming each one;
* private, empty ``/tmp``, ``/var/tmp``, ``/dev/shm`` and ``$XDG_RUNTIME_DIR``: no
  ssh-agent, tmux or D-Bus socket there, no other build's sandbox; an empty, read-only
  ``$HOME`` (except the directories holding the backend's executable);
* empty read-only mounts over the secret files still in view (see
  :mod:`kavi.backends.withhold`);
* no capabilities and no new privileges, so it cannot undo any of that (mounts inherited
  into a nested namespace are locked).

Not confined: the network (the backend must reach its model's API), hence abstract
Unix sockets and services listening on localhost. Where user namespaces, overlayfs or
``mount_setattr`` (Linux 5.12) are unavailable, the command runs unconfined, Kavi marks
itself non-dumpable (``PR_SET_DUMPABLE=0``), and the tripwire
(:mod:`kavi.gitstore.tripwire`) detects and undoes changes to the repository's config,
hooks and refs.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

_UNSHARE = (
    "--user",
    "--map-root-user",
    "--pid",
    "--fork",
    "--kill-child",
    "--mount",
    "--mount-proc",
    "--propagation",
    "private",
)
MAX_ESCAPES = 200  # escapes listed; the rest are counted
MAX_SCANNED = 100_000  # upper-layer entries examined after the backend ends


@dataclass(frozen=True)
class Confinement:
    """What a confined backend may see and change (paths as on the host)."""

    sandbox_root: Path  # writable: holds the worktree, the backend's HOME and TMPDIR
    protect: tuple[Path, ...] = ()  # seen copy-on-write; writes there are escapes
    home: Path | None = None  # hidden (empty, read-only) but for what the backend needs
    runtime_dirs: tuple[Path, ...] = ()  # per-user runtime dirs hidden too ($XDG_RUNTIME_DIR)
    withhold: tuple[Path, ...] = ()  # covered by empty read-only mounts

    @property
    def scratch(self) -> Path:
        return self.sandbox_root / "jail"


@dataclass
class Jail:
    argv: list[str]
    confined: bool
    layers: list[tuple[Path, Path]] = field(default_factory=list)  # (protected dir, its upper layer)

    def escapes(self, limit: int = MAX_ESCAPES) -> list[tuple[str, str]]:
        """The writes the backend made to protected directories: (path, what).

        At most ``limit`` are listed, and at most :data:`MAX_SCANNED` upper-layer entries
        examined; beyond either, one last item says how many more there were.
        """
        found: list[tuple[str, str]] = []
        scanned = more = 0
        for target, upper in self.layers:
            stack = [upper]
            while stack:
                current = stack.pop()
                try:
                    with os.scandir(current) as it:
                        entries = list(it)
                except OSError:
                    continue
                for entry in entries:
                    scanned += 1
                    if scanned > MAX_SCANNED:
                        return [*sorted(found), (str(target), f"wrote over {MAX_SCANNED} entries in")]
                    what = _change(entry, target / Path(entry.path).relative_to(upper))
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(Path(entry.path))
                    if what is None:
                        continue
                    if len(found) < limit:
                        found.append((str(target / Path(entry.path).relative_to(upper)), what))
                    else:
                        more += 1
        if more:
            return [*sorted(found), (str(self.layers[0][0]), f"made {more} more change(s) in")]
        return sorted(found)


def _change(entry: os.DirEntry[str], real: Path) -> str | None:
    """What an upper-layer entry says the backend did to ``real`` (None: nothing)."""
    try:
        st = entry.stat(follow_symlinks=False)
    except OSError:
        return None
    if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
        return "deleted"
    lower = _lstat(real)
    if stat.S_ISDIR(st.st_mode):
        if lower is None or not stat.S_ISDIR(lower.st_mode):
            return "created (directory)"
        if stat.S_IMODE(lower.st_mode) != stat.S_IMODE(st.st_mode):
            old, new = stat.S_IMODE(lower.st_mode), stat.S_IMODE(st.st_mode)
            return f"changed the permissions ({old:o} → {new:o}) of"
        return None  # copied up only because something inside it changed
    if stat.S_ISLNK(st.st_mode):
        return "written (symlink)"
    return "modified" if lower is not None else "created"


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except OSError:
        return None


def _tools() -> tuple[str, str] | None:
    unshare, setpriv = shutil.which("unshare"), shutil.which("setpriv")
    if unshare is None or setpriv is None:
        return None
    return unshare, setpriv


@lru_cache(maxsize=1)
def available() -> bool:
    """Can this machine confine a process this way? (checked once per process, for real)"""
    if not sys.platform.startswith("linux") or _tools() is None:
        return False
    with tempfile.TemporaryDirectory(prefix="kavi-jail-probe-") as tmp:
        root = Path(tmp)
        (root / "box").mkdir()
        (root / "target").mkdir()
        plan = Confinement(sandbox_root=root / "box", protect=(root / "target",))
        jail = _build(["true"], plan, cwd=root / "box", path_env=None)
        try:
            proc = subprocess.run(
                jail.argv, capture_output=True, timeout=20, check=False, stdin=subprocess.DEVNULL
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
        finally:
            subprocess.run(["chmod", "-R", "u+rwx", tmp], capture_output=True, check=False)
        return proc.returncode == 0


def confine(argv: Sequence[str], plan: Confinement, *, cwd: Path, path_env: str | None = None) -> Jail:
    """The command to run ``argv`` confined (or unchanged, if this machine cannot)."""
    if not available():
        _not_dumpable()
        return Jail(list(argv), False)
    return _build(argv, plan, cwd=cwd, path_env=path_env)


def _build(argv: Sequence[str], plan: Confinement, *, cwd: Path, path_env: str | None) -> Jail:
    tools = _tools()
    if tools is None:
        return Jail(list(argv), False)
    unshare, setpriv = tools
    scratch = plan.scratch
    scratch.mkdir(parents=True, exist_ok=True)
    layers: list[tuple[Path, Path]] = []
    overlays = []
    for i, target in enumerate(p for p in plan.protect if p.is_dir()):
        upper, work = scratch / f"layer{i}" / "upper", scratch / f"layer{i}" / "work"
        layers.append((target, upper))
        overlays.append({"target": str(target), "upper": str(upper), "work": str(work)})
    empty = scratch / "withheld"
    empty.write_bytes(b"")
    os.chmod(empty, 0o444)
    program = [str(_which(argv[0], path_env)), *argv[1:]] if argv else []
    private = [{"path": p, "shared": True, "read_only": False} for p in _shared_temp_dirs()]
    private += [{"path": str(p), "shared": False, "read_only": False} for p in plan.runtime_dirs]
    if plan.home is not None:
        private.append({"path": str(plan.home), "shared": False, "read_only": True})
    spec = {
        "sandbox": str(plan.sandbox_root),
        "scratch": str(scratch),
        "cwd": str(cwd),
        "overlays": overlays,
        "private": private,
        "exec": [str(p) for p in exec_roots(argv[0], path_env, plan.home)] if argv else [],
        "masks": [{"path": str(p), "dir": p.is_dir()} for p in plan.withhold],
        "empty_file": str(empty),
        "setpriv": setpriv,
        "argv": program,
    }
    spec_file = scratch / "jail.json"
    spec_file.write_text(json.dumps(spec))
    init = Path(__file__).with_name("jail_init.py")  # stdlib only: run isolated, no site
    return Jail(
        [unshare, *_UNSHARE, "--", sys.executable, "-I", "-S", str(init), str(spec_file)], True, layers
    )


def _shared_temp_dirs() -> list[str]:
    found = {"/tmp", "/var/tmp", "/dev/shm", tempfile.gettempdir()}
    return sorted(p for p in found if os.path.isdir(p) and p != "/")


def exec_roots(executable: str, path_env: str | None, home: Path | None) -> list[Path]:
    """What must stay visible to run ``executable``: the directory holding its real file
    and, for a script, the one holding its interpreter (``#!/usr/bin/env node`` → node).

    A directory that is ``/`` or holds ``home`` is never listed whole (that would undo
    hiding it); the file itself is, instead.
    """
    out: list[Path] = []
    for path in _program_files(executable, path_env):
        parent = path.parent
        prefix = parent.parent
        if parent.name == "bin" and (prefix / "lib").is_dir() and not _holds(prefix, home, local=True):
            parent = prefix  # an installation prefix (a venv, ~/.nvm/versions/node/vX): lib/ too
        out.append(path if _holds(parent, home) else parent)
    return list(dict.fromkeys(out))


def _holds(directory: Path, home: Path | None, *, local: bool = False) -> bool:
    """Is ``directory`` ``/``, ``home`` or above it (or, with ``local``, ``~/.local``)?"""
    if directory == Path("/") or home is None:
        return directory == Path("/")
    return directory == home or directory in home.parents or (local and directory == home / ".local")


def _which(executable: str, path_env: str | None) -> Path:
    """The real file ``executable`` names (looked up on ``path_env`` if it has no ``/``)."""
    found = executable if "/" in executable else shutil.which(executable, path=path_env)
    return Path(found or executable).resolve()


def _program_files(executable: str, path_env: str | None) -> list[Path]:
    try:
        real = _which(executable, path_env)
    except OSError:
        return []
    files = [real]
    try:
        with open(real, "rb") as fh:
            first = fh.readline(256)
    except OSError:
        return files
    if first.startswith(b"#!"):
        parts = first[2:].decode("utf-8", "replace").split()
        if parts and os.path.basename(parts[0]) == "env" and len(parts) > 1:
            found = shutil.which(parts[1], path=path_env)
            interpreter = found or ""
        else:
            interpreter = parts[0] if parts else ""
        if interpreter:  # the path as written (a venv's bin/python) and the real file
            files.append(Path(interpreter))
            try:
                files.append(Path(interpreter).resolve())
            except OSError:
                pass
    return files


def protected_dirs(*candidates: Path, sandbox: Path) -> list[Path]:
    """Directories to overlay: existing, not ``/``, not holding the sandbox, no duplicates."""
    out: list[Path] = []
    box = sandbox.resolve()
    for c in candidates:
        try:
            p = c.resolve()
        except OSError:
            continue
        if not p.is_dir() or p == Path("/") or p == box or p in box.parents:
            continue
        if any(p == o or o in p.parents for o in out):
            continue
        out = [o for o in out if p not in o.parents]
        out.append(p)
    return out


def runtime_dirs(env: Mapping[str, str]) -> tuple[Path, ...]:
    """Per-user runtime directories to hide: ``$XDG_RUNTIME_DIR`` (keyrings, gpg-agent, D-Bus)."""
    found: Iterable[str] = filter(None, [env.get("XDG_RUNTIME_DIR")])
    return tuple(Path(p) for p in found if os.path.isdir(p) and p != "/")


def _not_dumpable() -> None:
    """PR_SET_DUMPABLE=0: same-user processes can no longer read our /proc entries."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
    except (OSError, AttributeError):
        pass
