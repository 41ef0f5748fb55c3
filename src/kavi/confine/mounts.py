"""How :mod:`kavi.confine.init` builds a confined program's view of the filesystem.

Standard library only (it runs as root of a fresh user and mount namespace, before the
program). Two views, both read-only except what the spec names writable:

``allowlist`` (skills at ``run-skill``, generated tests at ``verify-skill``): a fresh,
empty root holding only the mounts the spec lists — the Python runtime and installed
packages, the skill's read roots and (FILE_WRITE) write roots, private temporary
directories of a fixed size — plus a read-only ``/proc`` of the PID namespace and a
minimal ``/dev``. ``pivot_root`` then makes it the root and the old one is detached:
nothing else of the host (no ``$HOME``, no repository, no sockets) exists in it. Each
mount is ``ro`` (bound read-only), ``rw`` (bound writable), ``hide`` (an empty read-only
directory or file in place of what lies below a bound directory), ``tmpfs`` (an empty
private writable directory of ``size_mb``) or ``link`` (a symlink, e.g. ``/lib`` →
``usr/lib``); deeper paths go on top of shallower ones.

``world`` (the build agent, which needs its toolchain and network): the host's
filesystem, all of it read-only; its sandbox the only writable place; empty tmpfs over
the shared temporary directories, ``/run``, ``$HOME`` and the forge; the directories
holding the agent's executable bound back; secret files still in view covered by empty
read-only mounts.

Before either (and before a prestarted program starts), :func:`isolate` forbids further
user namespaces (no mounts of the program's own) and joins a fresh session keyring.
"""

from __future__ import annotations

import ctypes
import errno
import os
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_NOATIME = 0x400
MS_BIND = 0x1000
MS_REC = 0x4000
MNT_DETACH = 0x2
AT_FDCWD = -100
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1
SYS_MOUNT_SETATTR = 442  # the same number on every architecture (added in Linux 5.12)
SYS_KEYCTL = {"x86_64": 250, "aarch64": 219, "riscv64": 219, "ppc64le": 280, "s390x": 280, "i686": 288}
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217, "i686": 217}
KEYCTL_JOIN_SESSION_KEYRING = 1
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
# Where the fresh root is assembled, in this private mount namespace: the first of these
# that holds nothing the view binds. A prestarted program may still be starting (exec,
# imports) while the root is built, and covering the directory its interpreter lives in —
# a virtual environment under /tmp — would take its files away mid-start.
STAGES = ("/tmp", "/dev/shm", "/run", "/mnt", "/media", "/srv")
BUSY_RETRIES = 200  # a mount made read-only while a write to it is in flight: EBUSY
BUSY_PAUSE = 0.002

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
    """Make the mount at ``path`` read-only (or writable). The kernel refuses with EBUSY
    while any write to that mount is in flight — an access-time update counts, e.g. a
    process of the namespace following a symlink such as ``/lib64`` for the first time —
    so a busy mount is asked again, briefly."""
    attr = _MountAttr(MOUNT_ATTR_RDONLY if read_only else 0, 0 if read_only else MOUNT_ATTR_RDONLY, 0, 0)
    for _attempt in range(BUSY_RETRIES):
        rc = _libc.syscall(
            SYS_MOUNT_SETATTR,
            AT_FDCWD,
            path.encode(),
            ctypes.c_uint(AT_RECURSIVE if recursive else 0),
            ctypes.byref(attr),
            ctypes.c_size_t(ctypes.sizeof(attr)),
        )
        if rc == 0:
            return
        if ctypes.get_errno() != errno.EBUSY:
            break
        time.sleep(BUSY_PAUSE)
    raise _fail(f"mount_setattr {path}")


def _under(path: str, base: str) -> bool:
    return path == base or path.startswith(base.rstrip("/") + "/")


