"""``git kavi ledger import``: rebuild or extend the local ledger from ``refs/kavi/ledger``.

Every mirror commit is checked before anything is written, by the same record rule as
the server hook (:mod:`kavi.gitstore.record_rules`): it belongs to this forge
(``Kavi-Forge``), its ``Kavi-Governance`` commit lies on the target branch's sanctioned
first-parent line since the pinned root (:mod:`kavi.forge.trust`), and its SSH signature
is by a key that commit's ``.kavi/allowed_signers`` trusts, under the principal it gives
the key. Then the event's hash and its link to the previous event, contiguous sequence
numbers, a linear chain, and the BLAKE3 of every artifact whose bytes travelled (the
others are known here by their digest only: :mod:`kavi.ledger.privacy`). A chain with a
bad signature, a gap or a rewrite is refused with the exact commit named. A fresh ledger
is built in a temporary file and moved into place; an existing ledger is only ever
extended, and only if its events are a prefix of the mirror.

A ledger file that is empty, foreign or damaged is set aside (never deleted) and the
ledger rebuilt, with what can still be read of its unmirrored events appended; a
ledger that was deleted is rebuilt only if the mirror holds all of its events, or if
the user accepts the loss (``--accept-loss``): see :mod:`kavi.forge.ledger_rescue`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kavi.errors import NotFoundError, TrustError
from kavi.forge.context import Forge
from kavi.ledger.models import Artifact, Event
from kavi.ledger.reducer import EventKind, apply_event

if TYPE_CHECKING:
    from kavi.gitstore.mirror import MirrorEntry
    from kavi.gitstore.repo import GitRepo


@dataclass
class VerifiedMirror:
    tip: str | None
    events: list[tuple[Event, str]]
    artifacts: dict[str, tuple[Artifact, bytes]]
    elsewhere: list[str]  # artifacts whose bytes did not travel (only their digest)


def read_mirror(forge: Forge) -> VerifiedMirror:
    """Every event of ``refs/kavi/ledger`` with its commit, after checking all of it."""
    from kavi.forge.trust import record_judge
    from kavi.gitstore.mirror import (
        LEDGER_REF,
        ChainProblem,
        check_chain,
        read_artifact,
        walk_chain,
    )
    from kavi.hashing import blake3_hex

    repo = forge.repo
    tip = repo.ref_target(LEDGER_REF)
    if tip is None:
        return VerifiedMirror(None, [], {}, [])
    entries = walk_chain(repo, tip)
    judge = record_judge(forge)
    judge.prefetch({e.commit: e.message for e in entries})

    def signature_problem(entry: MirrorEntry) -> str | None:
        found = judge.problem(entry.commit, entry.message)
        return None if found is None else found[1]

    problems: list[ChainProblem] = list(check_chain(repo, entries, verify_signature=signature_problem))
    artifacts: dict[str, tuple[Artifact, bytes]] = {}
    elsewhere: list[str] = []
    for entry in entries:
        ev = entry.event
        if ev is None or ev.kind != EventKind.ARTIFACT_RECORDED:
            continue
        artifact = Artifact.model_validate(ev.payload)
        data = read_artifact(repo, entry.commit, artifact.blake3)
        if data is None:
            elsewhere.append(artifact.id)
            continue
        if blake3_hex(data) != artifact.blake3:
            problems.append(
                ChainProblem(entry.commit, ev.seq, f"artifact {artifact.path} altered in the tree")
            )
            continue
        artifacts[artifact.id] = (artifact, data)
    if problems:
        first = problems[0]
        raise TrustError(
            f"refusing refs/kavi/ledger: {first}",
            why=f"{len(problems)} problem(s) in the ledger mirror; the first is at commit {first.commit}",
            remedy="do not trust this mirror; fetch it again from a trusted remote or investigate "
            "with `git log refs/kavi/ledger`",
            details={"problems": [str(p) for p in problems], "commit": first.commit},
        )
    events = [(e.event, e.commit) for e in entries if e.event is not None]
    return VerifiedMirror(tip, events, artifacts, elsewhere)


def import_ledger(forge: Forge, *, accept_loss: bool = False, into: Path | None = None) -> dict[str, Any]:
    """Rebuild or extend the ledger from the mirror (see the module docstring).

    ``into``: build a fresh ledger at this path instead (a read-only clone's private copy);
    nothing in the repository is written then.
    """
    from kavi.artifacts.vault import atomic_write
    from kavi.forge import ledger_rescue
    from kavi.gitstore.mirror import LEDGER_REF
    from kavi.ledger.mark import write_mark

    location = forge.location
    path = into or location.ledger_path
    result: dict[str, Any] = {}
    salvaged: list[Event] = []
    if into is None and path.exists():
        damage = ledger_rescue.damage(forge)
        if damage is not None:
            forge.close()
            aside = ledger_rescue.set_aside(path)
            salvaged = aside.salvaged
            result.update({"set_aside": str(aside.path), "damage": damage, "salvaged": len(salvaged)})
    elif into is None:
        ledger_rescue.check_missing(forge, accept_loss=accept_loss)
        moved = ledger_rescue.move_stray_wal(path)
        if moved:
            result["stray_wal_set_aside"] = [str(m) for m in moved]
    mirror = read_mirror(forge)
    if mirror.tip is None and "set_aside" not in result and not path.exists():
        raise NotFoundError(
            f"this clone has no {LEDGER_REF}",
            remedy="fetch it: git fetch origin 'refs/kavi/*:refs/kavi/*' 'refs/notes/kavi:refs/notes/kavi'",
        )
    if path.exists():
        imported, total, last = _extend(forge, path, mirror.events, mirror.elsewhere)
    else:
        imported, total, last, recovered = _fresh(path, mirror.events, salvaged, mirror.elsewhere)
        if salvaged:
            result["recovered_unmirrored"] = recovered
    restored = 0
    if into is None:
        for artifact, data in mirror.artifacts.values():
            target_path = forge.workdir / artifact.path
            if not target_path.exists() or target_path.read_bytes() != data:
                atomic_write(target_path, data)
                restored += 1
        if last is not None:
            write_mark(location.ledger_mark, last.seq, last.hash)
    result.update({"imported": imported, "events": total, "artifacts_restored": restored, "tip": mirror.tip})
    return result


def _extend(
    forge: Forge, path: Path, events: list[tuple[Event, str]], elsewhere: list[str]
) -> tuple[int, int, Event | None]:
    """Add the mirror's events this ledger lacks; refuse a divergence."""
    from kavi.ledger.store import Ledger, insert_event

    elsewhere_ids = set(elsewhere)
    imported = 0
    with Ledger.open(path, mark=forge.location.ledger_mark) as ledger, ledger.transaction(forge.actor):
        local = ledger.events()
        mirrored = ledger.mirror_commits()
        for ev in local:
            if ev.seq > len(events):
                if ev.seq in mirrored:
                    raise TrustError(
                        f"refs/kavi/ledger lost event #{ev.seq} this ledger mirrored as "
                        f"{mirrored[ev.seq][:12]} (rewrite)",
                        remedy="the mirror was rewound; restore it from a trusted clone",
                    )
                continue  # a local event not mirrored yet: `git kavi ledger sync` publishes it
            remote, commit = events[ev.seq - 1]
            if remote.hash != ev.hash:
                if ev.seq not in mirrored:
                    raise TrustError(
                        f"the ledger diverged at event #{ev.seq}: this clone recorded an event the "
                        f"mirror does not have, and the mirror's commit {commit} holds another",
                        why="two clones recorded ledger events concurrently",
                        remedy="publish this clone's events after the others': "
                        "git kavi promote-skill --republish",
                        details={"commit": commit},
                    )
                raise TrustError(
                    f"refs/kavi/ledger commit {commit} rewrites event #{ev.seq}",
                    why="its event differs from this ledger's (different hash)",
                    remedy="the ledgers diverged; do not trust the mirror until you know why",
                    details={"commit": commit},
                )
        for ev, commit in events:
            if ev.seq <= len(local):
                if mirrored.get(ev.seq) != commit:
                    ledger.set_mirror_commit(ev.seq, commit)
                continue
            insert_event(ledger.conn, ev)
            apply_event(ledger.conn, ev)
            ledger.set_mirror_commit(ev.seq, commit)
            if ev.subject_id in elsewhere_ids:
                ledger.mark_elsewhere(ev.subject_id)
            imported += 1
        last = ledger.last_event()
        total = last.seq if last else 0
    return imported, total, last


def _fresh(
    path: Path, events: list[tuple[Event, str]], salvaged: list[Event], elsewhere: list[str]
) -> tuple[int, int, Event | None, int]:
    """Build a new ledger in a temporary file: the mirror's events, then those salvaged from a
    damaged file that continue its chain (not yet mirrored); move it into place."""
    from kavi.ledger.schema import migrate
    from kavi.ledger.store import connect, insert_event, shareable, sweep_temporaries

    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_temporaries(path.parent)
    fd, tmp_name = tempfile.mkstemp(prefix=".ledger-import-", suffix=".db", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    shareable(tmp)
    imported = recovered = 0
    last: Event | None = None
    try:
        conn = connect(tmp)
        migrate(conn)
        conn.execute("BEGIN IMMEDIATE")
        for ev, commit in events:
            insert_event(conn, ev)
            apply_event(conn, ev)
            conn.execute("UPDATE events SET mirror_commit = ? WHERE seq = ?", (commit, ev.seq))
            imported += 1
            last = ev
        for ev in salvaged:
            if ev.seq <= imported:
                if ev.hash != events[ev.seq - 1][0].hash:
                    break  # the damaged ledger and the mirror disagree: keep the signed side
                continue
            if ev.seq != (last.seq + 1 if last else 1) or ev.prev_hash != (last.hash if last else ""):
                break
            conn.execute("SAVEPOINT salvage")
            try:
                insert_event(conn, ev)
                apply_event(conn, ev)
            except Exception:
                conn.execute("ROLLBACK TO salvage")
                break
            conn.execute("RELEASE salvage")
            recovered += 1
            last = ev
        conn.executemany(
            "INSERT OR IGNORE INTO artifacts_elsewhere (artifact_id) VALUES (?)", [(a,) for a in elsewhere]
        )
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        os.replace(tmp, path)
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(str(tmp) + suffix).unlink(missing_ok=True)
    return imported, (last.seq if last else 0), last, recovered


def digest_only(repo: GitRepo, entries: Sequence[MirrorEntry], workdir: Path) -> list[str]:
    """The artifacts of ``entries`` whose bytes are neither in the mirror's tree nor in the
    vault at ``workdir``: this clone knows them only by their digest."""
    from kavi.gitstore.mirror import read_artifact

    out = []
    for entry in entries:
        ev = entry.event
        if ev is None or ev.kind != EventKind.ARTIFACT_RECORDED:
            continue
        artifact = Artifact.model_validate(ev.payload)
        if (
            read_artifact(repo, entry.commit, artifact.blake3) is None
            and not (workdir / artifact.path).exists()
        ):
            out.append(artifact.id)
    return out
