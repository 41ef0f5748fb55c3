"""A refused ref update, as the pusher sees it (standard library only: the hook's fast
lane refuses some pushes itself, with the same words as the full check)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kavi.textsafe import printable

REPUBLISH_HINT = (
    "if it is a Kavi promotion that lost a race with another push: "
    "`git fetch origin && git kavi promote-skill --republish`"
)


@dataclass(frozen=True)
class Rejection:
    ref: str
    rule: str
    why: str
    remedy: str
    commit: str | None = None
    path: str | None = None

    def render(self, subject: Callable[[str], str | None] | None = None) -> str:
        """The block printed to the pusher; ``subject`` gives a commit's first line."""
        lines = [f"kavi: REJECTED {printable(self.ref)}"]
        if self.commit:
            first = subject(self.commit) if subject is not None else None
            shown = f' "{printable(first[:60])}"' if first is not None else ""
            lines.append(f"  commit:  {self.commit}{shown}")
        if self.path:
            lines.append(f"  path:    {printable(self.path)}")
        lines.append(f"  rule:    {self.rule}")
        lines.append(f"  why:     {printable(self.why)}")
        lines.append(f"  do this: {printable(self.remedy)}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, str | None]:
        return dict(self.__dict__)


def push_refused(count: int | str) -> str:
    """The last line of a refused push (``count`` blocks above it)."""
    return f"kavi: push rejected ({count} problem(s)); nothing was changed"


def branch_name(ref: str) -> str:
    return ref[len("refs/heads/") :] if ref.startswith("refs/heads/") else ref


def protected_delete(ref: str) -> Rejection:
    return Rejection(
        ref,
        "protected-branch-delete",
        f"{branch_name(ref)} is protected and cannot be deleted",
        "leave the branch; revoke skills with `git kavi revoke-skill`",
    )


def non_fast_forward(ref: str, old: str, new: str) -> Rejection:
    branch = branch_name(ref)
    return Rejection(
        ref,
        "non-fast-forward",
        f"force-push to protected branch {branch} ({old[:12]} is not an ancestor of {new[:12]})",
        f"fetch, rebase or merge onto origin/{branch}, then push without --force; " + REPUBLISH_HINT,
        commit=new,
    )
