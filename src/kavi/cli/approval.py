"""Human approval: the only place an :class:`Approval` can be made.

Invariant 5: background and automated callers can only propose. Promotion and
revocation take an :class:`Approval`, and only this module — used by the user-facing
``promote-skill`` / ``revoke-skill`` commands — can construct one: a human at a
terminal answered "yes", or a human passed ``--yes``. An approval is bound to the
digest of the exact plan that was shown, so it cannot be reused for anything else.
Hooks, background jobs and the research step never import this module (a test
checks that).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Literal

from kavi.errors import ApprovalError

_MINT = object()  # capability: only obtain_approval holds it


@dataclass(frozen=True)
class Approval:
    plan_digest: str
    approver: str
    method: Literal["terminal", "--yes"]
    _mint: object

    def __post_init__(self) -> None:
        if self._mint is not _MINT:
            raise ApprovalError(
                "approvals can only be given by a person through `git kavi`",
                why="background and automated callers can only propose (invariant 5)",
                remedy="run `git kavi promote-skill <proposal>` at a terminal",
            )

    def check(self, plan_digest: str) -> None:
        if plan_digest != self.plan_digest:
            raise ApprovalError(
                "this approval was given for a different promotion plan",
                why="the build, verification or target branch changed after approval",
                remedy="run the command again and review what will be merged",
            )


def require(approval: object, plan_digest: str, action: str) -> None:
    """Refuse unless ``approval`` is a genuine Approval for exactly this plan."""
    if not isinstance(approval, Approval):
        from kavi.errors import TrustError

        raise TrustError(f"{action} requires an Approval from the user-facing command")
    approval.check(plan_digest)


def approve_within(parent: Approval, plan_digest: str) -> Approval:
    """An approval for one step of a larger plan a person approved as a whole (the
    promotions ``--republish`` signs again, each checked against what was shown)."""
    if not isinstance(parent, Approval):
        raise ApprovalError("a step needs the approval of the plan it belongs to")
    return Approval(plan_digest, parent.approver, parent.method, _MINT)


def stdin_is_terminal() -> bool:
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def obtain_approval(*, plan_digest: str, approver: str, yes: bool, question: str, action: str) -> Approval:
    """Ask the person at the terminal (or accept ``--yes``); refuse without either."""
    if yes:
        return Approval(plan_digest, approver, "--yes", _MINT)
    if not stdin_is_terminal():
        raise ApprovalError(
            f"{action} needs a person's confirmation, and there is no terminal",
            why="without a terminal Kavi cannot ask, and automation may not approve",
            remedy="run it at a terminal, or pass --yes if you are the person approving",
        )
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    answer = sys.stdin.readline().strip().lower()
    if answer not in ("y", "yes"):
        raise ApprovalError(f"{action} cancelled", why="you did not answer yes")
    return Approval(plan_digest, approver, "terminal", _MINT)
