"""Confinement for backend processes: Linux namespaces, when the kernel allows them.

The backend runs as ``unshare --user --map-root-user --pid --fork --kill-child --mount
--mount-proc --ipc -- python -I -S jail_init.py SPEC``; :mod:`kavi.backends.jail_init`
builds its world and execs it through ``setpriv --bounding-set=-all --no-new-privs``.
So the backend has:

* a read-only filesystem where its sandbox (worktree, HOME, TMPDIR) is the only
  writable place: the Kavi installation and every repository are read-only;
* nothing of the forge: its working trees and git directory are empty (it has its own
  checkout), so neither the repository's config (a CI token) nor its history is in
  reach, let alone writable;
* private, empty ``/tmp``, ``/var/tmp``, ``/run`` and ``$XDG_RUNTIME_DIR``: no ssh-agent,
  tmux, D-Bus or container daemon socket, no other build's sandbox;
* an empty, read-only ``$HOME`` (except the directories holding the backend's executable);
* a minimal ``/dev`` (no host terminals) and its own IPC namespace (no host shared memory);
* empty read-only mounts over the secret files still in view (see
  :mod:`kavi.backends.withhold`);
* its own PID namespace (when its first process ends or is killed, the kernel kills every
  process left in it: a ``setsid`` daemon cannot outlive the build) and ``/proc`` (it
  cannot read Kavi's ``/proc/<pid>/environ``);
* a fresh session keyring, no capabilities, no new privileges and no further user
  namespaces, so it cannot undo any of that.

Not confined: the network (the backend must reach its model's API), hence abstract Unix
sockets and services listening on localhost; and resources (no cgroup: CPU, memory,
processes and disk are the user's). Where user namespaces or ``mount_setattr`` (Linux
5.12) are unavailable, the command runs unconfined, Kavi marks itself non-dumpable
(``PR_SET_DUMPABLE=0``), and the tripwire (:mod:`kavi.gitstore.tripwire`) detects and
undoes changes to the repository's config, hooks and refs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
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
    "--ipc",
)


@dataclass(frozen=True)
class Confinement:
    """What a confined backend may see and change (paths as on the host)."""

    sandbox_root: Path  # writable: holds the worktree, the backend's HOME and TMPDIR
    home: Path | None = None  # shown empty and read-only, but for the backend's executable
    hide: tuple[Path, ...] = ()  # shown empty and read-only: the forge, its git dir
    private: tuple[Path, ...] = ()  # shown empty and writable (besides /tmp, /var/tmp, /run)
    withhold: tuple[Path, ...] = ()  # covered by empty read-only mounts

    @property
    def scratch(self) -> Path:
        return self.sandbox_root / "jail"


@dataclass
class Jail:
    argv: list[str]
    confined: bool


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
        (root / "hidden").mkdir()
        plan = Confinement(sandbox_root=root / "box", hide=(root / "hidden",))
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
        not_dumpable()
        return Jail(list(argv), False)
    return _build(argv, plan, cwd=cwd, path_env=path_env)


def _build(argv: Sequence[str], plan: Confinement, *, cwd: Path, path_env: str | None) -> Jail:
    tools = _tools()
    if tools is None:
        return Jail(list(argv), False)
    unshare, setpriv = tools
    scratch = plan.scratch
    scratch.mkdir(parents=True, exist_ok=True)
    empty = scratch / "withheld"
    empty.write_bytes(b"")
    os.chmod(empty, 0o444)
    program = [str(_which(argv[0], path_env)), *argv[1:]] if argv else []
    hide = [{"path": p, "shared": True, "read_only": False} for p in _shared_dirs()]
    hide += [{"path": str(p), "shared": False, "read_only": False} for p in _real_dirs(plan.private)]
    hidden = [plan.home, *plan.hide] if plan.home is not None else list(plan.hide)
    hide += [{"path": str(p), "shared": False, "read_only": True} for p in _real_dirs(hidden)]
    visible = exec_roots(argv[0], path_env, plan.home, [*_real_dirs(plan.hide)]) if argv else []
    resolver = Path("/etc/resolv.conf")
    if resolver.exists():
        visible.append(resolver.resolve())  # it often lives in /run (systemd-resolved)
    spec = {
        "sandbox": str(plan.sandbox_root),
        "scratch": str(scratch),
        "cwd": str(cwd),
        "hide": hide,
        "visible": [str(p) for p in visible],
        "masks": [{"path": str(p), "dir": p.is_dir()} for p in plan.withhold],
        "empty_file": str(empty),
        "setpriv": setpriv,
        "argv": program,
    }
    spec_file = scratch / "jail.json"
    spec_file.write_text(json.dumps(spec))
    init = Path(__file__).with_name("jail_init.py")  # stdlib only: run isolated, no site
    command_line = [unshare, *_UNSHARE, "--", sys.executable, "-I", "-S", str(init), str(spec_file)]
    return Jail(command_line, True)


def _shared_dirs() -> list[str]:
    """Directories every process of the user shares: temporary files and runtime sockets."""
    found = {"/tmp", "/var/tmp", "/run", tempfile.gettempdir(), f"/run/user/{os.getuid()}"}
    return sorted({str(p) for p in _real_dirs(Path(f) for f in found)})


def _real_dirs(paths: Iterable[Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        try:
            real = p.resolve(strict=True)
        except (OSError, RuntimeError):
            continue
        if real.is_dir() and real != Path("/") and real not in out:
            out.append(real)
    return out


def exec_roots(
    executable: str, path_env: str | None, home: Path | None, hidden: Sequence[Path] = ()
) -> list[Path]:
    """What must stay visible to run ``executable``: the directory holding its real file
    and, for a script, the one holding its interpreter (``#!/usr/bin/env node`` → node).

    A directory that is ``/`` or holds ``home`` or any other ``hidden`` directory (the
    forge, when the executable sits in ``<forge>/bin`` next to a ``<forge>/lib``) is never
    listed whole (that would undo hiding it); the file itself is, instead.
    """
    keep_out = [p for p in (home, *hidden) if p is not None]
    out: list[Path] = []
    for path in _program_files(executable, path_env):
        parent = path.parent
        prefix = parent.parent
        local = home is not None and prefix == home / ".local"
        if parent.name == "bin" and (prefix / "lib").is_dir() and not local and not _holds(prefix, keep_out):
            parent = prefix  # an installation prefix (a venv, ~/.nvm/versions/node/vX): lib/ too
        out.append(path if _holds(parent, keep_out) else parent)
    return list(dict.fromkeys(out))


def _holds(directory: Path, hidden: Sequence[Path]) -> bool:
    """Is ``directory`` ``/``, or one of ``hidden`` or above one of them?"""
    if directory == Path("/"):
        return True
    return any(directory == h or directory in h.parents for h in hidden)


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


def worktrees(common_dir: Path) -> list[Path]:
    """Every working tree of a repository: the main one (``<main>/.git`` is the common
    dir) and the linked ones (from ``<git dir>/worktrees/*/gitdir``)."""
    out = [common_dir.parent] if common_dir.name == ".git" and (common_dir.parent / ".git").is_dir() else []
    for gitdir in sorted((common_dir / "worktrees").glob("*/gitdir")):
        try:
            out.append(Path(gitdir.read_text().strip()).parent)
        except OSError:
            continue
    return out


def runtime_dirs(env: Mapping[str, str]) -> tuple[Path, ...]:
    """Per-user runtime directories to hide: ``$XDG_RUNTIME_DIR`` (keyrings, gpg-agent, D-Bus)."""
    found: Iterable[str] = filter(None, [env.get("XDG_RUNTIME_DIR")])
    return tuple(Path(p) for p in found if os.path.isdir(p) and p != "/")


def not_dumpable() -> None:
    """PR_SET_DUMPABLE=0: same-user processes can no longer read our /proc entries."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
    except (OSError, AttributeError):
        pass
