"""The ledger: migrations, the event journal, the state machine, concurrency."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kavi.errors import AmbiguousIdError, LedgerError, NotFoundError, StateError, UsageError
from kavi.ledger.models import Proposal
from kavi.ledger.reducer import EventKind
from kavi.ledger.schema import SCHEMA_VERSION
from kavi.ledger.states import TRANSITIONS, ProposalStatus, can_transition, check_transition
from kavi.ledger.store import Ledger
from kavi.policy.model import SideEffect

S = ProposalStatus


def _proposal(name: str = "write_note", pid: str | None = None) -> Proposal:
    return Proposal(
        id=pid or str(uuid.uuid4()),
        name=name,
        description="d",
        io_schema={"input": {"a": "str"}, "output": {"b": "int"}},
        side_effect_class=SideEffect.READ_ONLY,
        created_at="2026-01-01T00:00:00.000000Z",
        updated_at="2026-01-01T00:00:00.000000Z",
    )


def _status_change(txn: object, pid: str, old: S, new: S) -> None:
    txn.record(  # type: ignore[attr-defined]
        EventKind.STATUS_CHANGED, pid, {"proposal_id": pid, "from": old.value, "to": new.value}
    )


def test_migration_from_an_empty_database(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    con = sqlite3.connect(path)  # a SQLite database without tables, schema v0
    con.execute("CREATE TABLE t (x)")
    con.execute("DROP TABLE t")
    con.close()
    assert path.stat().st_size > 0
    with Ledger.open(path) as ledger:
        (version,) = ledger.conn.execute("PRAGMA user_version").fetchone()
        assert version == SCHEMA_VERSION
        tables = {r[0] for r in ledger.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {
            "skill_proposals",
            "builds",
            "verifications",
            "promotions",
            "artifacts",
            "events",
            "runs",
            "revocations",
        } <= tables
        cols = {r[1] for r in ledger.conn.execute("PRAGMA table_info(builds)")}
        assert {"attempt_number", "parent_build_id"} <= cols
        (mode,) = ledger.conn.execute("PRAGMA journal_mode").fetchone()
        assert mode == "wal"
    with Ledger.open(path) as again:  # re-opening migrates nothing
        (version,) = again.conn.execute("PRAGMA user_version").fetchone()
        assert version == SCHEMA_VERSION


def test_missing_ledger_is_refused_unless_created(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match="no ledger"):
        Ledger.open(tmp_path / "nope.db")
    assert not (tmp_path / "nope.db").exists()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    con = sqlite3.connect(path)
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    con.close()
    with pytest.raises(LedgerError, match="newer than this Kavi"):
        Ledger.open(path)


def test_events_are_hash_chained_and_append_only(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "l.db", create=True) as ledger:
        p = _proposal()
        with ledger.transaction("tester") as txn:
            txn.put(EventKind.PROPOSAL_CREATED, p)
            _status_change(txn, p.id, S.PROPOSED, S.BUILT)
        events = ledger.events()
        assert [e.seq for e in events] == [1, 2]
        assert events[1].prev_hash == events[0].hash
        assert ledger.verify_chain() == []
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            ledger.conn.execute("UPDATE events SET payload_json = '{}' WHERE seq = 1")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            ledger.conn.execute("DELETE FROM events WHERE seq = 1")
        # the local mirror pointer is the one mutable column
        ledger.set_mirror_commit(1, "a" * 40)
        assert ledger.mirror_commits() == {1: "a" * 40}


def test_transaction_is_all_or_nothing(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "l.db", create=True) as ledger:
        p = _proposal()
        with pytest.raises(StateError), ledger.transaction("tester") as txn:
            txn.put(EventKind.PROPOSAL_CREATED, p)
            _status_change(txn, p.id, S.PROPOSED, S.TRUSTED)  # illegal: rolls back both
        assert ledger.proposals() == []
        assert ledger.events() == []


def test_id_prefixes_resolve_like_git(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "l.db", create=True) as ledger:
        a = _proposal("alpha", "abcd1111-0000-4000-8000-000000000000")
        b = _proposal("beta", "abcd2222-0000-4000-8000-000000000000")
        with ledger.transaction("t") as txn:
            txn.put(EventKind.PROPOSAL_CREATED, a)
            txn.put(EventKind.PROPOSAL_CREATED, b)
        assert ledger.resolve(Proposal, "abcd1", what="proposal").name == "alpha"
        assert ledger.resolve(Proposal, b.id, what="proposal").name == "beta"
        assert ledger.find_proposal("beta").id == b.id
        with pytest.raises(AmbiguousIdError):
            ledger.resolve(Proposal, "abcd", what="proposal")
        with pytest.raises(NotFoundError):
            ledger.resolve(Proposal, "ffff", what="proposal")
        with pytest.raises(UsageError):
            ledger.resolve(Proposal, "ab", what="proposal")
        with pytest.raises(UsageError):
            ledger.resolve(Proposal, "a%'; --", what="proposal")


def test_concurrent_writers_wait_instead_of_failing(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    Ledger.open(path, create=True).close()
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            with Ledger.open(path) as ledger:
                for i in range(10):
                    with ledger.transaction(f"w{n}") as txn:
                        txn.put(EventKind.PROPOSAL_CREATED, _proposal(f"s{n}_{i}"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with Ledger.open(path) as ledger:
        assert len(ledger.proposals()) == 40
        assert [e.seq for e in ledger.events()] == list(range(1, 41))
        assert ledger.verify_chain() == []


# --- the state machine -------------------------------------------------------------

ALL = list(S)


def test_known_legal_and_illegal_transitions() -> None:
    assert can_transition(S.PROPOSED, S.BUILT)
    assert can_transition(S.BUILT, S.VERIFIED)
    assert can_transition(S.VERIFIED, S.TRUSTED)
    assert can_transition(S.TRUSTED, S.REVOKED)
    for bad in [(S.PROPOSED, S.VERIFIED), (S.PROPOSED, S.TRUSTED), (S.BUILT, S.TRUSTED)]:
        assert not can_transition(*bad)
        with pytest.raises(StateError) as info:
            check_transition(*bad, subject="p")
        assert info.value.remedy
    for terminal in (S.REJECTED, S.SUPERSEDED, S.REVOKED):
        assert all(not can_transition(terminal, t) for t in ALL)


@settings(max_examples=150, deadline=None)
@given(attempts=st.lists(st.sampled_from(ALL), min_size=1, max_size=25))
def test_random_transition_sequences_match_the_model(attempts: list[S]) -> None:
    """Drive the real reducer with random attempts; it must agree with the transition table."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp, Ledger.open(Path(tmp) / "l.db", create=True) as ledger:
        p = _proposal()
        with ledger.transaction("t") as txn:
            txn.put(EventKind.PROPOSAL_CREATED, p)
        model = S.PROPOSED
        accepted = 1
        for target in attempts:
            legal = target in TRANSITIONS[model]
            try:
                with ledger.transaction("t") as txn:
                    _status_change(txn, p.id, model, target)
            except StateError:
                assert not legal, f"{model} → {target} was refused but is legal"
            else:
                assert legal, f"{model} → {target} was accepted but is illegal"
                model = target
                accepted += 1
            assert ledger.proposal(p.id).status is model
        assert len(ledger.events()) == accepted
        assert ledger.verify_chain() == []
