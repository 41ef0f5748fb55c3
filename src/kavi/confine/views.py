"""What a confined skill or generated test may see: the allowlist view, as mount lists.

A view is a list of mounts on a fresh, empty root (see :mod:`kavi.confine.mounts`):

* the operating system's shared libraries and programs (``/usr``, ``/lib*``) and the few
  files of ``/etc`` the dynamic linker and the clock need (plus the resolver and
  certificates for classes with network);
* the Python runtime: ``sys.prefix`` and ``sys.base_prefix`` (a virtual environment and
  the interpreter it was made from), the standard library, site-packages, Kavi's own
  package and directories added by ``.pth`` files — never a directory that holds a home
  or the forge (then only the interpreter's own parts of it);
* the read roots (read-only) and write roots (writable) the caller names, with Kavi's
  artifact directory and any git or governance directory inside them empty;
* a private ``/tmp`` of a fixed size.

Every path is resolved first: what the program sees at a path is what is at that real
path on the host, or nothing.
"""

from __future__ import annotations

import os
import site
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
SYSTEM_FILES = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/timezone",
    "/etc/mime.types",
)
NETWORK_FILES = (
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/host.conf",
    "/etc/nsswitch.conf",
    "/etc/gai.conf",
    "/etc/services",
    "/etc/protocols",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/pki",
    "/etc/crypto-policies",
)

Mount = dict[str, Any]


def _real(path: str | Path) -> Path | None:
    try:
        return Path(os.path.realpath(path))
    except (OSError, ValueError):
        return None


def _holds(directory: Path, other: Path) -> bool:
    return directory == other or directory in other.parents


def _python_parts(prefix: Path) -> list[Path]:
    """The interpreter's own parts of ``prefix`` (used when the prefix is a home)."""
    import sysconfig

    parts = [Path(sys.executable), _real(sys.executable) or Path(sys.executable)]
    for scheme_path in sysconfig.get_paths(vars={"base": str(prefix), "platbase": str(prefix)}).values():
        parts.append(Path(scheme_path))
    libdir = sysconfig.get_config_var("LIBDIR")
    if libdir and Path(libdir).is_relative_to(prefix):
        parts += sorted(Path(libdir).glob("libpython*"))
    parts.append(prefix / "pyvenv.cfg")
    return [p for p in parts if p.is_relative_to(prefix)]


def _pth_paths(site_dirs: Iterable[Path]) -> list[Path]:
    """Directories ``.pth`` files in ``site_dirs`` add to ``sys.path`` (plain path lines)."""
    out: list[Path] = []
    for site_dir in site_dirs:
        try:
            names = sorted(n for n in os.listdir(site_dir) if n.endswith(".pth"))
        except OSError:
            continue
        for name in names:
            try:
                lines = (site_dir / name).read_text(encoding="utf-8", errors="replace").splitlines()
            except OSError:
                continue
            for line in lines:
                line = line.strip()
                if line and not line.startswith(("#", "import ", "import\t")):
                    out.append(Path(line) if os.path.isabs(line) else site_dir / line)
    return out


def python_roots(hidden: Sequence[Path] = ()) -> list[Path]:
    """Directories (and files) the Python runtime needs, none of them a home or the forge,
    nor a directory above one."""
    import kavi

    prefixes = {Path(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)}
    site_dirs = [Path(p) for p in site.getsitepackages()]
    stdlib = Path(os.__file__).parent  # (and lib-dynload below it)
    candidates: list[Path] = [*prefixes, *site_dirs, stdlib, stdlib / "lib-dynload"]
    candidates += [Path(kavi.__file__).resolve().parents[1], *_pth_paths(site_dirs)]
    exe = _real(sys.executable)
    if exe is not None:
        candidates.append(exe.parent)
    out: list[Path] = []
    for candidate in candidates:
        real = _real(candidate)
        if real is None or not real.exists() or real == Path("/"):
            continue
        if any(_holds(real, h) for h in hidden):
            parts = _python_parts(real) if candidate in prefixes else []
            out += [r for p in parts if (r := _real(p)) is not None and r.exists()]
        else:
            out.append(real)
    return _outermost(out)


