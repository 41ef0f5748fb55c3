"""Derived caches under ``<git-common-dir>/kavi/cache/`` (invariant 7: rebuildable, safe to delete).

Entries are keyed by content (a commit id, a file's SHA-256), so an entry can never be
stale: a different input is a different key. They let fast commands (``run-skill``)
skip pygit2 and YAML when nothing changed since a previous command computed the same
value. A corrupt or missing entry is simply recomputed.
"""

from __future__ import annotations

import os
from pathlib import Path


def _path(kavi_dir: Path, kind: str, key: str) -> Path:
    return kavi_dir / "cache" / kind / f"{key}.json"


def get(kavi_dir: Path, kind: str, key: str) -> str | None:
    try:
        return _path(kavi_dir, kind, key).read_text(encoding="utf-8")
    except OSError:
        return None


def put(kavi_dir: Path, kind: str, key: str, text: str) -> None:
    path = _path(kavi_dir, kind, key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass  # a cache that cannot be written only costs speed


def read_ref(common_dir: Path, ref: str) -> str | None:
    """A ref's commit id from the files git keeps (loose ref, then packed-refs), no pygit2."""
    try:
        text = (common_dir / ref).read_text(encoding="ascii").strip()
        if len(text) == 40 and all(c in "0123456789abcdef" for c in text):
            return text
    except (OSError, UnicodeDecodeError):
        pass
    try:
        for line in (common_dir / "packed-refs").read_text(encoding="utf-8").splitlines():
            if line.endswith(f" {ref}") and not line.startswith(("#", "^")):
                return line.split(" ", 1)[0]
    except OSError:
        pass
    return None
