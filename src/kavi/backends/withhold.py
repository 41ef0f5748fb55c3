"""What a confined backend must not even read: secret files outside its sandbox.

The sandbox already withholds files matching ``policy.sandbox.exclude``; but the agent
runs as the user, so the main working tree's copies (an untracked ``.env``) and the
user's credential stores were one ``open()`` away. In the namespace jail each path
listed here is covered by an empty, read-only mount: it reads as empty and cannot be
written. Key agents' sockets are covered the same way: through one, an agent could sign
(a promotion tag, say) with the user's key without ever reading it. (Without the jail
there is no way to hide any of this from a same-user process; the tripwire does not see
reads.)
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

# Credential stores under $HOME: keys, cloud and registry tokens, git credentials,
# and the agent CLIs' own logins (the backend runs with a throwaway HOME anyway).
HOME_SECRETS: tuple[str, ...] = (
    ".ssh",
    ".gnupg",
    ".aws",
    ".azure",
    ".config/gcloud",
    ".config/gh",
    ".config/git/credentials",
    ".config/hub",
    ".docker/config.json",
    ".kube",
    ".netrc",
    ".git-credentials",
    ".npmrc",
    ".pypirc",
    ".password-store",
    ".claude",
    ".claude.json",
    ".config/kavi",
    ".local/share/keyrings",
)

MAX_SCANNED = 200_000  # entries of the working tree examined for excluded names


def withheld_paths(
    *,
    workdir: Path,
    common_dir: Path,
    home: Path | None,
    exclude: Iterable[str],
    env: Mapping[str, str] | None = None,
    sandbox: Path | None = None,
    extra: Iterable[Path] = (),
) -> list[Path]:
    """Existing paths to cover: excluded names in the working tree, credential stores,
    agent sockets (:func:`agent_sockets`), ``extra``. Never the sandbox or a directory
    holding it; never a symlink (the mount would land on its target)."""
    from kavi.gitstore.sandbox import name_matcher

    matches = name_matcher(exclude)
    found: list[Path] = list(_matching(workdir, common_dir, matches))
    if home is not None:
        found += [home / rel for rel in HOME_SECRETS]
    found += agent_sockets(env or {}, home)
    found += list(extra)
    box = sandbox.resolve() if sandbox is not None else None
    out: list[Path] = []
    seen: set[str] = set()
    for path in found:
        if not os.path.lexists(path) or os.path.islink(path) or str(path) in seen:
            continue
        if box is not None and (path == box or path in box.parents):
            continue
        seen.add(str(path))
        out.append(path)
    return out


def agent_sockets(env: Mapping[str, str], home: Path | None) -> list[Path]:
    """Where key agents listen: with one, an agent could sign as the user without the key.

    ``$XDG_RUNTIME_DIR`` (gpg-agent, keyrings, D-Bus), and ``$SSH_AUTH_SOCK``'s private
    directory — or the socket alone when it sits in a shared directory like ``/tmp``.
    """
    out: list[Path] = []
    runtime = env.get("XDG_RUNTIME_DIR")
    if runtime:
        out.append(Path(runtime))
    sock = env.get("SSH_AUTH_SOCK")
    if sock:
        path = Path(sock)
        shared = {Path("/"), Path("/tmp"), Path("/var/tmp"), Path(tempfile.gettempdir())}
        if home is not None:
            shared.add(home)
        out.append(path if path.parent in shared else path.parent)
    return out


def _matching(workdir: Path, common_dir: Path, match: Callable[[str], bool]) -> Iterator[Path]:
    """Files under ``workdir`` (not in any ``.git``) whose name or path matches; iterative."""
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
