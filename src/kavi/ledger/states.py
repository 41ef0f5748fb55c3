"""The one state machine every proposal status change goes through.

::

    PROPOSED ──build ok──► BUILT ──verify passed──► VERIFIED ──promote──► TRUSTED
        │                   ▲  │                      │  │                  │
        │                   └──┘ rebuilt / verify     │  └─► BUILT          ├─► SUPERSEDED (newer version)
        │                        failed               │    (rebuilt,        └─► REVOKED
        │                                             │     re-verify failed)
        └──────────── any non-terminal ──► REJECTED ◄─┘

REJECTED, SUPERSEDED and REVOKED are terminal.
"""

from __future__ import annotations

from enum import Enum

from kavi.errors import StateError


class ProposalStatus(str, Enum):
    PROPOSED = "PROPOSED"
    BUILT = "BUILT"
    VERIFIED = "VERIFIED"
    TRUSTED = "TRUSTED"
    REJECTED = "REJECTED"
    SUPERSEDED = "SUPERSEDED"
    REVOKED = "REVOKED"


S = ProposalStatus

TRANSITIONS: dict[ProposalStatus, frozenset[ProposalStatus]] = {
    S.PROPOSED: frozenset({S.BUILT, S.REJECTED}),
    S.BUILT: frozenset({S.BUILT, S.VERIFIED, S.REJECTED}),
    S.VERIFIED: frozenset({S.BUILT, S.TRUSTED, S.REJECTED}),
    S.TRUSTED: frozenset({S.SUPERSEDED, S.REVOKED}),
    S.REJECTED: frozenset(),
    S.SUPERSEDED: frozenset(),
    S.REVOKED: frozenset(),
}

TERMINAL = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)


def can_transition(current: ProposalStatus, target: ProposalStatus) -> bool:
    return target in TRANSITIONS[current]


def check_transition(current: ProposalStatus, target: ProposalStatus, *, subject: str) -> None:
    """Raise :class:`StateError` unless ``current → target`` is legal."""
    if can_transition(current, target):
        return
    allowed = ", ".join(sorted(s.value for s in TRANSITIONS[current])) or "none (terminal)"
    raise StateError(
        f"{subject}: illegal status change {current.value} → {target.value}",
        why=f"from {current.value} the allowed next states are: {allowed}",
        remedy=_remedy_for(current, target),
    )


def _remedy_for(current: ProposalStatus, target: ProposalStatus) -> str:
    if current in TERMINAL:
        return "this proposal is closed; propose the skill again with `git kavi propose-skill`"
    if target is S.VERIFIED:
        return "build it first: `git kavi build-skill <proposal>`"
    if target is S.TRUSTED:
        return "verify it first: `git kavi verify-skill <proposal>`, then `promote-skill`"
    return "run the pipeline steps in order: propose → build → verify → promote"
