"""The ledger: a SQLite file at ``<git-common-dir>/kavi/ledger.db``.

* WAL journal and a busy timeout: concurrent commands wait instead of failing.
* Every write happens inside :meth:`Ledger.transaction` (``BEGIN IMMEDIATE``): one
  transaction per command step, all or nothing.
* Every write is an :class:`~kavi.ledger.models.Event` appended to the hash-chained
  journal and applied by :func:`~kavi.ledger.reducer.apply_event`.
* Opening checks the file is a Kavi ledger: an empty file, another kind of file or a
  malformed database is :class:`~kavi.errors.LedgerDamagedError`, never silently a new
  empty ledger. On a read-only file system the ledger opens read-only (its
  write-ahead log, if any, read from a private copy); writing then says so.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from kavi.clock import now_iso
from kavi.errors import (
    AmbiguousIdError,
    LedgerDamagedError,
    LedgerError,
    NotFoundError,
    ReadOnlyError,
    UsageError,
    environment_fault,
)
from kavi.hashing import canonical_json, event_hash
from kavi.ledger import rows
from kavi.ledger.models import (
    Artifact,
    Build,
    BuildStatus,
    Event,
    ForgeRun,
    Promotion,
    Proposal,
    Record,
    Research,
    Revocation,
    Run,
    Verification,
)
from kavi.ledger.reducer import apply_event
from kavi.ledger.schema import migrate

R = TypeVar("R", bound=Record)

BUSY_TIMEOUT_MS = 30_000
SQLITE_MAGIC = b"SQLite format 3\x00"
REBUILD_REMEDY = (
    "run `git kavi ledger import` (or `git kavi doctor --repair`): it keeps the file as "
    "ledger.db.damaged-…, rebuilds the ledger from refs/kavi/ledger and recovers what it can "
    "read of events not yet mirrored"
)


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
    )
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


class Txn:
    """An open write transaction; :meth:`record` appends and applies one event."""

    def __init__(self, conn: sqlite3.Connection, actor: str) -> None:
        self.conn = conn
        self.actor = actor
        self.events: list[Event] = []

    def record(
        self, kind: str, subject_id: str, payload: dict[str, Any], *, private: dict[str, Any] | None = None
    ) -> Event:
        """Append and apply one event. ``private``: what :func:`kavi.ledger.privacy.seal` kept
        out of ``payload`` (stays in this ledger, never in the event)."""
        last = self.conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        fields: dict[str, Any] = {
            "seq": (last["seq"] + 1) if last else 1,
            "id": str(uuid.uuid4()),
            "kind": kind,
            "subject_id": subject_id,
            "payload": payload,
            "actor": self.actor,
            "created_at": now_iso(),
            "prev_hash": last["hash"] if last else "",
        }
        fields["hash"] = event_hash(fields)
        event = Event.model_validate(fields)
        insert_event(self.conn, event, private)
        apply_event(self.conn, event, private)
        self.events.append(event)
        return event

    def put(self, kind: str, record: Record, subject_id: str | None = None) -> Event:
        data = record.model_dump(mode="json")
        return self.record(kind, subject_id or str(data.get("id", "")), data)


def insert_event(conn: sqlite3.Connection, event: Event, private: dict[str, Any] | None = None) -> None:
    conn.execute(
        "INSERT INTO events (seq, id, kind, subject_id, payload_json, actor, created_at,"
        " prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            event.seq,
            event.id,
            event.kind,
            event.subject_id,
            canonical_json(event.payload),
            event.actor,
            event.created_at,
            event.prev_hash,
            event.hash,
        ),
    )
    if private is not None:
        conn.execute(
            "INSERT INTO event_private (event_id, data_json) VALUES (?, ?)",
            (event.id, canonical_json(private)),
        )


def event_from_row(row: sqlite3.Row) -> Event:
    import json

    return Event(
        seq=row["seq"],
        id=row["id"],
        kind=row["kind"],
        subject_id=row["subject_id"],
        payload=json.loads(row["payload_json"]),
        actor=row["actor"],
        created_at=row["created_at"],
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )


class Ledger:
    def __init__(
        self, conn: sqlite3.Connection, path: Path, *, mark: Path | None = None, readonly: bool = False
    ) -> None:
        self.conn = conn
        self.path = path
        self.mark = mark
        self.readonly = readonly

    # -- lifecycle -------------------------------------------------------------

    @classmethod
    def open(cls, path: Path, *, create: bool = False, mark: Path | None = None) -> Ledger:
        if not path.exists() and not create:
            raise LedgerError(
                f"no ledger at {path}",
                why="this clone has no Kavi ledger yet",
                remedy="run `git kavi init` (new forge) or `git kavi ledger import` (fresh clone)",
            )
        if path.exists():
            check_file(path)
        elif not writable(path.parent if path.parent.exists() else path.parent.parent):
            raise _cannot_write(
                path.parent if path.parent.exists() else path.parent.parent, "create the ledger"
            )
        if path.exists() and not (writable(path.parent) and os.access(path, os.W_OK)):
            return cls(connect_readonly(path), path, mark=mark, readonly=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            create_empty(path)
        try:
            conn = connect(path)
            check_schema(conn, path)
            migrate(conn)
        except sqlite3.DatabaseError as exc:
            raise _open_error(path, exc) from None
        return cls(conn, path, mark=mark)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def require_writable(self) -> None:
        if self.readonly:
            raise _cannot_write(self.path.parent, "record this in the ledger")

    @contextmanager
    def transaction(self, actor: str) -> Iterator[Txn]:
        self.require_writable()
        self.conn.execute("BEGIN IMMEDIATE")
        txn = Txn(self.conn, actor)
        try:
            yield txn
            if txn.events and self.mark is not None:
                from kavi.ledger.mark import write_mark

                last = txn.events[-1]
                write_mark(self.mark, last.seq, last.hash)  # before COMMIT: never behind the ledger
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")

    def integrity(self) -> list[str]:
        """SQLite's ``PRAGMA integrity_check``: [] when the file is sound."""
        try:
            found = [str(r[0]) for r in self.conn.execute("PRAGMA integrity_check(20)")]
        except sqlite3.DatabaseError as exc:
            return [str(exc)]
        return [] if found == ["ok"] else found

    # -- generic lookups -------------------------------------------------------

    def _one(self, model: type[R], where: str, params: tuple[Any, ...]) -> R | None:
        table = rows.TABLES[model]
        row = self.conn.execute(f"SELECT * FROM {table} WHERE {where}", params).fetchone()
        return None if row is None else rows.from_row(model, row)

    def _many(self, model: type[R], where: str, params: tuple[Any, ...], order: str) -> list[R]:
        table = rows.TABLES[model]
        sql = f"SELECT * FROM {table} WHERE {where} ORDER BY {order}"
        return [rows.from_row(model, r) for r in self.conn.execute(sql, params)]

    def resolve(self, model: type[R], ref: str, *, what: str) -> R:
        """Find a record by full id or unique id prefix (like git short hashes)."""
        ref = ref.strip().lower()
        if len(ref) < 4 or not all(c in "0123456789abcdef-" for c in ref):
            raise UsageError(
                f"{ref!r} is not a {what} id",
                why="ids are UUIDs; a unique prefix of at least 4 characters is accepted",
                remedy=f"copy the {what} id from `git kavi list-proposals` or `git kavi show`",
            )
        table = rows.TABLES[model]
        found = self.conn.execute(
            f"SELECT * FROM {table} WHERE id LIKE ? ESCAPE '\\' ORDER BY id LIMIT 3",
            (ref.replace("%", "").replace("_", "\\_") + "%",),
        ).fetchall()
        if not found:
            raise NotFoundError(
                f"no {what} with id {ref}",
                remedy=f"list them with `git kavi list-proposals` / `git kavi show <{what}>`",
            )
        if len(found) > 1:
            ids = ", ".join(r["id"] for r in found)
            raise AmbiguousIdError(
                f"{what} id prefix {ref} is ambiguous",
                why=f"it matches {ids}{', …' if len(found) > 2 else ''}",
                remedy="give more characters of the id",
            )
        return rows.from_row(model, found[0])

    # -- proposals -------------------------------------------------------------

    def proposal(self, proposal_id: str) -> Proposal:
        found = self._one(Proposal, "id = ?", (proposal_id,))
        if found is None:
            raise NotFoundError(f"no proposal {proposal_id}")
        return found

    def find_proposal(self, ref: str) -> Proposal:
        """A proposal by id, id prefix, or skill name (its latest proposal)."""
        if ref.isidentifier():
            by_name = self._many(Proposal, "name = ?", (ref,), "created_at DESC, id")
            if by_name:
                return by_name[0]
            if not all(c in "0123456789abcdef" for c in ref.lower()):
                raise NotFoundError(
                    f"no proposal named {ref!r}",
                    remedy="list them with `git kavi list-proposals`, or propose it with "
                    "`git kavi propose-skill`",
                )
        return self.resolve(Proposal, ref, what="proposal")

    def proposals(self) -> list[Proposal]:
        return self._many(Proposal, "1", (), "created_at, id")

    def proposals_named(self, name: str) -> list[Proposal]:
        return self._many(Proposal, "name = ?", (name,), "created_at, id")

    def skill_names(self) -> list[str]:
        """Every skill name this ledger has a proposal for, sorted."""
        return [
            str(r[0]) for r in self.conn.execute("SELECT DISTINCT name FROM skill_proposals ORDER BY name")
        ]

    # -- artifacts -------------------------------------------------------------

    def artifact(self, artifact_id: str) -> Artifact | None:
        return self._one(Artifact, "id = ?", (artifact_id,))

    def artifacts_for(self, related_ids: list[str]) -> list[Artifact]:
        if not related_ids:
            return []
        marks = ", ".join("?" for _ in related_ids)
        return self._many(Artifact, f"related_id IN ({marks})", tuple(related_ids), "created_at")

    def artifacts(self) -> list[Artifact]:
        return self._many(Artifact, "1", (), "created_at, id")

    # -- builds ------------------------------------------------------------------

    def build(self, build_id: str) -> Build:
        found = self._one(Build, "id = ?", (build_id,))
        if found is None:
            raise NotFoundError(f"no build {build_id}")
        return found

    def builds_for(self, proposal_id: str) -> list[Build]:
        return self._many(Build, "proposal_id = ?", (proposal_id,), "attempt_number")

    def latest_build(self, proposal_id: str, *, succeeded: bool = False) -> Build | None:
        where = "proposal_id = ?" + (" AND status = 'SUCCEEDED'" if succeeded else "")
        found = self._many(Build, where, (proposal_id,), "attempt_number DESC")
        return found[0] if found else None

    def unfinished_builds(self) -> list[Build]:
        return self._many(Build, "status = ?", (BuildStatus.STARTED.value,), "started_at")

    # -- verifications -------------------------------------------------------------

    def verifications_for(self, proposal_id: str) -> list[Verification]:
        return self._many(Verification, "proposal_id = ?", (proposal_id,), "created_at, id")

    def verification(self, verification_id: str) -> Verification:
        found = self._one(Verification, "id = ?", (verification_id,))
        if found is None:
            raise NotFoundError(f"no verification {verification_id}")
        return found

    def verifications_of_build(self, build_id: str) -> list[Verification]:
        return self._many(Verification, "build_id = ?", (build_id,), "created_at, id")

    # -- research and forge runs -------------------------------------------------------

    def research(self, research_id: str) -> Research:
        found = self._one(Research, "id = ?", (research_id,))
        if found is None:
            raise NotFoundError(f"no research {research_id}")
        return found

    def researches_for(self, proposal_id: str) -> list[Research]:
        return self._many(Research, "proposal_id = ?", (proposal_id,), "created_at, id")

    def researches_of_build(self, build_id: str) -> list[Research]:
        return self._many(Research, "build_id = ?", (build_id,), "created_at, id")

    def forge_runs(self, proposal_id: str | None = None) -> list[ForgeRun]:
        if proposal_id is None:
            return self._many(ForgeRun, "1", (), "started_at, id")
        return self._many(ForgeRun, "proposal_id = ?", (proposal_id,), "started_at, id")

    # -- promotions, revocations, runs ----------------------------------------------

    def promotions(self, skill_name: str | None = None) -> list[Promotion]:
        if skill_name is None:
            return self._many(Promotion, "1", (), "created_at, id")
        return self._many(Promotion, "skill_name = ?", (skill_name,), "version")

    def promotions_for(self, proposal_id: str) -> list[Promotion]:
        return self._many(Promotion, "proposal_id = ?", (proposal_id,), "version")

    def revocations(self, skill_name: str | None = None) -> list[Revocation]:
        if skill_name is None:
            return self._many(Revocation, "1", (), "created_at, id")
        return self._many(Revocation, "skill_name = ?", (skill_name,), "created_at, id")

    def wrote_registry(self, data: bytes) -> bool:
        """Is ``data`` byte for byte the ``registry.yaml`` the latest promotion or revocation
        wrote (so it agrees with this ledger without deriving it)? One query."""
        from kavi.hashing import git_blob_id

        row = self.conn.execute(
            "SELECT blob FROM (SELECT created_at, registry_blob AS blob FROM promotions UNION ALL "
            "SELECT created_at, COALESCE(registry_blob, '') FROM revocations) "
            "ORDER BY created_at DESC, blob DESC LIMIT 1"
        ).fetchone()
        return row is not None and git_blob_id(data) == str(row[0])

    def current_promotion(self, skill_name: str) -> Promotion | None:
        """The promotion in force for ``skill_name`` (its latest, if its proposal is TRUSTED)."""
        found = self._many(
            Promotion,
            "skill_name = ? AND proposal_id IN (SELECT id FROM skill_proposals WHERE status = 'TRUSTED')",
            (skill_name,),
            "version DESC LIMIT 1",
        )
        return found[0] if found else None

    def current_promotions(self) -> dict[str, Promotion]:
        """The promotion in force for every TRUSTED skill (one query)."""
        found = self._many(
            Promotion,
            "proposal_id IN (SELECT id FROM skill_proposals WHERE status = 'TRUSTED')",
            (),
            "skill_name, version",
        )
        return {p.skill_name: p for p in found}

    def recent_runs(self, skill_name: str, *, limit: int) -> tuple[int, list[Run]]:
        """How many runs ``skill_name`` has, and the last ``limit`` of them (oldest first)."""
        (total,) = self.conn.execute(
            "SELECT COUNT(*) FROM runs WHERE skill_name = ?", (skill_name,)
        ).fetchone()
        last = self._many(
            Run, "skill_name = ?", (skill_name,), f"started_at DESC, id DESC LIMIT {int(limit)}"
        )
        return int(total), last[::-1]

    def runs(self, skill_name: str | None = None) -> list[Run]:
        if skill_name is None:
            return self._many(Run, "1", (), "started_at, id")
        return self._many(Run, "skill_name = ?", (skill_name,), "started_at, id")

    # -- journal -----------------------------------------------------------------

    def private(self, event_id: str) -> dict[str, Any] | None:
        """What an event sealed, if this ledger has it (None: it never came to this clone)."""
        import json

        row = self.conn.execute("SELECT data_json FROM event_private WHERE event_id = ?", (event_id,))
        found = row.fetchone()
        return None if found is None else dict(json.loads(found["data_json"]))

    def private_data(self) -> dict[str, dict[str, Any]]:
        """Every event's private part, by event id (to carry it into a rebuilt ledger)."""
        import json

        rows = self.conn.execute("SELECT event_id, data_json FROM event_private")
        return {str(r["event_id"]): dict(json.loads(r["data_json"])) for r in rows}

    def events_of(self, subject_ids: list[str]) -> list[tuple[Event, str | None]]:
        """The events about these subjects with their mirror commits (an index lookup,
        whatever the journal's length)."""
        if not subject_ids:
            return []
        marks = ", ".join("?" for _ in subject_ids)
        cur = self.conn.execute(
            f"SELECT * FROM events WHERE subject_id IN ({marks}) ORDER BY seq", tuple(subject_ids)
        )
        return [(event_from_row(r), r["mirror_commit"]) for r in cur]

    def mark_elsewhere(self, artifact_id: str) -> None:
        """This clone knows the artifact only by its digest (its bytes did not travel)."""
        self.conn.execute(
            "INSERT OR IGNORE INTO artifacts_elsewhere (artifact_id) VALUES (?)", (artifact_id,)
        )

    def elsewhere(self) -> list[str]:
        return [str(r[0]) for r in self.conn.execute("SELECT artifact_id FROM artifacts_elsewhere")]

    def is_elsewhere(self, artifact_id: str) -> bool:
        row = self.conn.execute("SELECT 1 FROM artifacts_elsewhere WHERE artifact_id = ?", (artifact_id,))
        return row.fetchone() is not None

    def events(self, after_seq: int = 0) -> list[Event]:
        cur = self.conn.execute("SELECT * FROM events WHERE seq > ? ORDER BY seq", (after_seq,))
        return [event_from_row(r) for r in cur]

    def last_event(self) -> Event | None:
        row = self.conn.execute("SELECT * FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        return None if row is None else event_from_row(row)

    def unmirrored_events(self) -> list[Event]:
        cur = self.conn.execute("SELECT * FROM events WHERE mirror_commit IS NULL ORDER BY seq")
        return [event_from_row(r) for r in cur]

    def mirror_commits(self) -> dict[int, str]:
        cur = self.conn.execute("SELECT seq, mirror_commit FROM events WHERE mirror_commit IS NOT NULL")
        return {int(r["seq"]): str(r["mirror_commit"]) for r in cur}

    def set_mirror_commit(self, seq: int, commit_id: str | None) -> None:
        self.conn.execute("UPDATE events SET mirror_commit = ? WHERE seq = ?", (commit_id, seq))

    def forget_mirror_commits(self, *, after_seq: int) -> None:
        """The mirror commits recorded after ``after_seq`` are gone: mirror those events again."""
        self.conn.execute("UPDATE events SET mirror_commit = NULL WHERE seq > ?", (after_seq,))

    def meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row["value"])

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def verify_chain(self) -> list[str]:
        """Re-hash the journal; return a description of every broken link (and of private
        data that is not what its event's digests name)."""
        from kavi.ledger.privacy import check

        problems: list[str] = []
        prev = ""
        expected_seq = 1
        private = self.private_data()
        for event in self.events():
            for problem in check(event.payload, private.get(event.id)):
                problems.append(f"event seq {event.seq}: {problem}")
            if event.seq != expected_seq:
                problems.append(f"event seq {event.seq}: expected seq {expected_seq} (gap)")
            if event.prev_hash != prev:
                problems.append(f"event seq {event.seq}: prev_hash does not match event {event.seq - 1}")
            if event_hash(event.model_dump(mode="json")) != event.hash:
                problems.append(f"event seq {event.seq}: content does not match its hash")
            prev = event.hash
            expected_seq = event.seq + 1
        return problems


