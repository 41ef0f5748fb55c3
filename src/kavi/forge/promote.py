"""``promote-skill``: a signed merge by the user, with its provenance mirrored into git.

:func:`plan_promotion` checks everything and writes nothing (not even ``.git/index``):
a PASSED verification of the build branch's *current* tip, a trusted signing key, a
conflict-free merge, a working tree that can take the result, a free tag name.
:func:`promote` then needs an :class:`~kavi.cli.approval.Approval` for exactly that
plan. It first makes every signed object — the merge commit (whose tree also updates
``registry.yaml``), the annotated tag ``kavi/<name>/v<N>`` and the notes commit (build +
verification on the build commit, promotion on the merge) — then writes the journal
(:mod:`kavi.forge.journal`) and applies, in order:

1. ``merge``    — the target branch moves to the merge (compare-and-swap);
2. ``tag``      — the tag ref is created;
3. ``ledger``   — PROMOTION_RECORD artifact, promotion row, TRUSTED (older version
   SUPERSEDED), one transaction;
4. ``notes``    — ``refs/notes/kavi`` moves to the notes commit;
5. ``mirror``   — every not-yet-mirrored ledger event onto ``refs/kavi/ledger``;
6. ``checkout`` — the working tree and index follow the branch (last; never
   overwriting local or ignored files).

Every prefix is recognisable from the refs, the ledger and the files, so ``git kavi
doctor --repair`` (or the next promote, revoke or sync) finishes an interrupted
promotion, or rolls it back if its branch never moved.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kavi.clock import now_iso
from kavi.errors import ConflictError, StateError, TrustError
from kavi.forge.context import Forge
from kavi.forge.spec import skill_paths
from kavi.hashing import blake3_hex, canonical_json, sha256_hex
from kavi.ledger.models import (
    Build,
    Promotion,
    Proposal,
    Verification,
    VerificationStatus,
)
from kavi.ledger.states import ProposalStatus
from kavi.sshsig import SshSigner

if TYPE_CHECKING:
    from kavi.cli.approval import Approval


@dataclass(frozen=True)
class PromotionPlan:
    proposal: Proposal
    build: Build
    verification: Verification
    target_branch: str
    target_tip: str
    build_commit: str
    merge_tree: str
    version: int
    tag_name: str
    files: list[str]
    diffstat: list[tuple[str, int, int]]  # what the merge brings: (path, added, deleted)
    principal: str
    signer: SshSigner
    checkout: bool  # the target branch is checked out here

    @property
    def digest(self) -> str:
        return sha256_hex(
            canonical_json(
                {
                    "proposal": self.proposal.id,
                    "build": self.build.id,
                    "verification": self.verification.id,
                    "commit": self.build_commit,
                    "target": self.target_tip,
                    "version": self.version,
                    "key": self.signer.fingerprint,
                }
            ).encode()
        )


def _latest_passed(forge: Forge, proposal: Proposal) -> Verification | None:
    passed = [v for v in forge.ledger.verifications_for(proposal.id) if v.status is VerificationStatus.PASSED]
    return passed[-1] if passed else None


def plan_promotion(forge: Forge, proposal_ref: str, signer: SshSigner) -> PromotionPlan:
    from kavi.forge import journal
    from kavi.signing import trusted_principal

    ledger = forge.ledger
    if journal.journal_path(forge).exists():
        raise StateError(
            "an earlier promotion, revocation or ledger sync did not finish",
            remedy="run `git kavi doctor` to see where it stopped, then `git kavi doctor --repair`",
        )
    proposal = ledger.find_proposal(proposal_ref)
    verification = _latest_passed(forge, proposal)
    if proposal.status is not ProposalStatus.VERIFIED or verification is None:
        raise StateError(
            f"proposal {proposal.id[:8]} ({proposal.name}) is {proposal.status.value}, not VERIFIED",
            why="only a build with a PASSED verification can be promoted",
            remedy=f"run `git kavi verify-skill {proposal.id[:8]}`"
            if proposal.status in (ProposalStatus.BUILT, ProposalStatus.PROPOSED)
            else "propose the skill again",
        )
    build = ledger.build(verification.build_id)
    repo = forge.repo
    tip = repo.branch_tip(build.branch_name)
    if tip != verification.commit_id:
        raise TrustError(
            f"build branch {build.branch_name} moved after verification",
            why=f"verified {verification.commit_id[:12]}, branch is now at {(tip or 'deleted')[:12]}",
            remedy=f"verify again: `git kavi verify-skill {proposal.id[:8]}` (or rebuild)",
        )
    from kavi.forge.trust import require_sanctioned_tip
    from kavi.signing import with_principal

    config = forge.committed_config
    target = config.target_branch
    target_tip = require_sanctioned_tip(forge)
    principal = trusted_principal(signer, forge.allowed_signers(target_tip), branch=target)
    signer = with_principal(signer, principal)
    version = 1 + max((p.version for p in ledger.promotions(proposal.name)), default=0)
    tag_name = f"kavi/{proposal.name}/v{version}"
    while repo.ref_target(f"refs/tags/{tag_name}") is not None:
        version += 1
        tag_name = f"kavi/{proposal.name}/v{version}"
    merged, conflicting = repo.merge_commits(target_tip, tip)
    if merged is None:
        raise ConflictError(
            f"merging {build.branch_name} into {target} conflicts",
            why="conflicting paths: " + ", ".join(conflicting),
            remedy="rebuild the skill on the current target branch",
        )
    diffstat = repo.diff_stat(repo.commit_tree(target_tip), merged)
    files = sorted({d.path for d in repo.diff_raw(repo.commit_tree(target_tip), merged)})
    files = sorted({*files, f"{config.skills_dir}/registry.yaml"})
    checkout = repo.head_branch() == target and not repo.is_bare
    if checkout:
        from kavi.gitstore import checkout as co

        in_way = co.conflicts(repo, repo.commit_tree(target_tip), files, new_tree=merged)
        if in_way:
            raise ConflictError(
                "local changes are in the way of the promotion: " + ", ".join(in_way),
                why="the merge would overwrite these files in your working tree (or index)",
                remedy="commit, stash or move them away, then promote again",
            )
    return PromotionPlan(
        proposal=proposal,
        build=build,
        verification=verification,
        target_branch=target,
        target_tip=target_tip,
        build_commit=tip,
        merge_tree=merged,
        version=version,
        tag_name=tag_name,
        files=files,
        diffstat=diffstat,
        principal=principal,
        signer=signer,
        checkout=checkout,
    )


@dataclass
class PromotionOutcome:
    promotion: Promotion
    mirrored: int
    notes: list[str] = field(default_factory=list)
    already: bool = False


def already_promoted(forge: Forge, proposal_ref: str) -> Promotion | None:
    """The promotion of a proposal that is already TRUSTED (re-running promote is then a no-op)."""
    proposal = forge.ledger.find_proposal(proposal_ref)
    if proposal.status is not ProposalStatus.TRUSTED:
        return None
    found = forge.ledger.promotions_for(proposal.id)
    return found[-1] if found else None


def promote(forge: Forge, plan: PromotionPlan, approval: Approval) -> PromotionOutcome:
    """Make the signed objects, then apply the journalled steps (see the module docstring)."""
    from kavi.cli.approval import require
    from kavi.forge import journal
    from kavi.forge.records import promotion_trailers
    from kavi.forge.registry import derive, render_registry
    from kavi.forge.trust import forge_identity
    from kavi.gitstore.objects import format_trailers, write_signed_tag
    from kavi.policy.invariants import model_names

    require(approval, plan.digest, "promotion")
    repo = forge.repo
    ledger = forge.ledger
    config = forge.committed_config
    paths = skill_paths(config, plan.proposal.name)
    skill_bytes = repo.file_bytes(plan.build_commit, paths.skill_file) or b""
    test_entry = repo.entry(plan.build_commit, paths.test_file)
    skill_entry = repo.entry(plan.build_commit, paths.skill_file)
    if skill_entry is None or test_entry is None:
        raise StateError("the build commit lacks the skill or test file")
    input_model, output_model = model_names(skill_bytes, paths.class_name)
    promotion = Promotion(
        id=str(uuid.uuid4()),
        proposal_id=plan.proposal.id,
        build_id=plan.build.id,
        verification_id=plan.verification.id,
        skill_name=plan.proposal.name,
        version=plan.version,
        from_status=plan.proposal.status,
        to_status=ProposalStatus.TRUSTED,
        approved_by=plan.principal,
        signing_key_fingerprint=plan.signer.fingerprint,
        merge_commit="",
        target_branch=plan.target_branch,
        tag_name=plan.tag_name,
        skill_path=paths.skill_file,
        test_path=paths.test_file,
        module=paths.module,
        class_name=paths.class_name,
        input_model=input_model,
        output_model=output_model,
        skill_sha256=sha256_hex(skill_bytes),
        skill_blake3=blake3_hex(skill_bytes),
        skill_blob=skill_entry.oid,
        test_blob=test_entry.oid,
        registry_blob="",
        created_at=now_iso(),
    )
    registry_text = render_registry(derive(ledger, extra=(promotion, plan.proposal)))
    registry_blob = repo.write_blob(registry_text.encode("utf-8"))
    registry_path = f"{config.skills_dir}/registry.yaml"
    tree = repo.update_tree(plan.merge_tree, {registry_path: (0o100644, registry_blob)})
    promotion = promotion.model_copy(update={"registry_blob": registry_blob})
    message = (
        f"kavi: promote {promotion.skill_name} v{promotion.version}\n\n"
        f"Merge {plan.build.branch_name} (build {plan.build.id[:8]}, verified "
        f"{plan.verification.id[:8]}) into {plan.target_branch}, approved by {plan.principal} "
        f"({approval.method}).\n\n"
    ) + format_trailers(promotion_trailers(promotion))
    merge = repo.write_commit(
        tree=tree, parents=[plan.target_tip, plan.build_commit], message=message, signer=plan.signer
    )
    p = promotion.model_copy(update={"merge_commit": merge})
    tag = write_signed_tag(
        repo,
        name=p.tag_name,
        target=merge,
        message=tag_message(p, tree, forge_identity(forge)),
        tagger=repo.committer(),
        signer=plan.signer,
    )
    notes, notes_message = promotion_notes(forge, p)
    change = journal.SignedChange(
        label="merge",
        branch=p.target_branch,
        old=plan.target_tip,
        new=merge,
        tag_ref=f"refs/tags/{p.tag_name}",
        tag=tag,
        record="promotion",
        payload=p.model_dump(mode="json"),
        notes=notes,
        notes_message=notes_message,
        checkout=plan.checkout,
    )
    outcome = journal.perform_change(
        forge,
        change,
        op="promote",
        subject=f"{p.skill_name} v{p.version}",
        signer=plan.signer,
        principal=plan.principal,
    )
    recorded = next(x for x in ledger.promotions(p.skill_name) if x.id == p.id)
    return PromotionOutcome(promotion=recorded, mirrored=outcome.mirrored, notes=outcome.notes)


def tag_message(p: Promotion, tree: str, forge_id: str) -> str:
    from kavi.forge.records import promotion_trailers
    from kavi.gitstore.objects import format_trailers

    return f"Kavi promotion: {p.skill_name} v{p.version}\n\n" + format_trailers(
        {**promotion_trailers(p), "Kavi-Merge": p.merge_commit, "Kavi-Tree": tree, "Kavi-Forge": forge_id}
    )


def promotion_notes(forge: Forge, p: Promotion) -> tuple[dict[str, str], str]:
    """The notes a promotion writes (build + verification on the build commit, the promotion
    on the merge) and their commit message."""
    from kavi.forge.records import build_note, promotion_note, verification_note

    ledger = forge.ledger
    build = ledger.build(p.build_id)
    proposal = ledger.proposal(p.proposal_id)
    verification = ledger.verification(p.verification_id)
    packet = ledger.artifact(build.packet_artifact_id or "")
    report = ledger.artifact(verification.report_artifact_id or "")
    notes = {
        build.commit_id or "": build_note(proposal, build, packet)
        + "\n"
        + verification_note(verification, report),
        p.merge_commit: promotion_note(p),
    }
    return notes, f"kavi: notes for {p.tag_name}\n\nKavi-Promotion: {p.id}\n"


def restore_tag(forge: Forge, p: Promotion, signer: SshSigner) -> None:
    """Re-create a promotion's missing tag (``doctor --repair``, with a trusted key)."""
    from kavi.forge.trust import forge_identity
    from kavi.gitstore.objects import write_signed_tag
    from kavi.gitstore.repo import ZERO_OID

    repo = forge.repo
    tag = write_signed_tag(
        repo,
        name=p.tag_name,
        target=p.merge_commit,
        message=tag_message(p, repo.commit_tree(p.merge_commit), forge_identity(forge)),
        tagger=repo.committer(),
        signer=signer,
    )
    repo.set_ref(f"refs/tags/{p.tag_name}", tag, message="kavi: promotion tag", old=ZERO_OID)


