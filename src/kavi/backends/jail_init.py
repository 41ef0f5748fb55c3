"""First process inside a backend's namespace jail (see :mod:`kavi.backends.jail`).

Runs as root of fresh user, mount, PID and IPC namespaces, with the standard library
only (as a script, ``python -I -S``), and builds the backend's world:

1. every mount read-only, recursively (``mount_setattr``);
2. the sandbox root bound onto itself, writable — the only writable place;
3. a minimal ``/dev``: ``null``, ``zero``, ``full``, ``random``, ``urandom``, ``tty``
   bound from the host, a private ``devpts`` and ``/dev/shm`` (no host terminals);
4. empty tmpfs over what it must not see: the shared temporary directories and ``/run``
   (sockets of ssh-agent, tmux, D-Bus, container daemons; other builds' sandboxes),
   and, read-only, ``$HOME``, the forge's working trees and its git directory;
5. bound back at their own paths, read-only: the directories holding the backend's
   executable and interpreter, and the resolver configuration if it lives in ``/run``;
   and the sandbox, writable;
6. empty read-only mounts over secret files still in view;
7. the scratch directory (this spec) hidden;

and, first of all, no further user namespaces (so the backend can make no mounts of
its own, of any size) and a fresh session keyring (none of Kavi's keys);

then it drops every capability (``setpriv``) and runs the backend from its sandbox as its
child: PID 1 of the namespace stays this small reaper, which the backend cannot touch.
Any failure exits 97 before the backend starts: Kavi never runs it half-confined.
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import sys
from typing import Any

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_BIND = 0x1000
MS_REC = 0x4000
AT_FDCWD = -100
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1
SYS_MOUNT_SETATTR = 442  # the same number on every architecture (added in Linux 5.12)
SYS_KEYCTL = {"x86_64": 250, "aarch64": 219, "riscv64": 219, "ppc64le": 280, "s390x": 280, "i686": 288}
KEYCTL_JOIN_SESSION_KEYRING = 1
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")

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
    rc = _libc.syscall(
        SYS_MOUNT_SETATTR,
        AT_FDCWD,
        path.encode(),
        ctypes.c_uint(AT_RECURSIVE if recursive else 0),
        ctypes.byref(attr),
        ctypes.c_size_t(ctypes.sizeof(attr)),
    )
    if rc != 0:
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


def _minimal_dev(devices: dict[str, int]) -> None:
    _mount("kavi-dev", "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=64k")
    for name, fd in devices.items():
        _bind(fd, f"/dev/{name}", writable=True)
        os.close(fd)
    os.mkdir("/dev/pts")
    _mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620")
    os.symlink("pts/ptmx", "/dev/ptmx")
    os.mkdir("/dev/shm")
    _mount("kavi-shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=256m")
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0")):
        os.symlink(target, f"/dev/{name}")
    os.symlink("/proc/self/fd/1", "/dev/stdout")
    os.symlink("/proc/self/fd/2", "/dev/stderr")
    _read_only("/dev", True)


def _no_more_namespaces() -> None:
    """No nested user namespace: no fresh mounts (tmpfs of any size) past this point."""
    with open("/proc/sys/user/max_user_namespaces", "w") as fh:
        fh.write("0")


def _fresh_session_keyring() -> None:
    number = SYS_KEYCTL.get(platform.machine())
    if number is None:
        raise OSError(0, f"no keyctl syscall number known for {platform.machine()}")
    if _libc.syscall(number, KEYCTL_JOIN_SESSION_KEYRING, None) < 0:
        raise _fail("keyctl(JOIN_SESSION_KEYRING)")


def build(spec: dict[str, Any]) -> None:
    sandbox, scratch = spec["sandbox"], spec["scratch"]
    keep: list[tuple[str, int, bool]] = [(sandbox, os.open(sandbox, os.O_PATH), True)]
    keep += [(p, os.open(p, os.O_PATH), False) for p in spec["visible"] if os.path.lexists(p)]
    devices = {d: os.open(f"/dev/{d}", os.O_PATH) for d in DEVICES if os.path.exists(f"/dev/{d}")}

    _no_more_namespaces()  # (while /proc is still writable)
    _fresh_session_keyring()
    _read_only("/", True, recursive=True)  # 1
    _mount(f"/proc/self/fd/{keep[0][1]}", sandbox, None, MS_BIND, None)  # 2
    _read_only(sandbox, False)
    _minimal_dev(devices)  # 3

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
    child = os.fork()
    if child == 0:
        try:
            os.execv(argv[0], argv)
        finally:
            os._exit(98)
    # PID 1 stays this process, out of the backend's reach: it cannot clear PID 1's
    # parent-death signal (so the jail dies with Kavi) or outlive it. Reap every orphan;
    # return when the backend itself exits — the kernel then kills what is left.
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            return 98
        except InterruptedError:
            continue
        if pid == child:
            return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
