"""What a ledger event may carry when it leaves the machine: digests, not data (D062).

An event is what travels (``refs/kavi/ledger``) and what is hashed into the chain. Its
*private* fields never enter it: :func:`seal` moves them into a private part, kept in
this clone's ledger only (table ``event_private``, keyed by the event id), and leaves
in the event a ``sealed`` map of their digests. The event hash covers the digests, so
the chain is computed — and checked by a fresh clone and the server hook — from what
travelled; this clone can still show that its private data is what the digests say
(:func:`check`).

A digest is SHA-256 over ``<nonce>\\n<canonical JSON of the value>``; the nonce (16
random bytes, hex) stays private with the data, so a short input cannot be recovered by
hashing guesses.

Per kind (:data:`SEALED`):

* ``run.recorded`` — ``input`` and ``output`` always; ``error`` unless the run was
  REFUSED (a refusal reason is Kavi's own words about policy and trust, and travels);
  skill, version, promotion, status, duration, confinement, caller and the limit that
  ended a run travel. The policy's ``mirror.run_data: true`` keeps them in the event
  instead (nothing sealed).
* every other kind carries only records Kavi derives itself (ids, verdicts, hashes,
  findings, costs): nothing is sealed.

Artifacts are a separate matter (:func:`artifact_travels`): their *record* (kind, path,
SHA-256, BLAKE3, size) is an event like any other; their *bytes* enter the mirror's tree
only for the kinds in the policy's ``mirror.artifacts``.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from kavi.hashing import canonical_json

RUN_RECORDED = "run.recorded"
SEALED_KEY = "sealed"
NONCE_KEY = "nonce"


def sealed_fields(kind: str, payload: Mapping[str, Any]) -> tuple[str, ...]:
    """The fields of ``payload`` that must not leave the machine (those present)."""
    if kind != RUN_RECORDED:
        return ()
    fields = ["input", "output"]
    if payload.get("status") != "REFUSED":
        fields.append("error")
    return tuple(f for f in fields if f in payload and (f == "input" or payload[f] is not None))


def digest(value: Any, nonce: str) -> str:
    return hashlib.sha256(f"{nonce}\n{canonical_json(value)}".encode()).hexdigest()


def seal(
    kind: str, payload: Mapping[str, Any], *, fields: Sequence[str] | None = None
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(the event's payload, its private part) — the private part is None when nothing
    is sealed. ``fields``: which to seal (default :func:`sealed_fields`)."""
    names = tuple(sealed_fields(kind, payload) if fields is None else fields)
    if not names:
        return dict(payload), None
    nonce = secrets.token_hex(16)
    public = dict(payload)
    private: dict[str, Any] = {NONCE_KEY: nonce}
    digests: dict[str, str] = {}
    for name in names:
        private[name] = public[name]
        digests[name] = digest(public[name], nonce)
        public[name] = None
    public[SEALED_KEY] = digests
    return public, private


def unseal(payload: Mapping[str, Any], private: Mapping[str, Any] | None) -> dict[str, Any]:
    """The payload with its sealed fields filled in from the private part (when this
    clone has it); otherwise the sealed fields stay None."""
    merged = dict(payload)
    if private:
        for name in payload.get(SEALED_KEY) or {}:
            if name in private:
                merged[name] = private[name]
    return merged


def check(payload: Mapping[str, Any], private: Mapping[str, Any] | None) -> list[str]:
    """Why ``private`` is not the data the event's digests name ([] when it is)."""
    digests = payload.get(SEALED_KEY) or {}
    if not digests:
        return ["private data kept for an event that seals nothing"] if private else []
    if private is None:
        return []  # the data never came to this clone: nothing to compare
    nonce = str(private.get(NONCE_KEY, ""))
    return [
        f"private {name} does not match its digest"
        for name, want in digests.items()
        if name not in private or digest(private[name], nonce) != want
    ]


def artifact_travels(kind: str, mirrored_kinds: Sequence[str]) -> bool:
    """Do this artifact's bytes enter ``refs/kavi/ledger``'s tree (else only its digest)?"""
    return kind in mirrored_kinds


def reseal_unmirrored(conn: sqlite3.Connection) -> int:
    """Migration (ledger schema v5): seal the private fields of events recorded before
    sealing existed *and not mirrored yet* — they never left this clone, so they may still
    change: each gets its digests, its data moves to ``event_private``, and it and every
    later event (all unmirrored: the mirror is a prefix) are hashed again. Mirrored events
    are history and stay as they are. Returns how many events were sealed."""
    import json

    from kavi.hashing import event_hash

    rows = conn.execute(
        "SELECT * FROM events WHERE seq >= (SELECT COALESCE(MIN(seq), 0) FROM events "
        "WHERE mirror_commit IS NULL AND kind = ?) ORDER BY seq",
        (RUN_RECORDED,),
    ).fetchall()
    if not rows or any(r["mirror_commit"] is not None for r in rows):
        return 0  # nothing to seal, or an unmirrored event before a mirrored one (doctor's business)
    previous = conn.execute("SELECT hash FROM events WHERE seq = ?", (int(rows[0]["seq"]) - 1,)).fetchone()
    prev_hash = str(previous[0]) if previous is not None else ""
    conn.execute("DROP TRIGGER events_no_rewrite")
    sealed = 0
    for row in rows:
        payload = json.loads(row["payload_json"])
        private = None
        if row["kind"] == RUN_RECORDED and SEALED_KEY not in payload:
            payload, private = seal(row["kind"], payload)
        fields = {
            "seq": row["seq"],
            "id": row["id"],
            "kind": row["kind"],
            "subject_id": row["subject_id"],
            "payload": payload,
            "actor": row["actor"],
            "created_at": row["created_at"],
            "prev_hash": prev_hash,
        }
        fields["hash"] = event_hash(fields)
        conn.execute(
            "UPDATE events SET payload_json = ?, prev_hash = ?, hash = ? WHERE seq = ?",
            (canonical_json(payload), prev_hash, fields["hash"], row["seq"]),
        )
        if private is not None:
            conn.execute(
                "INSERT INTO event_private (event_id, data_json) VALUES (?, ?)",
                (row["id"], canonical_json(private)),
            )
            conn.execute(
                "UPDATE runs SET sealed_json = ? WHERE id = ?",
                (json.dumps(payload[SEALED_KEY], sort_keys=True), row["subject_id"]),
            )
            sealed += 1
        prev_hash = fields["hash"]
    conn.execute(
        "CREATE TRIGGER events_no_rewrite BEFORE UPDATE OF seq, id, kind, subject_id, payload_json, "
        "actor, created_at, prev_hash, hash ON events "
        "BEGIN SELECT RAISE(ABORT, 'the event journal is append-only'); END"
    )
    return sealed
