"""What a confined backend must not even read: secret files outside its sandbox.

The sandbox already withholds files matching ``policy.sandbox.exclude``; but the agent
runs as the user, so the main working tree's copies (an untracked ``.env``) and the
user's credential stores were one ``open()`` away. In the namespace jail each path
listed here is covered by an empty, read-only mount: it reads as empty and cannot be
written. (Without the jail there is no way to hide them from a same-user process; the
tripwire does not see reads.)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
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
    extra: Iterable[Path] = (),
) -> list[Path]:
    """Existing paths to cover: excluded names in the working tree, credential stores, ``extra``."""
    from kavi.gitstore.sandbox import name_matcher

    matches = name_matcher(exclude)
    found: list[Path] = list(_matching(workdir, common_dir, matches))
    if home is not None:
        found += [home / rel for rel in HOME_SECRETS]
    found += list(extra)
    out: list[Path] = []
    seen: set[str] = set()
    for path in found:
        if os.path.lexists(path) and not os.path.islink(path) and str(path) not in seen:
            seen.add(str(path))
            out.append(path)
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
