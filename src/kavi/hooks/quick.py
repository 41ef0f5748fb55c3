"""The hook's fast lane: accept ordinary pushes without loading pygit2.

Most pushes to a protected branch touch no protected path. For those, two ``git``
commands (which see the push's quarantined objects through the environment git gives
the hook) decide as the full rules would: the branch's old tip is on the new
first-parent line (``git rev-list --first-parent --parents old..new``), and no commit on
that line changes a protected path against its first parent (the same command with
protected pathspecs, matched case-insensitively). Anything else — Kavi's own refs, a
new or deleted branch, a protected change, an unknown configuration — goes to the full
check in :mod:`kavi.gitstore.hookcheck`. The fast lane can only say "accept" when the
full check would; when in doubt it declines.
"""

from __future__ import annotations

import fnmatch
import json
import subprocess
from collections.abc import Sequence
from pathlib import Path

ZERO = "0" * 40
KAVI_REFS = ("refs/kavi/", "refs/notes/kavi", "refs/tags/kavi/")


def _git(*args: str) -> str | None:
    try:
        proc = subprocess.run(["git", *args], capture_output=True, text=True, timeout=120, check=False)
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
        data: dict[str, object] = json.loads(
            (cache_dir / "config-cache" / f"{blob.strip()}.json").read_text()
        )
    except (OSError, ValueError):
        return None
    return data


def _names(value: object) -> set[str]:
    return {str(v) for v in value} if isinstance(value, list) else set()


def accepts(updates: Sequence[tuple[str, str, str]], cache_dir: Path, pinned: dict[str, object]) -> bool:
    protected = _names(pinned.get("protected", ["main"]))
    protected_refs = {f"refs/heads/{b}" for b in protected}
    for old, new, ref in updates:
        if ref.startswith(KAVI_REFS) or ref == "refs/kavi":
            return False
        if ref not in protected_refs:
            continue
        if old == ZERO or new == ZERO or set(old) == {"0"} or set(new) == {"0"}:
            return False
        layout = _layout(old, cache_dir, pinned)
        if layout is None or _names(layout.get("protected")) != protected:
            return False  # the old tip protects other branches than the pinned ones: full check
        chain = _git("rev-list", "--first-parent", "--parents", f"{old}..{new}")
        if chain is None:
            return False
        lines = chain.split("\n")
        lines = [line for line in lines if line]
        if lines and (len(lines[-1].split()) < 2 or lines[-1].split()[1] != old):
            return False  # the old tip is not on the new first-parent line
        skills, tests = str(layout.get("skills_dir", "skills")), str(layout.get("tests_dir", "tests"))
        touched = _git(
            "rev-list",
            "--first-parent",
            f"{old}..{new}",
            "--",
            ":(icase,literal).kavi",
            f":(icase,literal){skills}",
        )
        if touched is None or touched.strip():
            return False
        # literal pathspecs let git prune its tree walk; the test-file glob is matched here
        names = _git(
            "log",
            "--first-parent",
            "--diff-merges=first-parent",
            "--no-renames",
            "--format=",
            "--name-only",
            f"{old}..{new}",
            "--",
            f":(icase,literal){tests}",
        )
        if names is None:
            return False
        prefix = tests.casefold() + "/"
        for name in names.splitlines():
            low = name.casefold()
            if low.startswith(prefix) and fnmatch.fnmatch(low[len(prefix) :], "test_skill_*.py"):
                return False
    return True
