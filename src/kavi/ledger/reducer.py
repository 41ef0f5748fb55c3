"""The single reducer: how one journal event changes the ledger tables.

Every change to the ledger is an event appended to the journal and applied here,
live and when a fresh clone replays ``refs/kavi/ledger``. Because both paths run the
same code, a rebuilt ledger equals the original one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from enum import Enum
from typing import Any, TypeVar

from kavi.errors import LedgerError
from kavi.ledger import rows
from kavi.ledger.models import (
    Artifact,
    Build,
    BuildStatus,
    Event,
    ForgeRun,
    ForgeStatus,
    Promotion,
    Proposal,
    Record,
    Research,
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
    BUILD_PRUNED = "build.pruned"
    RESEARCH_RECORDED = "research.recorded"
    FORGE_STARTED = "forge.started"
    FORGE_FINISHED = "forge.finished"


R = TypeVar("R", bound=Record)


def _get(conn: sqlite3.Connection, model: type[R], record_id: str, what: str) -> R:
    row = conn.execute(f"SELECT * FROM {rows.TABLES[model]} WHERE id = ?", (record_id,)).fetchone()
    if row is None:
        raise LedgerError(f"event refers to unknown {what} {record_id}")
    return rows.from_row(model, row)


def _get_build(conn: sqlite3.Connection, build_id: str) -> Build:
    return _get(conn, Build, build_id, "build")


def _get_proposal(conn: sqlite3.Connection, proposal_id: str) -> Proposal:
    return _get(conn, Proposal, proposal_id, "proposal")


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


def _finisher(
    model: type[Any], id_key: str, what: str, started: Enum
) -> Callable[[sqlite3.Connection, Event], None]:
    """A handler that finishes a started record (a build, a forge run) exactly once."""

    def apply(conn: sqlite3.Connection, event: Event) -> None:
        current = _get(conn, model, str(event.payload[id_key]), what)
        if current.status is not started:
            raise LedgerError(f"{what} {current.id} already finished ({current.status.value})")
        fields = {k: v for k, v in event.payload.items() if k != id_key}
        updated = model.model_validate({**current.model_dump(mode="json"), **fields})
        if updated.status is started:
            raise LedgerError(f"{what} {current.id}: a finished {what} needs a final status")
        rows.update(conn, updated)

    return apply


def _build_pruned(conn: sqlite3.Connection, event: Event) -> None:
    build = _get_build(conn, str(event.payload["build_id"]))
    if build.status is BuildStatus.STARTED or build.kept_ref is not None:
        raise LedgerError(f"build {build.id} cannot be pruned ({build.status.value}, {build.kept_ref})")
    rows.update(conn, build.model_copy(update={"kept_ref": str(event.payload["kept_ref"])}))


def _research_recorded(conn: sqlite3.Connection, event: Event) -> None:
    research = Research.model_validate(event.payload)
    build = _get_build(conn, research.build_id)
    if build.proposal_id != research.proposal_id:
        raise LedgerError(f"research {research.id}: build {build.id} belongs to another proposal")
    rows.insert(conn, research)


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
    EventKind.BUILD_FINISHED: _finisher(Build, "build_id", "build", BuildStatus.STARTED),
    EventKind.VERIFICATION_RECORDED: _insert(Verification),
    EventKind.STATUS_CHANGED: _status_changed,
    EventKind.PROMOTION_RECORDED: _insert(Promotion),
    EventKind.REVOCATION_RECORDED: _insert(Revocation),
    EventKind.RUN_RECORDED: _insert(Run),
    EventKind.BUILD_PRUNED: _build_pruned,
    EventKind.RESEARCH_RECORDED: _research_recorded,
    EventKind.FORGE_STARTED: _insert(ForgeRun),
    EventKind.FORGE_FINISHED: _finisher(ForgeRun, "forge_run_id", "forge run", ForgeStatus.RUNNING),
}


def apply_event(conn: sqlite3.Connection, event: Event, private: dict[str, Any] | None = None) -> None:
    """Apply ``event``; ``private``: the data it sealed, where this clone has it (the tables
    then hold it; without it they hold None where the event has only digests)."""
    handler = HANDLERS.get(event.kind)
    if handler is None:
        raise LedgerError(
            f"unknown ledger event kind {event.kind!r} (event {event.seq})",
            remedy="upgrade Kavi: this ledger was written by a newer version",
        )
    if event.payload.get("sealed"):
        from kavi.ledger.privacy import unseal

        event = event.model_copy(update={"payload": unseal(event.payload, private)})
    handler(conn, event)
