"""The hook's fast lane: accept ordinary pushes without loading pygit2.

Most pushes to a protected branch touch no protected path. For those, a few ``git``
commands (which see the push's quarantined objects through the environment git gives
the hook; replace refs are ignored) decide as the full rules would:

* only branches are updated, none of them deleted, none an alias of a protected one;
* on a protected branch the push adds commits and the old tip stays on the new
  first-parent line (``git log --first-parent old..new``);
* no commit on that line changes a protected path against its first parent (git's
  case-insensitive literal pathspecs for ``.kavi`` and the skills dir, the test-file
  glob matched here on ``--name-only`` output);
* no root tree on that line has a non-ASCII name or a case variant of a protected
  directory (those aliases are judged by the full check).

Anything else goes to the full check in :mod:`kavi.gitstore.hookcheck`. The fast lane
can only say "accept" when the full check would; when in doubt it declines.
"""

from __future__ import annotations

import fnmatch
import json
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

ZERO = "0" * 40
_ENV = {**os.environ, "GIT_NO_REPLACE_OBJECTS": "1"}


def _git(*args: str, stdin: bytes | None = None) -> bytes | None:
    try:
        proc = subprocess.run(
            ["git", "-c", "core.quotePath=false", *args],
            input=stdin,
            capture_output=True,
            timeout=120,
            check=False,
            env=_ENV,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout if proc.returncode == 0 else None


def _layout(old: str, cache_dir: Path, pinned: dict[str, object]) -> dict[str, object] | None:
    """Protected branches and dirs as of ``old``, from the config-blob cache (None: unknown)."""
    blob = _git("rev-parse", "--verify", "-q", f"{old}:.kavi/config.yaml")
    if blob is None:
        # no committed config at the old tip: the pinned layout applies only if .kavi is absent too
        return pinned if _git("rev-parse", "--verify", "-q", f"{old}:.kavi") is None else None
    try:
        path = cache_dir / "config-cache" / f"{blob.decode().strip()}.json"
        data: dict[str, object] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data


def _names(value: object) -> set[str]:
    return {str(v) for v in value} if isinstance(value, list) else set()


def _root_names(trees: set[str]) -> set[str] | None:
    """Every entry name in the given root trees, read in one ``git cat-file --batch``."""
    out = _git("cat-file", "--batch", stdin="".join(f"{t}\n" for t in sorted(trees)).encode())
    if out is None:
        return None
    names: set[str] = set()
    pos = 0
    while pos < len(out):
        header_end = out.index(b"\n", pos)
        header = out[pos:header_end].split()
        if len(header) != 3 or header[1] != b"tree":
            return None
        size = int(header[2])
        body = out[header_end + 1 : header_end + 1 + size]
        pos = header_end + 1 + size + 1
        i = 0
        while i < len(body):
            nul = body.index(b"\0", i)
            names.add(body[body.index(b" ", i) + 1 : nul].decode("utf-8", "replace"))
            i = nul + 21
    return names


def _line_is_ordinary(old: str, new: str, layout: dict[str, object]) -> bool:
    log = _git("log", "--first-parent", "--format=%H %T %P", f"{old}..{new}")
    if log is None:
        return False
    rows = [line.split() for line in log.decode().splitlines() if line.strip()]
    if not rows or len(rows[-1]) < 3 or rows[-1][2] != old:
        return False  # nothing new (a rewind) or the old tip is not on the new first-parent line
    skills, tests = str(layout.get("skills_dir", "skills")), str(layout.get("tests_dir", "tests"))
    firsts = {p.split("/", 1)[0].casefold() for p in (".kavi", skills, tests)}
    names = _root_names({row[1] for row in rows})
    if names is None:
        return False
    for name in names:
        if not name.isascii() or (name.casefold() in firsts and name not in firsts):
            return False
    touched = _git(
        "rev-list", "--first-parent", f"{old}..{new}", "--",
        ":(icase,literal).kavi", f":(icase,literal){skills}",
    )  # fmt: skip
    if touched is None or touched.strip():
        return False
    # literal pathspecs let git prune its tree walk; the test-file glob is matched here
    changed = _git(
        "log", "--first-parent", "--diff-merges=first-parent", "--no-renames", "--format=",
        "--name-only", "-z", f"{old}..{new}", "--", f":(icase,literal){tests}",
    )  # fmt: skip
    if changed is None:
        return False
    prefix = tests.casefold() + "/"
    for raw in changed.split(b"\0"):
        low = raw.decode("utf-8", "replace").strip("\n").casefold()
        if low.startswith(prefix) and fnmatch.fnmatch(low[len(prefix) :], "test_skill_*.py"):
            return False
    return True


def _governing_layout(cache_dir: Path, pinned: dict[str, object]) -> dict[str, object] | None:
    """The layout the full check governs by: the first pinned branch that exists (else pinned)."""
    order = pinned.get("protected", ["main"])
    for branch in [str(b) for b in order] if isinstance(order, list) else []:
        tip = _git("rev-parse", "--verify", "-q", f"refs/heads/{branch}")
        if tip is not None:
            return _layout(tip.decode().strip(), cache_dir, pinned)
    return pinned


def accepts(updates: Sequence[tuple[str, str, str]], cache_dir: Path, pinned: dict[str, object]) -> bool:
    governing = _governing_layout(cache_dir, pinned)
    if governing is None:
        return False
    protected = _names(pinned.get("protected", ["main"])) | _names(governing.get("protected"))
    protected_refs = {f"refs/heads/{b}" for b in protected}
    folded = {r.casefold() for r in protected_refs}
    for old, new, ref in updates:
        if not ref.startswith("refs/heads/") or set(new) == {"0"}:
            return False  # tags, notes, Kavi's refs, deletions: the full check decides
        if ref.casefold() in folded and ref not in protected_refs:
            return False
        if ref not in protected_refs:
            continue
        if set(old) == {"0"}:
            return False
        layout = _layout(old, cache_dir, pinned)
        if layout is None or not _names(layout.get("protected")) <= protected:
            return False  # the old tip protects more branches than the governing config: full check
        if not _line_is_ordinary(old, new, layout):
            return False
    return True
