"""Digests, not data: sealing private fields, the hash chain over what travels, the v5 migration,
and the credential shapes redacted from every record."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from kavi.hashing import canonical_json, event_hash
from kavi.ledger.privacy import check, digest, seal, sealed_fields, unseal
from kavi.ledger.store import Ledger
from kavi.secrets import PRIVATE_KEY_REDACTED, REDACTED, redact_record, redact_shapes

PEM = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "-----END OPENSSH PRIVATE KEY-----\n"
)
ANTHROPIC = "sk-ant-api03-" + "Zx9" * 12


def _run_payload(status: str = "SUCCEEDED", **extra: object) -> dict[str, object]:
    return {
        "id": "run-1",
        "skill_name": "echo",
        "status": status,
        "input": {"text": "my diary"},
        "output": {"text": "my diary"} if status == "SUCCEEDED" else None,
        "error": None if status == "SUCCEEDED" else "the skill raised: my diary not found",
        **extra,
    }


def test_a_run_seals_input_output_and_error_but_not_a_refusal_reason() -> None:
    assert sealed_fields("run.recorded", _run_payload()) == ("input", "output")
    assert sealed_fields("run.recorded", _run_payload("FAILED")) == ("input", "error")
    assert sealed_fields("run.recorded", _run_payload("REFUSED")) == ("input",)
    assert sealed_fields("promotion.recorded", {"input": 1}) == ()


def test_seal_keeps_the_data_out_and_its_digests_in() -> None:
    public, private = seal("run.recorded", _run_payload())
    assert private is not None
    assert public["input"] is None and public["output"] is None
    assert "my diary" not in canonical_json(public)
    assert set(public["sealed"]) == {"input", "output"}
    nonce = private["nonce"]
    assert public["sealed"]["input"] == digest({"text": "my diary"}, nonce)
    assert unseal(public, private)["input"] == {"text": "my diary"}
    assert unseal(public, None)["input"] is None  # a clone the data never came to
    assert check(public, private) == [] and check(public, None) == []
    forged = {**private, "input": {"text": "another diary"}}
    assert check(public, forged) == ["private input does not match its digest"]
    # salted: the same input sealed twice gives different digests (no guessing by hashing)
    again, _ = seal("run.recorded", _run_payload())
    assert again["sealed"]["input"] != public["sealed"]["input"]


def test_policy_can_let_run_data_travel() -> None:
    public, private = seal("run.recorded", _run_payload(), fields=())
    assert private is None and public["input"] == {"text": "my diary"} and "sealed" not in public


def _ledger(tmp_path: Path) -> Ledger:
    return Ledger.open(tmp_path / "ledger.db", create=True)


def test_the_chain_is_computed_from_what_travels_and_checks_the_private_part(tmp_path: Path) -> None:
    from kavi.ledger.models import Event
    from kavi.ledger.store import insert_event

    ledger = _ledger(tmp_path)
    with ledger.transaction("ada") as txn:
        first = txn.record("forge.initialized", "forge", {"target_branch": "main"})
    public, private = seal("run.recorded", _run_payload())
    fields = {
        "seq": 2,
        "id": "e2",
        "kind": "note.private",
        "subject_id": "x",
        "payload": public,
        "actor": "ada",
        "created_at": "2026-01-01T00:00:00Z",
        "prev_hash": first.hash,
    }
    fields["hash"] = event_hash(fields)  # over the payload without the data: what travels
    with ledger.transaction("ada"):
        insert_event(ledger.conn, Event.model_validate(fields), private)
    assert ledger.verify_chain() == []
    assert ledger.private("e2") == private
    # private data that is not what the digests say is found
    ledger.conn.execute(
        "UPDATE event_private SET data_json = ? WHERE event_id = 'e2'",
        (canonical_json({**(private or {}), "output": {"text": "edited"}}),),
    )
    assert ledger.verify_chain() == ["event seq 2: private output does not match its digest"]


def _v4_ledger(path: Path, events: list[tuple[str, str, dict[str, object], bool]]) -> None:
    """A ledger as Kavi wrote it before v5: run events with their data in the payload."""
    from kavi.ledger import schema

    conn = sqlite3.connect(path, isolation_level=None)
    conn.row_factory = sqlite3.Row
    for version in range(4):
        for statement in schema._split(schema.MIGRATIONS[version]):
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 4")
    prev = ""
    for seq, (kind, subject, payload, mirrored) in enumerate(events, start=1):
        fields = {
            "seq": seq,
            "id": f"event-{seq}",
            "kind": kind,
            "subject_id": subject,
            "payload": payload,
            "actor": "ada",
            "created_at": f"2026-01-0{seq}T00:00:00Z",
            "prev_hash": prev,
        }
        fields["hash"] = event_hash(fields)
        conn.execute(
            "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                seq,
                fields["id"],
                kind,
                subject,
                canonical_json(payload),
                "ada",
                fields["created_at"],
                prev,
                fields["hash"],
                "c" * 40 if mirrored else None,
            ),
        )
        prev = str(fields["hash"])
    conn.close()


def _old_run(run_id: str, text: str) -> dict[str, object]:
    return {
        "id": run_id,
        "skill_name": "echo",
        "proposal_id": "p",
        "promotion_id": "pr",
        "status": "SUCCEEDED",
        "input": {"text": text},
        "output": {"text": text},
        "error": None,
        "artifact_id": None,
        "duration_s": 0.1,
        "started_at": "2026-01-01T00:00:00Z",
        "finished_at": "2026-01-01T00:00:01Z",
    }


def test_migration_seals_unmirrored_runs_and_leaves_mirrored_history_alone(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    _v4_ledger(
        path,
        [
            ("forge.initialized", "forge", {"target_branch": "main"}, True),
            ("run.recorded", "r1", _old_run("r1", "published long ago"), True),
            ("forge.initialized", "forge", {"target_branch": "main"}, False),
            ("run.recorded", "r2", _old_run("r2", "never left this clone"), False),
            ("forge.initialized", "forge", {"target_branch": "main"}, False),
        ],
    )
    rows = sqlite3.connect(path).execute("SELECT seq, hash, payload_json FROM events")
    before = {r[0]: (r[1], r[2]) for r in rows}
    with Ledger.open(path) as ledger:
        assert ledger.verify_chain() == []
        events = ledger.events()
        # mirrored history: byte for byte as it was
        assert [(e.hash, canonical_json(e.payload)) for e in events[:2]] == [before[1], before[2]]
        # the unmirrored run: sealed, its data kept here, and the chain re-hashed after it
        run = events[3].payload
        assert run["input"] is None and set(run["sealed"]) == {"input", "output"}
        assert "never left this clone" not in json.dumps([e.payload for e in events])
        assert ledger.private("event-4")["input"] == {"text": "never left this clone"}  # type: ignore[index]
        assert events[3].hash != before[4][0] and events[4].prev_hash == events[3].hash
        assert events[2].hash == before[3][0]  # unmirrored but before the first sealed run: unchanged
        # the append-only trigger is back
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            ledger.conn.execute("UPDATE events SET payload_json = '{}' WHERE seq = 1")


def test_credential_shapes_and_private_keys_never_reach_a_record() -> None:
    text = f"note: {PEM} token {ANTHROPIC} aws AKIAIOSFODNN7EXAMPLE sha {'a' * 64} id 1a2b3c4d"
    clean = redact_shapes(text)
    assert PRIVATE_KEY_REDACTED in clean and "b3BlbnNzaC1rZXkt" not in clean
    assert ANTHROPIC not in clean and "AKIAIOSFODNN7EXAMPLE" not in clean and REDACTED in clean
    assert "a" * 64 in clean and "1a2b3c4d" in clean  # hashes and ids stay
    # as a JSON string spells them too, and a key cut short
    assert "b3BlbnNzaC1rZXkt" not in redact_shapes(json.dumps({"x": PEM}))
    assert "MIIEowIBAAKCAQEA" not in redact_shapes("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA")
    # known values and their shapes in one pass
    assert "hunter2-secret" not in redact_record("pw hunter2-secret", ["hunter2-secret"])