# -- opening a file that may not be what it should ---------------------------------------


def create_empty(path: Path) -> None:
    """A new ledger appears whole or not at all: built in a temporary file, then renamed."""
    import tempfile

    sweep_temporaries(path.parent)
    fd, name = tempfile.mkstemp(prefix=".ledger-new-", suffix=".db", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    shareable(tmp)
    try:
        conn = connect(tmp)
        migrate(conn)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        os.replace(tmp, path)
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{tmp}{suffix}").unlink(missing_ok=True)


def shareable(path: Path) -> None:
    """The mode SQLite itself would have given the file (0666 less the umask), not mkstemp's 0600:
    other users of a shared repository may read (or, by group, write) the ledger."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def sweep_temporaries(directory: Path) -> None:
    """Remove what an earlier, killed creation or import of a ledger left (only ever made
    under the forge lock, which the caller holds)."""
    for leftover in directory.glob(".ledger-*"):
        if leftover.name.startswith((".ledger-new-", ".ledger-import-")):
            leftover.unlink(missing_ok=True)


def writable(directory: Path) -> bool:
    """Whether files can be created in ``directory`` (a read-only mount says no even to root)."""
    return os.access(directory, os.W_OK)


def _cannot_write(directory: Path, what: str) -> Exception:
    """Why nothing can be written under ``directory``: a read-only file system, or permissions."""
    from kavi.errors import PermissionDeniedError

    try:
        readonly_fs = bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError:
        readonly_fs = False
    if readonly_fs:
        return ReadOnlyError(
            f"cannot {what}: {directory} is on a read-only file system",
            why="this command writes to the repository",
            remedy="run it in a writable clone (read-only clones can run status, audit, list-skills "
            "and provenance)",
        )
    return PermissionDeniedError(
        f"cannot {what}: permission denied in {directory}",
        why="the ledger's directory (or file) is not writable by this user",
        remedy="run Kavi as the user who owns the repository, or fix the ownership and modes of "
        f"{directory} and the files in it",
    )


def check_file(path: Path) -> None:
    """Refuse a ledger file that is empty or not a SQLite database at all."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(SQLITE_MAGIC))
    except OSError as exc:
        fault = environment_fault(exc)
        if fault is not None:
            raise fault from None
        raise LedgerError(f"cannot read the ledger {path}: {exc.strerror}") from None
    if not head:
        raise LedgerDamagedError(
            f"the ledger {path} is empty (0 bytes)",
            why="an empty file is not an empty ledger: the file was truncated (a full disk, a crash "
            "or another program), and every event in it is gone from this file",
            remedy=REBUILD_REMEDY,
        )
    if head != SQLITE_MAGIC:
        raise LedgerDamagedError(
            f"{path} is not a SQLite database",
            why="the ledger file was overwritten by something else",
            remedy=REBUILD_REMEDY,
        )


def check_schema(conn: sqlite3.Connection, path: Path) -> None:
    """Refuse a SQLite database that is not a Kavi ledger (before migrating anything into it)."""
    from kavi.ledger.schema import SCHEMA_VERSION

    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version > SCHEMA_VERSION:
        return  # a newer Kavi's ledger: migrate() says so
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if (version == 0 and tables) or (version > 0 and "events" not in tables):
        raise LedgerDamagedError(
            f"{path} is a SQLite database, but not a Kavi ledger",
            why=f"it holds the tables {', '.join(sorted(tables)) or '(none)'} at schema version {version}",
            remedy=REBUILD_REMEDY,
        )


def _open_error(path: Path, exc: sqlite3.DatabaseError) -> Exception:
    from kavi.errors import busy_fault

    fault = environment_fault(exc) or busy_fault(exc)
    if fault is not None:
        return fault
    name = str(getattr(exc, "sqlite_errorname", ""))
    if (
        name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB"))
        or "malformed" in str(exc)
        or "not a database" in str(exc)
    ):
        return LedgerDamagedError(f"the ledger {path} is damaged: {exc}", remedy=REBUILD_REMEDY)
    return LedgerError(
        f"cannot open the ledger at {path}: {exc}",
        remedy="check the file; `git kavi ledger import` can rebuild it from refs/kavi/ledger",
    )


def connect_readonly(path: Path) -> sqlite3.Connection:
    """Open a ledger on a read-only file system without writing a byte there.

    Without a write-ahead log the file is opened ``immutable``. With one (a command was
    killed before SQLite could fold it back), the database and its log are copied to a
    private temporary directory and opened there, so the last committed transactions are
    seen too.
    """
    import shutil
    import tempfile
    from urllib.parse import quote

    wal = Path(f"{path}-wal")
    target = path
    flags = "immutable=1"
    if wal.exists() and wal.stat().st_size > 0:
        copy_dir = Path(tempfile.mkdtemp(prefix="kavi-ledger-ro-"))
        target = copy_dir / path.name
        shutil.copyfile(path, target)
        shutil.copyfile(wal, Path(f"{target}-wal"))
        flags = "mode=rw"
    try:
        conn = sqlite3.connect(
            f"file:{quote(str(target))}?{flags}",
            uri=True,
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,
            check_same_thread=False,
        )
        conn.row_factory = sqlite3.Row
        check_schema(conn, path)
        (version,) = conn.execute("PRAGMA user_version").fetchone()
    except sqlite3.DatabaseError as exc:
        raise _open_error(path, exc) from None
    from kavi.ledger.schema import SCHEMA_VERSION

    if version != SCHEMA_VERSION:
        raise ReadOnlyError(
            f"the ledger {path} needs a schema upgrade (v{version} → v{SCHEMA_VERSION}), "
            "and its file system is read-only",
            remedy="open it once with this Kavi in a writable clone, or use the Kavi that wrote it",
        )
    return conn
