"""``revoke-skill``: withdraw a TRUSTED skill with a signed commit, tag and ledger event (user command).

The revocation commit (one parent: the target tip) removes the skill file, its test
and its registry entry; it is signed by the user's key, which must be trusted on the
target branch. A signed annotated tag ``kavi/<name>/v<N>-revoked`` binds it, notes and
the ledger mirror record it, and the proposal becomes REVOKED — ``run-skill`` refuses
it from then on. Like promotion, it needs an Approval from the user-facing command, and
it is journalled the same way (:mod:`kavi.forge.journal`): every signed object is made
first, then the branch moves, the tag is created, the ledger records it, the notes and
the mirror follow, and the checkout is updated last — so an interrupted revocation is
finished (or rolled back) by ``git kavi doctor --repair`` or the next revoke.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kavi.clock import now_iso
from kavi.errors import ConflictError, StateError
from kavi.forge.context import Forge
from kavi.hashing import canonical_json, sha256_hex
from kavi.ledger.models import Promotion, Revocation
from kavi.sshsig import SshSigner

if TYPE_CHECKING:
    from kavi.cli.approval import Approval


@dataclass(frozen=True)
class RevocationPlan:
    promotion: Promotion
    reason: str
    target_branch: str
    target_tip: str
    principal: str
    signer: SshSigner
    files: list[str]
    checkout: bool

    @property
    def tag_name(self) -> str:
        return f"{self.promotion.tag_name}-revoked"

    @property
    def digest(self) -> str:
        return sha256_hex(
            canonical_json(
                {
                    "revoke": self.promotion.id,
                    "target": self.target_tip,
                    "reason": self.reason,
                    "key": self.signer.fingerprint,
                }
            ).encode()
        )


def plan_revocation(forge: Forge, name: str, reason: str, signer: SshSigner) -> RevocationPlan:
    from kavi.forge import journal
    from kavi.forge.registry import current_promotions
    from kavi.signing import trusted_principal

    if journal.journal_path(forge).exists():
        raise StateError(
            "an earlier promotion, revocation or ledger sync did not finish",
            remedy="run `git kavi doctor` to see where it stopped, then `git kavi doctor --repair`",
        )
    promotion = current_promotions(forge.ledger).get(name)
    if promotion is None:
        raise StateError(
            f"skill {name!r} is not TRUSTED, so there is nothing to revoke",
            remedy="see `git kavi list-skills`",
        )
    from kavi.forge.trust import require_sanctioned_tip
    from kavi.signing import with_principal

    repo = forge.repo
    config = forge.committed_config
    tip = require_sanctioned_tip(forge)
    principal = trusted_principal(signer, forge.allowed_signers(tip), branch=config.target_branch)
    signer = with_principal(signer, principal)
    if repo.ref_target(f"refs/tags/{promotion.tag_name}-revoked") is not None:
        raise StateError(f"tag {promotion.tag_name}-revoked already exists")
    registry = f"{config.skills_dir}/registry.yaml"
    files = [promotion.skill_path, promotion.test_path, registry]
    checkout = repo.head_branch() == config.target_branch and not repo.is_bare
    if checkout:
        from kavi.gitstore.checkout import conflicts

        dirty = conflicts(repo, repo.commit_tree(tip), files)
        if dirty:
            raise ConflictError(
                "local changes are in the way of the revocation: " + ", ".join(dirty),
                remedy="commit, stash or move them away, then revoke again",
            )
    return RevocationPlan(
        promotion=promotion,
        reason=" ".join(reason.split()) or "no reason given",
        target_branch=config.target_branch,
        target_tip=tip,
        principal=principal,
        signer=signer,
        files=files,
        checkout=checkout,
    )


def already_revoked(forge: Forge, name: str) -> Revocation | None:
    """The revocation of ``name`` if its last promotion is revoked (re-running revoke is a no-op)."""
    from kavi.forge.registry import current_promotions

    ledger = forge.ledger
    if name in current_promotions(ledger):
        return None
    promotions = ledger.promotions(name)
    revocations = ledger.revocations(name)
    if promotions and revocations and revocations[-1].promotion_id == promotions[-1].id:
        return revocations[-1]
    return None


def revoke(forge: Forge, plan: RevocationPlan, approval: Approval) -> Revocation:
    from kavi.cli.approval import require
    from kavi.forge import journal
    from kavi.forge.records import revocation_trailers
    from kavi.forge.registry import derive, render_registry
    from kavi.forge.trust import forge_identity
    from kavi.gitstore.objects import format_trailers, write_signed_tag

    require(approval, plan.digest, "revocation")
    repo = forge.repo
    ledger = forge.ledger
    p = plan.promotion
    config = forge.committed_config
    registry_path = f"{config.skills_dir}/registry.yaml"
    registry_text = render_registry(derive(ledger, drop=p.skill_name))
    registry_blob = repo.write_blob(registry_text.encode("utf-8"))
    tree = repo.update_tree(
        repo.commit_tree(plan.target_tip),
        {p.skill_path: None, p.test_path: None, registry_path: (0o100644, registry_blob)},
    )
    revocation = Revocation(
        id=str(uuid.uuid4()),
        skill_name=p.skill_name,
        proposal_id=p.proposal_id,
        promotion_id=p.id,
        reason=plan.reason,
        revoked_by=plan.principal,
        commit_id="",
        target_branch=plan.target_branch,
        tag_name=plan.tag_name,
        registry_blob=registry_blob,
        created_at=now_iso(),
    )
    message = f"kavi: revoke {p.skill_name} v{p.version}\n\n{plan.reason}\n\n" + format_trailers(
        revocation_trailers(revocation)
    )
    commit = repo.write_commit(tree=tree, parents=[plan.target_tip], message=message, signer=plan.signer)
    revocation = revocation.model_copy(update={"commit_id": commit})
    tag = write_signed_tag(
        repo,
        name=plan.tag_name,
        target=commit,
        message=f"Kavi revocation: {p.skill_name} v{p.version}\n\n"
        + format_trailers(
            {
                **revocation_trailers(revocation),
                "Kavi-Commit": commit,
                "Kavi-Tree": tree,
                "Kavi-Forge": forge_identity(forge),
            }
        ),
        tagger=repo.committer(),
        signer=plan.signer,
    )
    notes = {commit: "Kavi revocation record\n\n" + format_trailers(revocation_trailers(revocation))}
    notes_message = f"kavi: notes for revocation of {p.skill_name}\n\nKavi-Revocation: {revocation.id}\n"
    change = journal.SignedChange(
        label="commit",
        branch=plan.target_branch,
        old=plan.target_tip,
        new=commit,
        tag_ref=f"refs/tags/{plan.tag_name}",
        tag=tag,
        record="revocation",
        payload=revocation.model_dump(mode="json"),
        notes=notes,
        notes_message=notes_message,
        checkout=plan.checkout,
    )
    journal.perform_change(
        forge,
        change,
        op="revoke",
        subject=f"{p.skill_name} v{p.version}",
        signer=plan.signer,
        principal=plan.principal,
    )
    return revocation
