"""``git kavi ledger import``: rebuild or extend the local ledger from ``refs/kavi/ledger``.

Every mirror commit is checked before anything is written, by the same record rule as
the server hook (:mod:`kavi.gitstore.record_rules`): it belongs to this forge
(``Kavi-Forge``), its ``Kavi-Governance`` commit lies on the target branch's sanctioned
first-parent line since the pinned root (:mod:`kavi.forge.trust`), and its SSH signature
is by a key that commit's ``.kavi/allowed_signers`` trusts, under the principal it gives
the key. Then the event's hash and its link to the previous event, contiguous sequence
numbers, a linear chain, and every artifact's BLAKE3. A chain with a bad
signature, a gap or a rewrite is refused with the exact commit named. A fresh ledger
is built in a temporary file and moved into place; an existing ledger is only ever
extended, and only if its events are a prefix of the mirror.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kavi.errors import NotFoundError, TrustError
from kavi.forge.context import Forge
from kavi.ledger.models import Artifact, Event
from kavi.ledger.reducer import EventKind, apply_event

if TYPE_CHECKING:
    from kavi.gitstore.mirror import MirrorEntry
    from kavi.gitstore.repo import GitRepo


def import_ledger(forge: Forge) -> dict[str, Any]:
    from kavi.artifacts.vault import atomic_write
    from kavi.forge.trust import record_judge
    from kavi.gitstore.mirror import (
        LEDGER_REF,
        ChainProblem,
        check_chain,
        read_artifact,
        walk_chain,
    )
    from kavi.hashing import blake3_hex
    from kavi.ledger.store import Ledger, insert_event

    repo = forge.repo
    tip = repo.ref_target(LEDGER_REF)
    if tip is None:
        raise NotFoundError(
            f"this clone has no {LEDGER_REF}",
            remedy="fetch it: git fetch origin 'refs/kavi/*:refs/kavi/*' 'refs/notes/kavi:refs/notes/kavi'",
        )
    entries = walk_chain(repo, tip)
    judge = record_judge(forge)
    judge.prefetch({e.commit: e.message for e in entries})

    def signature_problem(entry: MirrorEntry) -> str | None:
        found = judge.problem(entry.commit, entry.message)
        return None if found is None else found[1]

    problems: list[ChainProblem] = list(check_chain(repo, entries, verify_signature=signature_problem))
    artifacts: dict[str, tuple[Artifact, bytes]] = {}
    elsewhere: list[str] = []  # only the digest travelled (kavi.ledger.privacy)
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
    events: list[tuple[Event, str]] = [(e.event, e.commit) for e in entries if e.event is not None]

    path = forge.location.ledger_path
    imported = 0
    if path.exists():
        elsewhere_ids = set(elsewhere)
        with Ledger.open(path) as ledger:
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
            with ledger.transaction(forge.actor):
                for ev, commit in events:
                    if ev.seq <= len(local):
                        if ev.seq not in mirrored:
                            ledger.set_mirror_commit(ev.seq, commit)
                        continue
                    insert_event(ledger.conn, ev)
                    apply_event(ledger.conn, ev)
                    ledger.set_mirror_commit(ev.seq, commit)
                    if ev.subject_id in elsewhere_ids:
                        ledger.mark_elsewhere(ev.subject_id)
                    imported += 1
            total = len(ledger.events())
    else:
        from kavi.ledger.rebuild import write_ledger

        write_ledger(path, events, elsewhere=elsewhere)
        imported = len(events)
        total = imported
    restored = 0
    for artifact, data in artifacts.values():
        target_path = forge.workdir / artifact.path
        if not target_path.exists() or target_path.read_bytes() != data:
            atomic_write(target_path, data)
            restored += 1
    return {"imported": imported, "events": total, "artifacts_restored": restored, "tip": tip}


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
