"""Write a whole ledger file from a list of events, all or nothing.

Used by ``ledger import`` (a fresh clone) and by ``promote-skill --republish`` (the
remote's events, then this clone's own events re-sequenced after them). The file is
built under a temporary name next to the target and moved into place only when every
event applied cleanly; the reducer refuses any event the state machine does not allow.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from kavi.ledger.models import Event


def resequence(events: Sequence[Event], after: Event | None) -> list[Event]:
    """``events`` given new sequence numbers and hashes, chained after ``after`` (their
    ids, kinds, subjects, payloads, actors and times unchanged)."""
    from kavi.hashing import event_hash

    out: list[Event] = []
    prev = after
    for event in events:
        fields: dict[str, Any] = event.model_dump(mode="json")
        fields["seq"] = prev.seq + 1 if prev is not None else 1
        fields["prev_hash"] = prev.hash if prev is not None else ""
        fields["hash"] = event_hash(fields)
        prev = Event.model_validate(fields)
        out.append(prev)
    return out


def apply_all(
    path: Path | str,
    events: Sequence[tuple[Event, str | None]],
    *,
    private: Mapping[str, dict[str, Any]] | None = None,
    elsewhere: Iterable[str] = (),
) -> None:
    """Insert and apply ``events`` (with their mirror commits) into an empty ledger at ``path``.
    ``private``: sealed data by event id (kept where this clone has it); ``elsewhere``:
    artifacts known only by their digest."""
    from kavi.ledger.reducer import apply_event
    from kavi.ledger.schema import migrate
    from kavi.ledger.store import connect, insert_event

    conn = connect(Path(path))
    try:
        migrate(conn)
        conn.execute("BEGIN IMMEDIATE")
        for event, commit in events:
            mine = (private or {}).get(event.id)
            insert_event(conn, event, mine)
            apply_event(conn, event, mine)
            if commit is not None:
                conn.execute("UPDATE events SET mirror_commit = ? WHERE seq = ?", (commit, event.seq))
        conn.executemany(
            "INSERT OR IGNORE INTO artifacts_elsewhere (artifact_id) VALUES (?)", [(a,) for a in elsewhere]
        )
        conn.execute("COMMIT")
        if str(path) != ":memory:":
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def write_ledger(
    path: Path,
    events: Sequence[tuple[Event, str | None]],
    *,
    private: Mapping[str, dict[str, Any]] | None = None,
    elsewhere: Iterable[str] = (),
) -> None:
    """Build the ledger at ``path`` from ``events``, replacing what is there only on success
    (``private``, ``elsewhere``: see :func:`apply_all`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".ledger-build-", suffix=".db", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        apply_all(tmp, events, private=private, elsewhere=elsewhere)
        for suffix in ("-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        os.replace(tmp, path)
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(str(tmp) + suffix).unlink(missing_ok=True)
