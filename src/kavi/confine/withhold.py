"""What a confined backend must not even read, among what the jail leaves in view.

The jail hides ``$HOME``, the forge, the temporary directories and ``/run`` wholesale,
and shows the rest of the filesystem read-only. Covered here by empty read-only mounts:
the key ``user.signingkey`` names, the ssh-agent socket wherever it lives, container
daemons' sockets (a member of the ``docker`` group is root on the host), and the
targets of symlinks that lead out of a hidden directory (a dotfiles-managed ``~/.ssh``,
a forge's ``.env`` linked to a shared secrets file): hiding a link does not hide what it
points to. Everything is resolved: the real file is covered. (Without the jail none of
this can be hidden from a same-user process; the tripwire does not see reads.)
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

# Sockets of daemons that act for whoever can connect.
DAEMON_SOCKETS: tuple[str, ...] = (
    "/run/docker.sock",
    "/var/run/docker.sock",
    "/run/containerd/containerd.sock",
    "/run/podman/podman.sock",
    "/run/buildkit/buildkitd.sock",
)


def withheld_paths(
    *,
    hidden: Iterable[Path] = (),
    env: Mapping[str, str] | None = None,
    sandbox: Path | None = None,
    extra: Iterable[Path] = (),
) -> list[Path]:
    """Existing real paths to cover: what symlinks at the top of each ``hidden``
    directory (and of its ``.config``) point to outside it, the ssh-agent socket, daemon
    sockets, ``extra``. Never the sandbox, anything in it, or a directory holding it."""
    found: list[Path] = []
    for directory in hidden:
        found += links_out_of(directory)
    sock = (env or {}).get("SSH_AUTH_SOCK")
    if sock:
        found.append(Path(sock))
    found += [Path(p) for p in DAEMON_SOCKETS]
    found += list(extra)
    box = sandbox.resolve() if sandbox is not None else None
    out: list[Path] = []
    for path in found:
        try:
            real = path.resolve(strict=True)
        except (OSError, RuntimeError):
            continue  # missing, or a symlink loop
        if real == Path("/") or real in out:
            continue
        if box is not None and (real == box or real in box.parents or box in real.parents):
            continue
        out.append(real)
    return out


def links_out_of(directory: Path) -> list[Path]:
    """Targets of the symlinks at the top of ``directory`` and ``directory/.config`` that
    lie outside it."""
    try:
        base = directory.resolve()
    except OSError:
        return []
    out = []
    for where in (base, base / ".config"):
        try:
            with os.scandir(where) as it:
                links = [Path(e.path) for e in it if e.is_symlink()]
        except OSError:
            continue
        for link in links:
            try:
                target = link.resolve(strict=True)
            except (OSError, RuntimeError):
                continue
            if target != base and base not in target.parents:
                out.append(target)
    return out


def signing_key_files(value: str | None, home: Path | None) -> list[Path]:
    """The private key behind a git ``user.signingkey`` path (``key.pub`` → ``key``)."""
    if not value or value.startswith(("key::", "ssh-")):
        return []
    if value.startswith("~") and home is not None:
        value = str(home) + value[1:]
    path = Path(os.path.expanduser(value))
    return [path.with_suffix("") if path.suffix == ".pub" else path]
