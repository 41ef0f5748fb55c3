"""The single reducer: how one journal event changes the ledger tables.

Every change to the ledger is an event appended to the journal and applied here,
live and when a fresh clone replays ``refs/kavi/ledger``. Because both paths run the
same code, a rebuilt ledger equals the original one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from kavi.errors import LedgerError
from kavi.ledger import rows
from kavi.ledger.models import (
    Artifact,
    Build,
    BuildStatus,
    Event,
    Promotion,
    Proposal,
    Revocation,
    Run,
    Verification,
)
from kavi.ledger.states import ProposalStatus, check_transition


class EventKind:
    FORGE_INITIALIZED = "forge.initialized"
    PROPOSAL_CREATED = "proposal.created"
    ARTIFACT_RECORDED = "artifact.recorded"
    BUILD_STARTED = "build.started"
    BUILD_FINISHED = "build.finished"
    VERIFICATION_RECORDED = "verification.recorded"
    STATUS_CHANGED = "proposal.status_changed"
    PROMOTION_RECORDED = "promotion.recorded"
    REVOCATION_RECORDED = "revocation.recorded"
    RUN_RECORDED = "run.recorded"


def _get_build(conn: sqlite3.Connection, build_id: str) -> Build:
    row = conn.execute("SELECT * FROM builds WHERE id = ?", (build_id,)).fetchone()
    if row is None:
        raise LedgerError(f"event refers to unknown build {build_id}")
    return rows.from_row(Build, row)


def _get_proposal(conn: sqlite3.Connection, proposal_id: str) -> Proposal:
    row = conn.execute("SELECT * FROM skill_proposals WHERE id = ?", (proposal_id,)).fetchone()
    if row is None:
        raise LedgerError(f"event refers to unknown proposal {proposal_id}")
    return rows.from_row(Proposal, row)


def _forge_initialized(conn: sqlite3.Connection, event: Event) -> None:
    for key, value in event.payload.items():
        conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (f"forge.{key}", str(value)),
        )


def _insert(model: type[Any]) -> Callable[[sqlite3.Connection, Event], None]:
    def apply(conn: sqlite3.Connection, event: Event) -> None:
        rows.insert(conn, model.model_validate(event.payload))

    return apply


def _build_finished(conn: sqlite3.Connection, event: Event) -> None:
    build = _get_build(conn, str(event.payload["build_id"]))
    if build.status is not BuildStatus.STARTED:
        raise LedgerError(f"build {build.id} already finished ({build.status.value})")
    fields = {k: v for k, v in event.payload.items() if k != "build_id"}
    updated = Build.model_validate({**build.model_dump(mode="json"), **fields})
    if updated.status is BuildStatus.STARTED:
        raise LedgerError(f"build {build.id}: a finished build needs SUCCEEDED or FAILED")
    rows.update(conn, updated)


def _status_changed(conn: sqlite3.Connection, event: Event) -> None:
    proposal = _get_proposal(conn, str(event.payload["proposal_id"]))
    expected = ProposalStatus(event.payload["from"])
    target = ProposalStatus(event.payload["to"])
    if proposal.status is not expected:
        raise LedgerError(
            f"proposal {proposal.id} is {proposal.status.value}, event expected {expected.value}"
        )
    check_transition(proposal.status, target, subject=f"proposal {proposal.name}")
    conn.execute(
        "UPDATE skill_proposals SET status = ?, updated_at = ? WHERE id = ?",
        (target.value, event.created_at, proposal.id),
    )


HANDLERS: dict[str, Callable[[sqlite3.Connection, Event], None]] = {
    EventKind.FORGE_INITIALIZED: _forge_initialized,
    EventKind.PROPOSAL_CREATED: _insert(Proposal),
    EventKind.ARTIFACT_RECORDED: _insert(Artifact),
    EventKind.BUILD_STARTED: _insert(Build),
    EventKind.BUILD_FINISHED: _build_finished,
    EventKind.VERIFICATION_RECORDED: _insert(Verification),
    EventKind.STATUS_CHANGED: _status_changed,
    EventKind.PROMOTION_RECORDED: _insert(Promotion),
    EventKind.REVOCATION_RECORDED: _insert(Revocation),
    EventKind.RUN_RECORDED: _insert(Run),
}


def apply_event(conn: sqlite3.Connection, event: Event) -> None:
    handler = HANDLERS.get(event.kind)
    if handler is None:
        raise LedgerError(
            f"unknown ledger event kind {event.kind!r} (event {event.seq})",
            remedy="upgrade Kavi: this ledger was written by a newer version",
        )
    handler(conn, event)
