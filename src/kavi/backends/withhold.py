"""What a confined backend must not even read, among what the jail leaves in view.

The jail hides ``$HOME``, the temporary directories and ``$XDG_RUNTIME_DIR`` wholesale;
the forge (copy-on-write) and the rest of the filesystem (read-only) stay visible. Here
is what, among those, is covered by an empty read-only mount: files in the forge's
working tree matching ``policy.sandbox.exclude`` (an untracked ``.env``), the key
``user.signingkey`` names, the ssh-agent socket wherever it lives, and container
daemons' sockets (a member of the ``docker`` group is root on the host). Symlinks are
followed: the real file is covered, wherever the link points. (Without the jail none of
this can be hidden from a same-user process; the tripwire does not see reads.)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

# Sockets of daemons that act for whoever can connect.
DAEMON_SOCKETS: tuple[str, ...] = (
    "/run/docker.sock",
    "/var/run/docker.sock",
    "/run/containerd/containerd.sock",
    "/run/podman/podman.sock",
    "/run/buildkit/buildkitd.sock",
)

MAX_SCANNED = 200_000  # entries of the working tree examined for excluded names


def withheld_paths(
    *,
    workdir: Path,
    common_dir: Path,
    exclude: Iterable[str],
    home: Path | None = None,
    env: Mapping[str, str] | None = None,
    sandbox: Path | None = None,
    extra: Iterable[Path] = (),
) -> list[Path]:
    """Existing real paths to cover: excluded names in the working tree, what symlinks in
    ``home`` point to outside it (a dotfiles-managed ``~/.ssh``), the ssh-agent socket,
    daemon sockets, ``extra``. Symlinks resolved; never the sandbox, anything in it, or a
    directory holding it."""
    from kavi.gitstore.sandbox import name_matcher

    found: list[Path] = list(_matching(workdir, common_dir, name_matcher(exclude)))
    if home is not None:
        found += _links_out_of(home)
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


def _links_out_of(home: Path) -> list[Path]:
    """Symlinks at the top of ``home`` and ``home/.config`` whose target lies outside it
    (hiding ``home`` hides the link, not its target)."""
    out = []
    for directory in (home, home / ".config"):
        try:
            with os.scandir(directory) as it:
                links = [Path(e.path) for e in it if e.is_symlink()]
        except OSError:
            continue
        for link in links:
            try:
                target = link.resolve(strict=True)
            except (OSError, RuntimeError):
                continue
            if target != home and home not in target.parents:
                out.append(target)
    return out


def _matching(workdir: Path, common_dir: Path, match: Callable[[str], bool]) -> Iterator[Path]:
    """Entries under ``workdir`` (not in any ``.git``) whose name or path matches; iterative."""
    skip = {str(common_dir)}
    stack = [(str(workdir), "")]
    scanned = 0
    while stack and scanned < MAX_SCANNED:
        current, prefix = stack.pop()
        try:
            with os.scandir(current) as it:
                entries = list(it)
        except OSError:
            continue
        for entry in entries:
            scanned += 1
            rel = prefix + entry.name
            if entry.name == ".git" or entry.path in skip:
                continue
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                continue
            if match(entry.name) or match(rel):
                yield Path(entry.path)
            elif is_dir:
                stack.append((entry.path, rel + "/"))


def signing_key_files(value: str | None, home: Path | None) -> list[Path]:
    """The private key behind a git ``user.signingkey`` path (``key.pub`` → ``key``)."""
    if not value or value.startswith(("key::", "ssh-")):
        return []
    if value.startswith("~") and home is not None:
        value = str(home) + value[1:]
    path = Path(os.path.expanduser(value))
    return [path.with_suffix("") if path.suffix == ".pub" else path]