def describe_plan(plan: PromotionPlan) -> str:
    v = plan.verification
    gates = ", ".join(f"{n} {'✓' if g.ok else '✗'}" for n, g in v.gates.items())
    lines = [
        f"Promote {plan.proposal.name} v{plan.version} into {plan.target_branch}:",
        f"  build:        {plan.build.id[:8]} ({plan.build.branch_name} @ {plan.build_commit[:12]})",
        f"  verification: {v.id[:8]} PASSED at {v.created_at[:19]} — {gates}",
        f"  files:        {', '.join(plan.files)}",
        f"  tag:          {plan.tag_name}",
        f"  signed by:    {plan.principal} ({plan.signer.fingerprint})",
        "  changes:",
    ]
    width = max((len(path) for path, _a, _d in plan.diffstat), default=0)
    for path, added, deleted in plan.diffstat:
        bar = "+" * min(added, 40) + "-" * min(deleted, 40)
        lines.append(f"    {path:<{width}} | {added + deleted:4} {bar}")
    registry = next((f for f in plan.files if f.endswith("/registry.yaml") or f == "registry.yaml"), None)
    if registry and registry not in {p for p, _a, _d in plan.diffstat}:
        lines.append(f"    {registry:<{width}} | (derived from the ledger, written by the merge)")
    plus = sum(a for _p, a, _d in plan.diffstat)
    minus = sum(d for _p, _a, d in plan.diffstat)
    lines.append(f"    {len(plan.diffstat)} file(s) changed, {plus} insertion(s)(+), {minus} deletion(s)(-)")
    lines.append(f"Full diff: {diff_command(plan)}")
    return "\n".join(lines)


def diff_command(plan: PromotionPlan) -> str:
    """The git command that shows exactly what the merge brings into the target branch."""
    return f"git diff {plan.target_tip[:12]}...{plan.build_commit[:12]}"
