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


def parse_updates(data: bytes) -> list[tuple[str, str, str]]:
    """``<old> <new> <ref>`` per line (see :mod:`kavi.hooks.updates`)."""
    from kavi.hooks.updates import read_updates

    return [(o, n, r) for o, n, r in read_updates(data, fields=3, oids=(0, 1))]


def main() -> int:
    from kavi.hooks.updates import UnreadableUpdate

    try:
        raw = parse_updates(sys.stdin.buffer.read())
    except UnreadableUpdate as exc:
        sys.stderr.write(
            "kavi: REJECTED (an update the hook cannot read)\n"
            f"  why:     {exc}: git writes `<old> <new> <ref>` with single spaces\n"
            "  do this: push refs by their plain names; ask the server's admin if this persists\n"
        )
        return 1
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
        data = json.loads((state / "hook.json").read_text())
        (state / "trusted_signers").stat()
    except (OSError, ValueError):
        return False
    pinned = data.get("config") if isinstance(data, dict) else None
    if not isinstance(pinned, dict):
        return False  # the full check says the hook is not configured
    return refusals(raw, pinned) or accepts(raw, state, pinned)


if __name__ == "__main__":
    sys.exit(main())
