"""The ledger step of a journalled change: one SQLite transaction, recognisable by its record id.

Each recorder writes its record artifact and its events in one transaction (the vault
file is written inside it, so a crash leaves at most an unrecorded file, which
``git kavi doctor --repair`` removes) and does nothing if the record is already in the
ledger — the step is idempotent, and "is it done?" is a lookup.

:data:`RECORDERS` maps the journal's ``record`` name to its (is-done, record)
functions; a new kind of journalled change adds its entry here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kavi.forge.context import Forge
from kavi.ledger.models import ArtifactKind, Build, Promotion, Revocation
from kavi.ledger.reducer import EventKind
from kavi.ledger.states import ProposalStatus


def promotion_recorded(forge: Forge, payload: dict[str, Any]) -> bool:
    p = Promotion.model_validate(payload)
    return any(x.id == p.id for x in forge.ledger.promotions(p.skill_name))


def record_promotion(forge: Forge, payload: dict[str, Any]) -> None:
    """PROMOTION_RECORD artifact, the promotion, TRUSTED (and an older version SUPERSEDED)."""
    p = Promotion.model_validate(payload)
    if promotion_recorded(forge, payload):
        return
    ledger = forge.ledger
    proposal = ledger.proposal(p.proposal_id)
    vault = forge.vault()
    body = "\n".join(
        [
            f"- skill: `{p.skill_name}` v{p.version} — {proposal.description}",
            f"- approved by: {p.approved_by} (key `{p.signing_key_fingerprint}`)",
            f"- merge commit: `{p.merge_commit}` on `{p.target_branch}`",
            f"- tag: `{p.tag_name}`",
            f"- skill file: `{p.skill_path}` sha256 `{p.skill_sha256}` blob `{p.skill_blob}`",
            f"- test file: `{p.test_path}` blob `{p.test_blob}`",
            f"- build: `{p.build_id}`, verification: `{p.verification_id}`",
        ]
    )
    links = _related_stems(forge, p)
    with vault.pending(), ledger.transaction(forge.actor) as txn:
        artifact, _ = vault.write(
            ArtifactKind.PROMOTION_RECORD,
            name=p.skill_name,
            related_id=p.id,
            title=f"PROMOTION_RECORD {p.skill_name} v{p.version}",
            body=body,
            meta={"promotion_id": p.id, "merge_commit": p.merge_commit, "tag": p.tag_name},
            links=links,
        )
        txn.put(EventKind.ARTIFACT_RECORDED, artifact)
        txn.put(EventKind.PROMOTION_RECORDED, p.model_copy(update={"record_artifact_id": artifact.id}))
        for older in ledger.promotions(p.skill_name):
            old = ledger.proposal(older.proposal_id)
            if old.id != proposal.id and old.status is ProposalStatus.TRUSTED:
                txn.record(
                    EventKind.STATUS_CHANGED,
                    old.id,
                    {
                        "proposal_id": old.id,
                        "from": "TRUSTED",
                        "to": "SUPERSEDED",
                        "reason": f"superseded by {p.tag_name}",
                    },
                )
        txn.record(
            EventKind.STATUS_CHANGED,
            proposal.id,
            {
                "proposal_id": proposal.id,
                "from": proposal.status.value,
                "to": "TRUSTED",
                "reason": f"promoted as {p.tag_name}",
            },
        )


def _related_stems(forge: Forge, p: Promotion) -> list[str]:
    from kavi.artifacts.vault import artifact_stem

    ledger = forge.ledger
    related = [p.proposal_id, p.build_id, p.verification_id]
    build = ledger.build(p.build_id)
    return [
        artifact_stem(a.kind, p.skill_name, a.id, _attempt(build, a.kind))
        for a in ledger.artifacts_for(related)
    ]


def _attempt(build: Build, kind: ArtifactKind) -> int | None:
    return build.attempt_number if kind in (ArtifactKind.BUILD_PACKET, ArtifactKind.BUILD_LOG) else None


def revocation_recorded(forge: Forge, payload: dict[str, Any]) -> bool:
    r = Revocation.model_validate(payload)
    return any(x.id == r.id for x in forge.ledger.revocations(r.skill_name))


def record_revocation(forge: Forge, payload: dict[str, Any]) -> None:
    """REVOCATION_RECORD artifact, the revocation, TRUSTED → REVOKED."""
    r = Revocation.model_validate(payload)
    if revocation_recorded(forge, payload):
        return
    ledger = forge.ledger
    promotion = next(x for x in ledger.promotions(r.skill_name) if x.id == r.promotion_id)
    vault = forge.vault()
    with vault.pending(), ledger.transaction(forge.actor) as txn:
        artifact, _ = vault.write(
            ArtifactKind.REVOCATION_RECORD,
            name=r.skill_name,
            related_id=r.id,
            title=f"REVOCATION_RECORD {r.skill_name} v{promotion.version}",
            body=f"- revoked by: {r.revoked_by}\n- reason: {r.reason}\n- commit: `{r.commit_id}`\n"
            f"- tag: `{r.tag_name}`\n- promotion revoked: `{promotion.id}` ({promotion.tag_name})",
            meta={"revocation_id": r.id, "commit": r.commit_id, "promotion_id": promotion.id},
        )
        txn.put(EventKind.ARTIFACT_RECORDED, artifact)
        txn.put(EventKind.REVOCATION_RECORDED, r)
        txn.record(
            EventKind.STATUS_CHANGED,
            r.proposal_id,
            {"proposal_id": r.proposal_id, "from": "TRUSTED", "to": "REVOKED", "reason": r.reason},
        )


Recorder = tuple[Callable[[Forge, dict[str, Any]], bool], Callable[[Forge, dict[str, Any]], None]]

RECORDERS: dict[str, Recorder] = {
    "promotion": (promotion_recorded, record_promotion),
    "revocation": (revocation_recorded, record_revocation),
}