def _bind(fd: int, path: str, *, writable: bool) -> None:
    """Mount what ``fd`` refers to (opened before the covering mounts) at ``path``."""
    if os.path.isdir(f"/proc/self/fd/{fd}"):
        os.makedirs(path, exist_ok=True)
    elif not os.path.lexists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb"):
            pass
    _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC, None)
    _read_only(path, not writable, recursive=not writable)


def _minimal_dev(base: str, devices: dict[str, int], *, terminals: bool, shm_mb: int) -> None:
    dev = base + "/dev"
    os.makedirs(dev, exist_ok=True)
    _mount("kavi-dev", dev, "tmpfs", MS_NOSUID | MS_NOEXEC | MS_NOATIME, "mode=0755,size=64k")
    for name, fd in devices.items():
        _bind(fd, f"{dev}/{name}", writable=True)
        os.close(fd)
    if terminals:
        os.mkdir(f"{dev}/pts")
        _mount("devpts", f"{dev}/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620")
        os.symlink("pts/ptmx", f"{dev}/ptmx")
    os.mkdir(f"{dev}/shm")
    _mount("kavi-shm", f"{dev}/shm", "tmpfs", MS_NOSUID | MS_NODEV, f"mode=1777,size={shm_mb}m")
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0")):
        os.symlink(target, f"{dev}/{name}")
    os.symlink("/proc/self/fd/1", f"{dev}/stdout")
    os.symlink("/proc/self/fd/2", f"{dev}/stderr")
    _read_only(dev, True)


def _no_more_namespaces() -> None:
    """No nested user namespace: no fresh mounts (tmpfs of any size) past this point."""
    with open("/proc/sys/user/max_user_namespaces", "w") as fh:
        fh.write("0")


def _fresh_session_keyring() -> None:
    number = SYS_KEYCTL.get(os.uname().machine)
    if number is None:
        raise OSError(0, f"no keyctl syscall number known for {os.uname().machine}")
    if _libc.syscall(number, KEYCTL_JOIN_SESSION_KEYRING, None) < 0:
        raise _fail("keyctl(JOIN_SESSION_KEYRING)")


def _devices() -> dict[str, int]:
    return {d: os.open(f"/dev/{d}", os.O_PATH) for d in DEVICES if os.path.exists(f"/dev/{d}")}


def isolate() -> None:
    """First of all, before any program starts (a prestarted one included): no further
    user namespaces, and a fresh session keyring (none of Kavi's keys)."""
    _no_more_namespaces()  # (while /proc is still writable)
    _fresh_session_keyring()


def build(spec: dict[str, Any]) -> None:
    if spec.get("view") == "allowlist":
        build_allowlist(spec)
    else:
        build_world(spec)


# --- the allowlist view -----------------------------------------------------------------


def _depth(path: str) -> int:
    return path.rstrip("/").count("/")


def _stage(bound: list[str]) -> str:
    """A directory to assemble the root in that covers none of ``bound``."""
    for stage in STAGES:
        if os.path.isdir(stage) and not os.path.islink(stage) and not any(_under(p, stage) for p in bound):
            return stage
    raise OSError(0, "no directory to assemble the root in: " + ", ".join(STAGES) + " all hold bound paths")


