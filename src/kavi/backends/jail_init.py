"""First process inside a backend's namespace jail (see :mod:`kavi.backends.jail`).

Runs as root of a fresh user and mount namespace, with the standard library only (as a
script, ``python -I -S``), and builds the backend's view of the filesystem:

1. every mount read-only, recursively (``mount_setattr``);
2. the sandbox root bound onto itself, writable;
3. copy-on-write overlays over the forge and its git dir, their upper layers in the
   sandbox's scratch directory;
4. private, empty tmpfs over the shared temporary and runtime directories (``/tmp``,
   ``/var/tmp``, ``/dev/shm``, ``$XDG_RUNTIME_DIR``: other users' sockets — ssh-agent,
   tmux, other builds' sandboxes — live there) and over ``$HOME`` (read-only);
5. what must stay visible bound back at its own path: the sandbox (writable), the
   overlays, and the directories holding the backend's executable and interpreter
   (read-only);
6. empty read-only mounts over secret files still in view (``.env`` in the forge, a
   signing key, daemon sockets);
7. the scratch directory itself hidden, so the backend cannot edit its upper layers;

then it drops every capability (``setpriv``) and execs the backend from its sandbox.
Any failure exits 97 before the backend starts: Kavi never runs it half-confined.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
from typing import Any

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
AT_FDCWD = -100
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1
SYS_MOUNT_SETATTR = 442  # the same number on every architecture (added in Linux 5.12)

_libc = ctypes.CDLL(None, use_errno=True)


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


def _fail(what: str) -> OSError:
    err = ctypes.get_errno()
    return OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    rc = _libc.mount(
        source.encode() if source else None,
        target.encode(),
        fstype.encode() if fstype else None,
        ctypes.c_ulong(flags),
        data.encode() if data else None,
    )
    if rc != 0:
        raise _fail(f"mount {target}")


def _read_only(path: str, read_only: bool, *, recursive: bool = False) -> None:
    attr = _MountAttr(MOUNT_ATTR_RDONLY if read_only else 0, 0 if read_only else MOUNT_ATTR_RDONLY, 0, 0)
    flags = AT_RECURSIVE if recursive else 0
    rc = _libc.syscall(
        SYS_MOUNT_SETATTR,
        AT_FDCWD,
        path.encode(),
        ctypes.c_uint(flags),
        ctypes.byref(attr),
        ctypes.c_size_t(ctypes.sizeof(attr)),
    )
    if rc != 0:
        raise _fail(f"mount_setattr {path}")


def _under(path: str, base: str) -> bool:
    return path == base or path.startswith(base.rstrip("/") + "/")


def _bind(fd: int, path: str, *, writable: bool) -> None:
    """Mount what ``fd`` refers to (kept from before the covering mounts) at ``path``."""
    if os.path.isdir(f"/proc/self/fd/{fd}"):
        os.makedirs(path, exist_ok=True)
    elif not os.path.lexists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb"):
            pass
    _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC, None)
    _read_only(path, not writable, recursive=not writable)


def build(spec: dict[str, Any]) -> None:
    sandbox, scratch = spec["sandbox"], spec["scratch"]
    keep: list[tuple[str, int, bool]] = [(sandbox, os.open(sandbox, os.O_PATH), True)]
    keep += [(p, os.open(p, os.O_PATH), False) for p in spec["exec"] if os.path.lexists(p)]

    _read_only("/", True, recursive=True)  # 1
    _mount(f"/proc/self/fd/{keep[0][1]}", sandbox, None, MS_BIND, None)  # 2
    _read_only(sandbox, False)

    for layer in spec["overlays"]:  # 3
        os.makedirs(layer["upper"], exist_ok=True)
        os.makedirs(layer["work"], exist_ok=True)
        target = layer["target"]
        options = f"lowerdir={target},upperdir={layer['upper']},workdir={layer['work']},userxattr"
        _mount("overlay", target, "overlay", 0, options)
        keep.append((target, os.open(target, os.O_PATH), True))

    covered: list[str] = []  # 4
    for cover in sorted(spec["private"], key=lambda c: c["path"].count("/")):
        path = cover["path"]
        if not os.path.isdir(path) or any(_under(path, c) for c in covered):
            continue  # gone, or already inside an earlier cover
        mode = "1777" if cover["shared"] else "0700"
        _mount("kavi-private", path, "tmpfs", MS_NOSUID | MS_NODEV, f"mode={mode},size=1g")
        covered.append(path)

    for path, fd, writable in sorted(keep, key=lambda k: k[0].count("/")):  # 5
        if any(_under(path, c) for c in covered):
            _bind(fd, path, writable=writable)
        os.close(fd)
    for cover in spec["private"]:
        if cover["path"] in covered and cover["read_only"]:
            _read_only(cover["path"], True)

    for mask in spec["masks"]:  # 6
        path = mask["path"]
        if not os.path.lexists(path):
            continue  # already out of view
        if mask["dir"]:
            _mount("kavi-withheld", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV, "mode=0555,size=4k")
        else:
            _mount(spec["empty_file"], path, None, MS_BIND, None)
            _read_only(path, True)

    _mount("kavi-scratch", scratch, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV, "mode=0555,size=4k")  # 7


def main(spec_path: str) -> int:
    with open(spec_path, encoding="utf-8") as fh:
        spec = json.load(fh)
    try:
        build(spec)
        os.chdir(spec["cwd"])  # through the new mounts (the inherited cwd is the read-only one)
    except OSError as exc:
        sys.stderr.write(f"kavi-jail: cannot confine the backend: {exc}\n")
        return 97
    argv = [spec["setpriv"], "--bounding-set=-all", "--inh-caps=-all", "--no-new-privs", "--", *spec["argv"]]
    os.execv(argv[0], argv)
    return 98  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
