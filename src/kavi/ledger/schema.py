"""Ledger schema and its versioned migrations (``PRAGMA user_version``).

Migrations are append-only: never edit a released step, add a new one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from kavi.errors import LedgerError
from kavi.ledger.privacy import reseal_unmirrored

MIGRATIONS: tuple[str, ...] = (
    # v1 — the seed's tables, the event journal, and Kavi's additions.
    """
    CREATE TABLE events (
        seq           INTEGER PRIMARY KEY,
        id            TEXT NOT NULL UNIQUE,
        kind          TEXT NOT NULL,
        subject_id    TEXT NOT NULL,
        payload_json  TEXT NOT NULL,
        actor         TEXT NOT NULL,
        created_at    TEXT NOT NULL,
        prev_hash     TEXT NOT NULL,
        hash          TEXT NOT NULL UNIQUE,
        mirror_commit TEXT
    );
    CREATE INDEX events_subject ON events(subject_id);
    CREATE TRIGGER events_no_delete BEFORE DELETE ON events
        BEGIN SELECT RAISE(ABORT, 'the event journal is append-only'); END;
    CREATE TRIGGER events_no_rewrite BEFORE UPDATE OF seq, id, kind, subject_id, payload_json,
        actor, created_at, prev_hash, hash ON events
        BEGIN SELECT RAISE(ABORT, 'the event journal is append-only'); END;

    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

    CREATE TABLE skill_proposals (
        id                    TEXT PRIMARY KEY,
        name                  TEXT NOT NULL,
        description           TEXT NOT NULL,
        io_schema_json        TEXT NOT NULL,
        side_effect_class     TEXT NOT NULL,
        required_secrets_json TEXT NOT NULL,
        status                TEXT NOT NULL,
        spec_artifact_id      TEXT,
        created_at            TEXT NOT NULL,
        updated_at            TEXT NOT NULL
    );
    CREATE INDEX proposals_name ON skill_proposals(name);

    CREATE TABLE artifacts (
        id         TEXT PRIMARY KEY,
        kind       TEXT NOT NULL,
        path       TEXT NOT NULL,
        sha256     TEXT NOT NULL,
        blake3     TEXT NOT NULL,
        size       INTEGER NOT NULL,
        related_id TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX artifacts_related ON artifacts(related_id);

    CREATE TABLE builds (
        id                 TEXT PRIMARY KEY,
        proposal_id        TEXT NOT NULL REFERENCES skill_proposals(id),
        attempt_number     INTEGER NOT NULL,
        parent_build_id    TEXT REFERENCES builds(id),
        branch_name        TEXT NOT NULL,
        backend            TEXT NOT NULL,
        base_commit        TEXT NOT NULL,
        status             TEXT NOT NULL,
        commit_id          TEXT,
        tree_id            TEXT,
        packet_artifact_id TEXT,
        log_artifact_id    TEXT,
        summary            TEXT NOT NULL,
        violations_json    TEXT NOT NULL,
        started_at         TEXT NOT NULL,
        finished_at        TEXT
    );
    CREATE INDEX builds_proposal ON builds(proposal_id);

    CREATE TABLE verifications (
        id                 TEXT PRIMARY KEY,
        proposal_id        TEXT NOT NULL REFERENCES skill_proposals(id),
        build_id           TEXT NOT NULL REFERENCES builds(id),
        commit_id          TEXT NOT NULL,
        tree_id            TEXT NOT NULL,
        status             TEXT NOT NULL,
        ruff_ok            INTEGER NOT NULL,
        mypy_ok            INTEGER NOT NULL,
        pytest_ok          INTEGER NOT NULL,
        policy_ok          INTEGER NOT NULL,
        invariants_ok      INTEGER NOT NULL,
        scope_ok           INTEGER NOT NULL,
        gates_json         TEXT NOT NULL,
        report_artifact_id TEXT,
        created_at         TEXT NOT NULL
    );
    CREATE INDEX verifications_proposal ON verifications(proposal_id);

    CREATE TABLE promotions (
        id                      TEXT PRIMARY KEY,
        proposal_id             TEXT NOT NULL REFERENCES skill_proposals(id),
        build_id                TEXT NOT NULL REFERENCES builds(id),
        verification_id         TEXT NOT NULL REFERENCES verifications(id),
        skill_name              TEXT NOT NULL,
        version                 INTEGER NOT NULL,
        from_status             TEXT NOT NULL,
        to_status               TEXT NOT NULL,
        approved_by             TEXT NOT NULL,
        signing_key_fingerprint TEXT NOT NULL,
        merge_commit            TEXT NOT NULL,
        target_branch           TEXT NOT NULL,
        tag_name                TEXT NOT NULL,
        skill_path              TEXT NOT NULL,
        test_path               TEXT NOT NULL,
        module                  TEXT NOT NULL,
        class_name              TEXT NOT NULL,
        input_model             TEXT NOT NULL,
        output_model            TEXT NOT NULL,
        skill_sha256            TEXT NOT NULL,
        skill_blake3            TEXT NOT NULL,
        skill_blob              TEXT NOT NULL,
        test_blob               TEXT NOT NULL,
        registry_blob           TEXT NOT NULL,
        record_artifact_id      TEXT,
        created_at              TEXT NOT NULL,
        UNIQUE (skill_name, version)
    );

    CREATE TABLE revocations (
        id            TEXT PRIMARY KEY,
        skill_name    TEXT NOT NULL,
        proposal_id   TEXT NOT NULL REFERENCES skill_proposals(id),
        promotion_id  TEXT NOT NULL REFERENCES promotions(id),
        reason        TEXT NOT NULL,
        revoked_by    TEXT NOT NULL,
        commit_id     TEXT NOT NULL,
        target_branch TEXT NOT NULL,
        tag_name      TEXT NOT NULL,
        registry_blob TEXT,
        created_at    TEXT NOT NULL
    );

    CREATE TABLE runs (
        id           TEXT PRIMARY KEY,
        skill_name   TEXT NOT NULL,
        proposal_id  TEXT NOT NULL REFERENCES skill_proposals(id),
        promotion_id TEXT NOT NULL REFERENCES promotions(id),
        status       TEXT NOT NULL,
        input_json   TEXT NOT NULL,
        output_json  TEXT,
        error        TEXT,
        artifact_id  TEXT,
        duration_s   REAL NOT NULL,
        started_at   TEXT NOT NULL,
        finished_at  TEXT NOT NULL
    );
    CREATE INDEX runs_skill ON runs(skill_name);
    """,
    # v2 — what a build's backend consumed (cost, turns, tokens, model, version) and the
    # tool calls it was refused (issue 10)
    """
    ALTER TABLE builds ADD COLUMN usage_json TEXT NOT NULL DEFAULT '{}';
    ALTER TABLE builds ADD COLUMN tool_attempts_json TEXT NOT NULL DEFAULT '[]';
    """,
    # v3 — research and retry (issue 14): build options and pruning, research notes, forge runs.
    """
    ALTER TABLE builds ADD COLUMN options_json TEXT NOT NULL DEFAULT '{}';
    ALTER TABLE builds ADD COLUMN kept_ref TEXT;

    CREATE TABLE researches (
        id                    TEXT PRIMARY KEY,
        proposal_id           TEXT NOT NULL REFERENCES skill_proposals(id),
        build_id              TEXT NOT NULL REFERENCES builds(id),
        verification_id       TEXT REFERENCES verifications(id),
        attempt_number        INTEGER NOT NULL,
        kind                  TEXT NOT NULL,
        security              INTEGER NOT NULL,
        security_reasons_json TEXT NOT NULL,
        facts_json            TEXT NOT NULL,
        advice_json           TEXT,
        advice_status         TEXT NOT NULL,
        advice_notice         TEXT NOT NULL,
        widening_json         TEXT NOT NULL,
        hint                  TEXT,
        note_artifact_id      TEXT,
        created_at            TEXT NOT NULL
    );
    CREATE INDEX researches_build ON researches(build_id);
    CREATE INDEX researches_proposal ON researches(proposal_id);

    CREATE TABLE forge_runs (
        id               TEXT PRIMARY KEY,
        proposal_id      TEXT NOT NULL REFERENCES skill_proposals(id),
        status           TEXT NOT NULL,
        backend          TEXT NOT NULL,
        max_attempts     INTEGER NOT NULL,
        budget_usd       REAL,
        repeat_limit     INTEGER NOT NULL,
        attempts_json    TEXT NOT NULL,
        researches_json  TEXT NOT NULL,
        cost_usd         REAL NOT NULL,
        escalation       TEXT,
        reason           TEXT NOT NULL,
        reviewed_run_id  TEXT,
        started_at       TEXT NOT NULL,
        finished_at      TEXT
    );
    CREATE INDEX forge_runs_proposal ON forge_runs(proposal_id);
    """,
    # v4 — how the operating system confined each run and verification (issue 9)
    """
    ALTER TABLE runs ADD COLUMN confinement TEXT;
    ALTER TABLE runs ADD COLUMN caller TEXT;
    ALTER TABLE runs ADD COLUMN limit_exceeded TEXT;
    ALTER TABLE verifications ADD COLUMN confinement TEXT;
    """,
    # v5 — digests, not data (issue 13): a run's input, output and error stay in this ledger
    # (event_private), its event carries their digests (runs.sealed_json); artifacts known
    # here only by their digest; indexes for forges of thousands of skills.
    """
    CREATE TABLE event_private (
        event_id  TEXT PRIMARY KEY REFERENCES events(id),
        data_json TEXT NOT NULL
    );
    CREATE TABLE artifacts_elsewhere (artifact_id TEXT PRIMARY KEY);

    CREATE TABLE runs_v5 (
        id             TEXT PRIMARY KEY,
        skill_name     TEXT NOT NULL,
        version        INTEGER,
        proposal_id    TEXT NOT NULL REFERENCES skill_proposals(id),
        promotion_id   TEXT NOT NULL REFERENCES promotions(id),
        status         TEXT NOT NULL,
        input_json     TEXT,
        output_json    TEXT,
        error          TEXT,
        error_code     TEXT,
        sealed_json    TEXT NOT NULL DEFAULT '{}',
        artifact_id    TEXT,
        duration_s     REAL NOT NULL,
        started_at     TEXT NOT NULL,
        finished_at    TEXT NOT NULL,
        confinement    TEXT,
        caller         TEXT,
        limit_exceeded TEXT
    );
    INSERT INTO runs_v5 (id, skill_name, version, proposal_id, promotion_id, status, input_json,
        output_json, error, artifact_id, duration_s, started_at, finished_at, confinement, caller,
        limit_exceeded)
        SELECT r.id, r.skill_name, p.version, r.proposal_id, r.promotion_id, r.status, r.input_json,
            r.output_json, r.error, r.artifact_id, r.duration_s, r.started_at, r.finished_at,
            r.confinement, r.caller, r.limit_exceeded
        FROM runs r LEFT JOIN promotions p ON p.id = r.promotion_id;
    DROP TABLE runs;
    ALTER TABLE runs_v5 RENAME TO runs;
    CREATE INDEX runs_skill ON runs(skill_name, started_at);

    CREATE INDEX events_kind_subject ON events(kind, subject_id);
    CREATE INDEX events_unmirrored ON events(seq) WHERE mirror_commit IS NULL;
    CREATE INDEX promotions_skill ON promotions(skill_name, version);
    CREATE INDEX promotions_proposal ON promotions(proposal_id);
    CREATE INDEX revocations_skill ON revocations(skill_name);
    CREATE INDEX verifications_build ON verifications(build_id);
    """,
)

# Steps that SQL cannot express, run right after the migration to that version (in its
# transaction).
AFTER: dict[int, Callable[[sqlite3.Connection], object]] = {5: reseal_unmirrored}

SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring ``conn`` to :data:`SCHEMA_VERSION`; return the version it started at."""
    (start,) = conn.execute("PRAGMA user_version").fetchone()
    if start > SCHEMA_VERSION:
        raise LedgerError(
            f"ledger schema v{start} is newer than this Kavi understands (v{SCHEMA_VERSION})",
            remedy="upgrade Kavi (`pip install -U kavi`)",
        )
    for version in range(start, SCHEMA_VERSION):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _split(MIGRATIONS[version]):
                conn.execute(statement)
            if version + 1 in AFTER:
                AFTER[version + 1](conn)
            conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return int(start)


def _split(script: str) -> list[str]:
    """Split a migration into statements (triggers contain inner ``;``)."""
    statements: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                statements.append(buf.strip())
            buf = ""
    if buf.strip():
        statements.append(buf.strip())
    return statements