def build_allowlist(spec: dict[str, Any]) -> None:
    ops: list[dict[str, Any]] = sorted(spec["mounts"], key=lambda op: _depth(op["path"]))
    sources = {
        op["path"]: os.open(op["path"], os.O_PATH)
        for op in ops
        if op["kind"] in ("ro", "rw") and os.path.lexists(op["path"])
    }
    devices = _devices()
    stage = _stage(list(sources))
    _mount("kavi-stage", stage, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0700,size=1m")
    root = stage + "/root"
    empty = stage + "/empty"
    os.mkdir(root)
    with open(empty, "wb"):
        pass
    os.chmod(empty, 0o444)
    # no access times: nothing on the fresh root is ever written, not even by a lookup
    _mount("kavi-root", root, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOATIME, "mode=0755,size=1m")
    hidden: list[str] = []
    for op in ops:
        path, kind = op["path"], op["kind"]
        target = root + path
        if kind in ("ro", "rw"):
            fd = sources.pop(path, None)
            if fd is None:
                continue  # gone since the plan was made
            _bind(fd, target, writable=kind == "rw")
            os.close(fd)
        elif kind == "link":
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.symlink(op["target"], target)
        elif kind == "hide":
            if not os.path.lexists(target):  # a skeleton on the way to a deeper root
                os.makedirs(target)
            if os.path.isdir(target):  # read-only once the roots below it are bound
                _mount("kavi-hidden", target, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOATIME, "mode=0555,size=4k")
                hidden.append(target)
            elif os.path.lexists(target):
                _mount(empty, target, None, MS_BIND, None)
                _read_only(target, True)
        elif kind == "tmpfs":
            os.makedirs(target, exist_ok=True)
            size = int(op.get("size_mb") or 16)
            _mount("kavi-private", target, "tmpfs", MS_NOSUID | MS_NODEV, f"mode=1777,size={size}m")
        else:
            raise OSError(0, f"unknown mount kind {kind!r} for {path}")
    for target in hidden:
        _read_only(target, True)
    os.makedirs(root + "/proc", exist_ok=True)
    # read-only: a program running as host root could otherwise write global sysctls
    # (their files check only the uid) or /proc/sysrq-trigger
    _mount("proc", root + "/proc", "proc", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
    _minimal_dev(root, devices, terminals=False, shm_mb=16)
    _read_only(root, True)  # before the pivot: a prestarted program cannot be using it yet
    _pivot(root)


def _pivot(root: str) -> None:
    """Make ``root`` the root of this mount namespace and detach the old one. Every
    process of the namespace whose root or working directory was the old root (the
    waiting program, started from ``/``) is moved along by the kernel."""
    number = SYS_PIVOT_ROOT.get(os.uname().machine)
    if number is None:
        raise OSError(0, f"no pivot_root syscall number known for {os.uname().machine}")
    os.chdir(root)
    if _libc.syscall(number, b".", b".") != 0:
        raise _fail("pivot_root")
    if _libc.umount2(b".", MNT_DETACH) != 0:
        raise _fail("umount the old root")
    os.chdir("/")


# --- the world view (the build agent) ---------------------------------------------------


def build_world(spec: dict[str, Any]) -> None:
    sandbox, scratch = spec["sandbox"], spec["scratch"]
    keep: list[tuple[str, int, bool]] = [(sandbox, os.open(sandbox, os.O_PATH), True)]
    keep += [(p, os.open(p, os.O_PATH), False) for p in spec["visible"] if os.path.lexists(p)]
    devices = _devices()

    _read_only("/", True, recursive=True)  # 1
    _mount(f"/proc/self/fd/{keep[0][1]}", sandbox, None, MS_BIND, None)  # 2
    _read_only(sandbox, False)
    _minimal_dev("", devices, terminals=True, shm_mb=256)  # 3

    covered: list[tuple[str, bool]] = []  # 4
    for cover in sorted(spec["hide"], key=lambda c: c["path"].count("/")):
        path = cover["path"]
        if not os.path.isdir(path) or any(_under(path, c) for c, _ro in covered):
            continue  # gone, or already inside an earlier cover
        mode = "1777" if cover["shared"] else "0755"
        _mount("kavi-private", path, "tmpfs", MS_NOSUID | MS_NODEV, f"mode={mode},size=1g")
        covered.append((path, cover["read_only"]))

    for path, fd, writable in sorted(keep, key=lambda k: k[0].count("/")):  # 5
        if any(_under(path, c) for c, _ro in covered):
            _bind(fd, path, writable=writable)
        os.close(fd)
    for path, read_only in covered:
        if read_only:
            _read_only(path, True)

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
