"""The ledger mirror: ``refs/kavi/ledger``, one signed commit per ledger event.

Each commit's parent is the previous event's commit. Its message is a subject line,
``Key: value`` trailers and the event as canonical JSON; ``Kavi-Governance`` names the
target-branch commit whose ``.kavi/allowed_signers`` the signature is checked against,
``Kavi-Signer`` the principal ``allowed_signers`` gives the signing key there, and
``Kavi-Forge`` the forge the event belongs to (see :mod:`kavi.gitstore.record_rules`).
Its tree carries every artifact recorded so far, addressed by BLAKE3 with 2-character
fan-out (``artifacts/ab/cdef….md``), so each new event rewrites only two small trees
whatever the ledger's length.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from kavi.gitstore.objects import format_trailers, trailers
from kavi.gitstore.repo import MODE_BLOB, ZERO_OID, GitRepo, Signer
from kavi.hashing import canonical_json, event_hash

if TYPE_CHECKING:
    from kavi.ledger.models import Event

LEDGER_REF = "refs/kavi/ledger"
JSON_MARKER = "Kavi-Event-JSON:"


def artifact_path(blake3: str) -> str:
    return f"artifacts/{blake3[:2]}/{blake3[2:]}.md"


def event_message(event: Event, *, forge_id: str, governance: str, signer: str) -> str:
    subject = f"kavi ledger #{event.seq}: {event.kind} {event.subject_id[:8]}"
    fields = {
        "Kavi-Event-Seq": event.seq,
        "Kavi-Event-Id": event.id,
        "Kavi-Event-Kind": event.kind,
        "Kavi-Event-Subject": event.subject_id,
        "Kavi-Event-Hash": event.hash,
        "Kavi-Event-Prev-Hash": event.prev_hash or "-",
        "Kavi-Actor": event.actor,
        "Kavi-Created": event.created_at,
        "Kavi-Forge": forge_id,
        "Kavi-Governance": governance,
        "Kavi-Signer": signer,
    }
    body = canonical_json(event.model_dump(mode="json"))
    return f"{subject}\n\n{format_trailers(fields)}{JSON_MARKER} {body}\n"


_EVENT_KEYS = {
    "seq": int,
    "id": str,
    "kind": str,
    "subject_id": str,
    "payload": dict,
    "actor": str,
    "created_at": str,
    "prev_hash": str,
    "hash": str,
}


def parse_event_fields(message: str) -> dict[str, Any] | None:
    """The event a mirror commit carries, as its JSON (exactly the event's keys and types;
    standard library only, so the server hook needs no pydantic to check a chain)."""
    for line in message.splitlines():
        if line.startswith(JSON_MARKER):
            try:
                data = json.loads(line[len(JSON_MARKER) :].strip())
            except ValueError:
                return None
            if not isinstance(data, dict) or set(data) != set(_EVENT_KEYS):
                return None
            for key, kind in _EVENT_KEYS.items():
                if not isinstance(data[key], kind) or (kind is int and isinstance(data[key], bool)):
                    return None
            return data
    return None


def parse_event(message: str) -> Event | None:
    from kavi.ledger.models import Event

    fields = parse_event_fields(message)
    if fields is None:
        return None
    try:
        return Event.model_validate(fields)
    except (ValueError, TypeError):
        return None


def mirror_events(
    repo: GitRepo,
    events: Sequence[Event],
    *,
    artifact_bytes: Callable[[Event], tuple[str, bytes] | None],
    signer: Signer,
    forge_id: str,
    governance: str,
    on_commits: Callable[[list[tuple[Event, str]]], None],
) -> str | None:
    """Append ``events`` (in order, contiguous with the current tip) to the mirror.

    ``artifact_bytes(event)`` returns (blake3, bytes) for artifact events. Every commit is
    written and signed first; then the ref moves once, compare-and-swap from the tip they
    were built on; then ``on_commits`` records them (the caller's one ledger transaction).
    A crash before the ref moves leaves only unreferenced objects; a crash after it is
    recognised by the events' hashes (:func:`kavi.forge.sync.mirror_state`).
    """
    start = repo.ref_target(LEDGER_REF)
    tip = start
    tree = repo.commit_tree(tip) if tip else repo.empty_tree()
    made: list[tuple[Event, str]] = []
    for event in events:
        changes: dict[str, tuple[int, str] | None] = {}
        blob = artifact_bytes(event)
        if blob is not None:
            digest, data = blob
            changes[artifact_path(digest)] = (MODE_BLOB, repo.write_blob(data))
        if changes:
            tree = repo.update_tree(tree, changes)
        tip = repo.write_commit(
            tree=tree,
            parents=[tip] if tip else [],
            message=event_message(event, forge_id=forge_id, governance=governance, signer=signer.principal),
            signer=signer,
        )
        made.append((event, tip))
    if tip is not None and tip != start:
        repo.set_ref(
            LEDGER_REF,
            tip,
            message=f"kavi: ledger events {events[0].seq}-{events[-1].seq}",
            old=start or ZERO_OID,
        )
        on_commits(made)
    return tip


@dataclass(frozen=True)
class MirrorEntry:
    commit: str
    event_fields: dict[str, Any] | None  # the event as the commit carries it
    fields: dict[str, str]  # the commit's trailers
    parents: tuple[str, ...]
    tree: str
    message: str = ""

    @cached_property
    def event(self) -> Event | None:
        """The event as a validated model (imports pydantic: not on the hook's path)."""
        from kavi.ledger.models import Event

        if self.event_fields is None:
            return None
        try:
            return Event.model_validate(self.event_fields)
        except (ValueError, TypeError):
            return None


def walk_chain(repo: GitRepo, tip: str, stop: str | None = None) -> list[MirrorEntry]:
    """The mirror from root (or from after ``stop``) to ``tip``, following first parents
    (merges are reported, not followed)."""
    entries: list[MirrorEntry] = []
    current: str | None = tip
    while current is not None and current != stop:
        info = repo.commit(current)
        entries.append(
            MirrorEntry(
                commit=current,
                event_fields=parse_event_fields(info.message),
                fields=trailers(info.message),
                parents=info.parents,
                tree=info.tree,
                message=info.message,
            )
        )
        current = info.parents[0] if info.parents else None
    entries.reverse()
    return entries


@dataclass(frozen=True)
class ChainProblem:
    commit: str
    seq: int | None
    problem: str

    def __str__(self) -> str:
        where = f"event #{self.seq}" if self.seq is not None else "commit"
        return f"{where} ({self.commit[:12]}): {self.problem}"


def check_chain(
    repo: GitRepo,
    entries: Sequence[MirrorEntry],
    *,
    verify_signature: Callable[[MirrorEntry], str | None],
    after: dict[str, Any] | None = None,
) -> Iterator[ChainProblem]:
    """Yield every problem: bad signature, unparsable event, gap, broken hash chain, merge.
    ``after``: the event (fields) the entries continue (None: they start the ledger)."""
    expected_seq = int(after["seq"]) + 1 if after is not None else 1
    prev_hash = str(after["hash"]) if after is not None else ""
    for entry in entries:
        ev = entry.event_fields
        seq: int | None = ev["seq"] if ev else None
        if len(entry.parents) > 1:
            yield ChainProblem(entry.commit, seq, "is a merge commit; the ledger mirror must be linear")
        bad_sig = verify_signature(entry)
        if bad_sig:
            yield ChainProblem(entry.commit, seq, bad_sig)
        if ev is None:
            yield ChainProblem(entry.commit, None, "does not carry a parsable ledger event")
            return
        if seq != expected_seq:
            yield ChainProblem(entry.commit, seq, f"gap: expected event #{expected_seq}, found #{seq}")
        if ev["prev_hash"] != prev_hash:
            yield ChainProblem(entry.commit, seq, "prev_hash does not match the previous event (rewrite)")
        if event_hash(ev) != ev["hash"]:
            yield ChainProblem(entry.commit, seq, "event content does not match its hash (rewrite)")
        if entry.fields.get("Kavi-Event-Hash") != ev["hash"]:
            yield ChainProblem(entry.commit, seq, "trailer Kavi-Event-Hash disagrees with the event")
        expected_seq = int(ev["seq"]) + 1
        prev_hash = str(ev["hash"])


def read_artifact(repo: GitRepo, commit: str, blake3: str) -> bytes | None:
    return repo.file_bytes(commit, artifact_path(blake3))


def governance_of(entry: MirrorEntry) -> str | None:
    return entry.fields.get("Kavi-Governance")
