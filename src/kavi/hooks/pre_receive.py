"""Server-side ``pre-receive`` entry point: reject every unsanctioned Kavi change in a push.

Run by the shim git calls (``hooks/pre-receive``); reads ``<old> <new> <ref>`` lines
on stdin, opens the repository the way hooks must (``FROM_ENV`` — quarantined objects
are visible), judges every update with :class:`kavi.gitstore.hookcheck.HookChecker`
and prints one block per rejection. Exit 1 rejects the whole push. The hook only reads.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kavi.gitstore.rejection import Rejection


def parse_updates(text: str) -> list[tuple[str, str, str]]:
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3:
            out.append((parts[0], parts[1], parts[2]))
    return out


def main() -> int:
    raw = parse_updates(sys.stdin.read())
    git_dir = Path(os.environ.get("GIT_DIR", ".")).resolve()
    quick = _quick(raw, git_dir)
    if quick is True:
        return 0
    if quick:
        return _refuse(quick, None)
    from kavi.gitstore.hookcheck import HookChecker, Update
    from kavi.gitstore.repo import GitRepo
    from kavi.hooks.pinned import load_pinned

    updates = [Update(o, n, r) for o, n, r in raw]
    pinned = load_pinned(git_dir)
    if pinned is None:
        sys.stderr.write(
            "kavi: REJECTED (hook not configured)\n"
            f"  why:     {git_dir}/kavi/hook.json or trusted_signers is missing or unreadable\n"
            "  do this: reinstall with `git kavi hooks install --server <repo> --trust FILE`\n"
        )
        return 1
    repo = GitRepo.open_from_env()
    try:
        rejections = HookChecker(repo, pinned, updates).check()
    except Exception as exc:  # fail closed, with a message instead of a traceback
        sys.stderr.write(
            "kavi: REJECTED (the hook could not judge this push)\n"
            f"  why:     {type(exc).__name__} while reading the pushed objects\n"
            "  do this: push ordinary commits and Kavi's own refs as `git kavi` makes them; "
            "ask the server's admin to look at the hook if this persists\n"
        )
        return 1
    return _refuse(rejections, repo.subject) if rejections else 0


def _refuse(rejections: Sequence[Rejection], subject: Callable[[str], str | None] | None) -> int:
    for r in rejections:
        sys.stderr.write(r.render(subject) + "\n")
    from kavi.gitstore.rejection import push_refused

    sys.stderr.write(push_refused(len(rejections)) + "\n")
    return 1


def _quick(raw: list[tuple[str, str, str]], git_dir: Path) -> bool | list[Rejection]:
    """The fast lane (no pygit2): True to accept a push that touches nothing Kavi protects,
    rejections for a rewind or deletion of a pinned protected branch, False to decide in full."""
    import json

    from kavi.hooks.quick import accepts, refusals

    state = git_dir / "kavi"
    try:
        pinned = json.loads((state / "hook.json").read_text()).get("config", {})
        (state / "trusted_signers").stat()
    except (OSError, ValueError):
        return False
    return refusals(raw, pinned) or accepts(raw, state, pinned)


if __name__ == "__main__":
    sys.exit(main())
