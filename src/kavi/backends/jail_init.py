"""First process inside a backend's namespace jail (see :mod:`kavi.backends.jail`).

Runs as root of a fresh user namespace: lays a copy-on-write overlay over each protected
directory (the forge, its git dir, the user's home), so the backend's writes there land
in a scratch layer Kavi inspects afterwards and never reach the real files; covers each
withheld secret path with an empty read-only mount; then drops every capability and
execs the backend. Standard library only, run as a script with ``-I -S`` and calling
mount(2) directly: it starts before every confined backend process.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_REMOUNT = 0x20
MS_BIND = 0x1000

_libc = ctypes.CDLL(None, use_errno=True)


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    rc = _libc.mount(
        source.encode(),
        target.encode(),
        fstype.encode() if fstype else None,
        ctypes.c_ulong(flags),
        data.encode() if data else None,
    )
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), target)


def _overlay(layer: dict[str, str]) -> None:
    os.makedirs(layer["upper"], exist_ok=True)
    os.makedirs(layer["work"], exist_ok=True)
    options = f"lowerdir={layer['target']},upperdir={layer['upper']},workdir={layer['work']},userxattr"
    _mount("overlay", layer["target"], "overlay", 0, options)


def _withhold(path: str, is_dir: bool, empty_file: str) -> None:
    if is_dir:
        _mount("kavi-withheld", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV, "mode=0555,size=4k")
    else:
        _mount(empty_file, path, None, MS_BIND, None)
        _mount(empty_file, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY, None)


def main(spec_path: str) -> int:
    with open(spec_path, encoding="utf-8") as fh:
        spec = json.load(fh)
    for layer in spec["overlays"]:
        try:
            _overlay(layer)
        except OSError as exc:
            sys.stderr.write(f"kavi-jail: cannot protect {layer['target']}: {exc.strerror}\n")
            return 97
    for mask in spec.get("masks", []):
        try:
            _withhold(mask["path"], mask["dir"], spec["empty_file"])
        except OSError as exc:
            if os.path.lexists(mask["path"]):  # vanished since it was listed: nothing to hide
                sys.stderr.write(f"kavi-jail: cannot withhold {mask['path']}: {exc.strerror}\n")
                return 97
    argv = [spec["setpriv"], "--bounding-set=-all", "--inh-caps=-all", "--no-new-privs", "--", *spec["argv"]]
    os.execv(argv[0], argv)
    return 98  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
