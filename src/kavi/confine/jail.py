"""Starting a confined process: Linux namespaces, when the kernel allows them.

Every confined program — the build agent, a generated test at verify time, a skill at
run time — runs as ``unshare --user --map-root-user --pid --fork --kill-child --mount
--mount-proc --ipc [--net] -- python -I -S init.py …``; :mod:`kavi.confine.init` builds
its world (:mod:`kavi.confine.mounts`) and runs it through ``setpriv --bounding-set=-all
--no-new-privs``. Skills and tests get a fresh root holding only what they may use (see
:mod:`kavi.confine.views`); the build agent, which needs its toolchain and its model's
API, gets the host's filesystem read-only with holes. So the build agent has:

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
  :mod:`kavi.confine.withhold`);
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
from typing import Any

from kavi.confine.launch import (
    FORCE_UNAVAILABLE_ENV,
    forced_unavailable,
    init_argv,
    not_dumpable,
    tools,
    unshare_argv,
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


def available() -> bool:
    """Can this machine confine a process? (checked once per process, for real)"""
    return not forced_unavailable() and _probe()


def unavailable_reason() -> str:
    if forced_unavailable():
        return f"namespaces switched off ({FORCE_UNAVAILABLE_ENV}=1)"
    if not sys.platform.startswith("linux"):
        return f"no Linux namespaces on {sys.platform}"
    if tools() is None:
        return "unshare/setpriv (util-linux) not found"
    return "this kernel refuses unprivileged user namespaces or mount_setattr (Linux >= 5.12)"


@lru_cache(maxsize=1)
def _probe() -> bool:
    """Run ``true`` in both views (the agent's world, a skill's fresh root without network)."""
    if not sys.platform.startswith("linux") or tools() is None:
        return False
    with tempfile.TemporaryDirectory(prefix="kavi-jail-probe-") as tmp:
        root = Path(tmp)
        (root / "box").mkdir()
        (root / "hidden").mkdir()
        plan = Confinement(sandbox_root=root / "box", hide=(root / "hidden",))
        jail = _build(["true"], plan, cwd=root / "box", path_env=None)
        fresh = spec_command({**_probe_view(), "argv": ["true"]}, root / "probe.json", own_network=True)
        try:
            for argv in (jail.argv, fresh):
                proc = subprocess.run(
                    argv, capture_output=True, timeout=20, check=False, stdin=subprocess.DEVNULL, cwd="/"
                )
                if proc.returncode != 0:
                    return False
        except (OSError, subprocess.TimeoutExpired):
            return False
        finally:
            subprocess.run(["chmod", "-R", "u+rwx", tmp], capture_output=True, check=False)
        return True


def _probe_view() -> dict[str, Any]:
    from kavi.confine.views import runtime_mounts

    return {"view": "allowlist", "mounts": runtime_mounts(), "cwd": "/"}


def spec_command(
    spec: dict[str, Any], spec_file: Path, *, own_network: bool, status_fd: int | None = None
) -> list[str]:
    """The command that runs ``spec["argv"]`` in the view ``spec`` describes."""
    found = tools()
    if found is None:
        raise OSError("unshare/setpriv not found")
    spec_file.write_text(json.dumps({**spec, "setpriv": found[1]}))
    status = ["--status-fd", str(status_fd)] if status_fd is not None else []
    return [*unshare_argv(own_network=own_network), *init_argv(*status, "--spec", str(spec_file))]


def confine(argv: Sequence[str], plan: Confinement, *, cwd: Path, path_env: str | None = None) -> Jail:
    """The command to run ``argv`` confined (or unchanged, if this machine cannot)."""
    if not available():
        not_dumpable()
        return Jail(list(argv), False)
    return _build(argv, plan, cwd=cwd, path_env=path_env)


def _build(argv: Sequence[str], plan: Confinement, *, cwd: Path, path_env: str | None) -> Jail:
    if tools() is None:
        return Jail(list(argv), False)
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
        "view": "world",
        "sandbox": str(plan.sandbox_root),
        "scratch": str(scratch),
        "cwd": str(cwd),
        "hide": hide,
        "visible": [str(p) for p in visible],
        "masks": [{"path": str(p), "dir": p.is_dir()} for p in plan.withhold],
        "empty_file": str(empty),
        "argv": program,
    }
    return Jail(spec_command(spec, scratch / "jail.json", own_network=False), True)


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