def _outermost(paths: Iterable[Path]) -> list[Path]:
    unique = sorted(set(paths), key=lambda p: (len(p.parts), str(p)))
    out: list[Path] = []
    for path in unique:
        if not any(_holds(kept, path) for kept in out):
            out.append(path)
    return out


def runtime_mounts(hidden: Sequence[Path] = (), *, network: bool = False) -> list[Mount]:
    """The operating system and the Python runtime, read-only."""
    mounts: list[Mount] = []
    for name in SYSTEM_DIRS:
        if os.path.islink(name):
            mounts.append({"path": name, "kind": "link", "target": os.readlink(name)})
        elif os.path.isdir(name):
            mounts.append({"path": name, "kind": "ro"})
    for name in (*SYSTEM_FILES, *(NETWORK_FILES if network else ())):
        if os.path.islink(name):
            target = _real(name)
            if target is not None and target.exists() and not target.is_relative_to("/usr"):
                mounts.append({"path": str(target), "kind": "ro"})
            mounts.append({"path": name, "kind": "link", "target": os.readlink(name)})
        elif os.path.exists(name):
            mounts.append({"path": name, "kind": "ro"})
    mounts += [{"path": str(p), "kind": "ro"} for p in python_roots(hidden)]
    return mounts


def allowlist_view(
    *,
    read_roots: Sequence[Path] = (),
    write_roots: Sequence[Path] = (),
    private: Sequence[tuple[Path, int]] = (),
    protected: Sequence[Path] = (),
    hidden: Sequence[Path] = (),
    network: bool = False,
    cwd: Path = Path("/"),
) -> dict[str, Any]:
    """The spec of a fresh root holding the runtime, ``read_roots`` (read-only),
    ``write_roots`` (writable), ``private`` empty directories of a size in MiB, and
    nothing else; ``protected`` paths (Kavi's artifacts, git and governance directories)
    and ``hidden`` ones (a home, the forge) empty and read-only wherever a root would
    show them."""
    ops: dict[str, Mount] = {}
    for op in runtime_mounts(hidden, network=network):
        ops[op["path"]] = op
    bound: list[Path] = [Path(p) for p, op in ops.items() if op["kind"] == "ro"]
    for kind, roots in (("ro", read_roots), ("rw", write_roots)):
        for root in roots:
            real = _real(root)
            if real is not None and real.exists() and real != Path("/"):
                ops[str(real)] = {"path": str(real), "kind": kind}
                bound.append(real)
    for path, size_mb in private:
        ops[str(path)] = {"path": str(path), "kind": "tmpfs", "size_mb": int(size_mb)}
    for path in protected:
        real = _real(path)
        if real is not None and real.exists() and any(_holds(b, real) and b != real for b in bound):
            ops[str(real)] = {"path": str(real), "kind": "hide"}
    for path in hidden:
        real = _real(path)
        if real is None or not real.exists():
            continue
        if any(_holds(b, real) and b != real for b in bound) or str(real) in ops:
            ops[str(real)] = {"path": str(real), "kind": "hide"}
    # a root below a private directory (a vault under /tmp): the directories on its way
    # there are read-only skeletons, not part of the private directory
    for path, _size in private:
        for root in bound:
            if root != path and path in root.parents:
                first = path / root.relative_to(path).parts[0]
                if first != root and str(first) not in ops:
                    ops[str(first)] = {"path": str(first), "kind": "hide"}
    # roots below a hidden directory are shown again (they are deeper: mounted on top)
    for kind, roots in (("ro", read_roots), ("rw", write_roots)):
        for root in roots:
            real = _real(root)
            if real is not None and real.exists() and ops.get(str(real), {}).get("kind") == "hide":
                ops[str(real)] = {"path": str(real), "kind": kind}
    return {"view": "allowlist", "mounts": list(ops.values()), "cwd": str(cwd)}
