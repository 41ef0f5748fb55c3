"""Confinement for backend processes: Linux namespaces, when the kernel allows them.

The backend runs as ``unshare --user --map-root-user --pid --fork --kill-child --mount
--mount-proc -- python -I -S jail_init.py SPEC``, which overlays each protected
directory and then execs ``setpriv --bounding-set=-all --inh-caps=-all --no-new-privs --
<backend>``. So the backend has:

* its own PID namespace: when its first process ends (or is killed), the kernel kills
  every process left in it — a ``setsid`` double-fork daemon cannot outlive the build;
* its own ``/proc``: it cannot read Kavi's ``/proc/<pid>/environ`` (secrets), ``cwd`` or
  open files;
* a copy-on-write view of the forge working tree, its git dir and the user's home: every
  write there lands in a scratch layer (never in the real files), and :meth:`Jail.escapes`
  lists those writes afterwards so the build fails naming each one;
* secret files outside the sandbox (an untracked ``.env`` in the forge, ``~/.ssh``, cloud
  credentials, the git signing key) covered by empty read-only mounts;
* no capabilities and no new privileges, so it cannot undo any of that.

Where user namespaces or overlayfs are unavailable, the command runs unconfined, Kavi
marks itself non-dumpable (``PR_SET_DUMPABLE=0``), and the tripwire
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
from collections.abc import Sequence
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


@dataclass
class Jail:
    argv: list[str]
    confined: bool
    layers: list[tuple[Path, Path]] = field(default_factory=list)  # (protected dir, its upper layer)

    def escapes(self, limit: int = 200) -> list[tuple[str, str]]:
        """Every write the backend made to a protected directory: (path, what)."""
        found: list[tuple[str, str]] = []
        for target, upper in self.layers:
            stack = [upper]
            while stack and len(found) < limit:
                current = stack.pop()
                try:
                    entries = list(os.scandir(current))
                except OSError:
                    continue
                for entry in entries:
                    rel = Path(entry.path).relative_to(upper)
                    shown = str(target / rel)
                    st = entry.stat(follow_symlinks=False)
                    if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                        found.append((shown, "deleted"))
                    elif stat.S_ISDIR(st.st_mode):
                        lower = _lstat(target / rel)
                        if lower is None or not stat.S_ISDIR(lower.st_mode):
                            found.append((shown, "created (directory)"))
                        elif stat.S_IMODE(lower.st_mode) != stat.S_IMODE(st.st_mode):
                            old, new = stat.S_IMODE(lower.st_mode), stat.S_IMODE(st.st_mode)
                            found.append((shown, f"changed the permissions ({old:o} → {new:o}) of"))
                        stack.append(Path(entry.path))
                    elif stat.S_ISLNK(st.st_mode):
                        found.append((shown, "written (symlink)"))
                    else:
                        verb = "modified" if os.path.lexists(target / rel) else "created"
                        found.append((shown, verb))
        return sorted(found)


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
    """Can this machine confine a process this way? (checked once per process, with an overlay)"""
    if not sys.platform.startswith("linux") or _tools() is None:
        return False
    with tempfile.TemporaryDirectory(prefix="kavi-jail-probe-") as tmp:
        target = Path(tmp) / "target"
        target.mkdir()
        jail = _build(["true"], scratch=Path(tmp) / "scratch", protect=[target])
        try:
            proc = subprocess.run(
                jail.argv, capture_output=True, timeout=20, check=False, stdin=subprocess.DEVNULL
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
        return proc.returncode == 0


def _build(
    argv: Sequence[str], *, scratch: Path, protect: Sequence[Path], withhold: Sequence[Path] = ()
) -> Jail:
    tools = _tools()
    if tools is None:
        return Jail(list(argv), False)
    unshare, setpriv = tools
    scratch.mkdir(parents=True, exist_ok=True)
    layers = []
    spec_layers = []
    for i, target in enumerate(protect):
        upper, work = scratch / f"layer{i}" / "upper", scratch / f"layer{i}" / "work"
        layers.append((target, upper))
        spec_layers.append({"target": str(target), "upper": str(upper), "work": str(work)})
    empty = scratch / "withheld"
    empty.write_bytes(b"")
    os.chmod(empty, 0o444)
    masks = [{"path": str(p), "dir": p.is_dir()} for p in withhold]
    spec = scratch / "jail.json"
    spec.write_text(
        json.dumps(
            {
                "overlays": spec_layers,
                "masks": masks,
                "empty_file": str(empty),
                "setpriv": setpriv,
                "argv": list(argv),
            }
        )
    )
    init = Path(__file__).with_name("jail_init.py")  # stdlib only: run isolated, no site
    command = [unshare, *_UNSHARE, "--", sys.executable, "-I", "-S", str(init), str(spec)]
    return Jail(command, True, layers)


def confine(
    argv: Sequence[str], *, scratch: Path, protect: Sequence[Path], withhold: Sequence[Path] = ()
) -> Jail:
    """The command to run ``argv`` confined (or unchanged, if this machine cannot).

    ``protect``: directories seen copy-on-write; ``withhold``: files and directories
    covered by an empty read-only mount (see :mod:`kavi.backends.withhold`).
    """
    if not available():
        _not_dumpable()
        return Jail(list(argv), False)
    return _build(argv, scratch=scratch, protect=[p for p in protect if p.is_dir()], withhold=withhold)


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
