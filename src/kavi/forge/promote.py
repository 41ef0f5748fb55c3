"""``promote-skill``: a signed merge by the user, with its provenance mirrored into git.

:func:`plan_promotion` checks everything and writes nothing: a PASSED verification of
the build branch's *current* tip, a trusted signing key, a conflict-free merge, a
working tree that can take the result, a free tag name. :func:`promote` then needs an
:class:`~kavi.cli.approval.Approval` for exactly that plan and performs, in order:

1. ``merge``  — signed merge commit ``[target, build]`` whose tree also updates
   ``registry.yaml``; checkout (SAFE, never overwriting local or ignored files), then
   the branch ref moves;
2. ``tag``    — signed annotated tag ``kavi/<name>/v<N>`` on the merge;
3. ``ledger`` — PROMOTION_RECORD artifact, promotion row, status TRUSTED (older
   versions SUPERSEDED);
4. ``notes``  — signed notes: build + verification on the build commit, promotion on
   the merge;
5. ``mirror`` — every not-yet-mirrored ledger event onto ``refs/kavi/ledger``.

A journal (``<git-common-dir>/kavi/promotion-pending.json``) records the plan and each
finished step, so ``git kavi doctor`` can name the exact inconsistency after a crash and
``git kavi doctor --repair`` can finish the promotion (or roll it back if the merge
never landed).
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from kavi.clock import now_iso
from kavi.errors import ConflictError, StateError, TrustError
from kavi.forge.context import Forge
from kavi.forge.spec import skill_paths
from kavi.hashing import blake3_hex, canonical_json, sha256_hex
from kavi.ledger.models import (
    ArtifactKind,
    Build,
    Promotion,
    Proposal,
    Verification,
    VerificationStatus,
)
from kavi.ledger.reducer import EventKind
from kavi.ledger.states import ProposalStatus
from kavi.sshsig import SshSigner

if TYPE_CHECKING:
    from kavi.cli.approval import Approval

PENDING_FILE = "promotion-pending.json"
STEPS = ("merge", "tag", "ledger", "notes", "mirror")
FAILPOINT_ENV = "KAVI_FAILPOINT"  # testing only: "after-<step>" kills the process there


def failpoint(name: str) -> None:
    """Simulate a crash (``kill -9``) at a named point; used by the crash-safety tests."""
    if os.environ.get(FAILPOINT_ENV) == name:
        os._exit(137)


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


class PendingPromotion(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    promotion: Promotion
    old_target: str
    checkout: bool
    steps: list[str] = []


def pending_path(forge: Forge) -> Path:
    return forge.kavi_dir / PENDING_FILE


def read_pending(forge: Forge) -> PendingPromotion | None:
    path = pending_path(forge)
    if not path.exists():
        return None
    return PendingPromotion.model_validate_json(path.read_text())


def write_pending(forge: Forge, pending: PendingPromotion) -> None:
    from kavi.artifacts.vault import atomic_write

    atomic_write(pending_path(forge), pending.model_dump_json(indent=2).encode())


def _latest_passed(forge: Forge, proposal: Proposal) -> Verification | None:
    passed = [v for v in forge.ledger.verifications_for(proposal.id) if v.status is VerificationStatus.PASSED]
    return passed[-1] if passed else None


def plan_promotion(forge: Forge, proposal_ref: str, signer: SshSigner) -> PromotionPlan:
    from kavi.signing import trusted_principal

    ledger = forge.ledger
    if read_pending(forge) is not None:
        raise StateError(
            "an earlier promotion did not finish",
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
    merged, conflicts = repo.merge_commits(target_tip, tip)
    if merged is None:
        raise ConflictError(
            f"merging {build.branch_name} into {target} conflicts",
            why="conflicting paths: " + ", ".join(conflicts),
            remedy="rebuild the skill on the current target branch",
        )
    diffstat = repo.diff_stat(repo.commit_tree(target_tip), merged)
    files = sorted({d.path for d in repo.diff_raw(repo.commit_tree(target_tip), merged)})
    files = sorted({*files, f"{config.skills_dir}/registry.yaml"})
    checkout = repo.head_branch() == target
    if checkout:
        dirty = repo.staged_paths(files) + [p for p in repo.dirty_paths() if p in files]
        in_way = sorted(set(dirty) | set(repo.checkout_safely(merged, dry_run=True)))
        registry_path = f"{config.skills_dir}/registry.yaml"
        if (forge.workdir / registry_path).exists() and repo.entry(target_tip, registry_path) is None:
            in_way.append(registry_path)
        if in_way:
            raise ConflictError(
                "local changes are in the way of the promotion: " + ", ".join(sorted(set(in_way))),
                why="the merge would overwrite these files in your working tree",
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


def promote(forge: Forge, plan: PromotionPlan, approval: Approval) -> PromotionOutcome:
    from kavi.cli.approval import require
    from kavi.forge.registry import derive, render_registry
    from kavi.policy.invariants import model_names

    require(approval, plan.digest, "promotion")
    repo = forge.repo
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
    registry_text = render_registry(derive(forge.ledger, extra=(promotion, plan.proposal)))
    registry_blob = repo.write_blob(registry_text.encode("utf-8"))
    registry_path = f"{config.skills_dir}/registry.yaml"
    tree = repo.update_tree(plan.merge_tree, {registry_path: (0o100644, registry_blob)})
    promotion = promotion.model_copy(update={"registry_blob": registry_blob})
    message = (
        f"kavi: promote {promotion.skill_name} v{promotion.version}\n\n"
        f"Merge {plan.build.branch_name} (build {plan.build.id[:8]}, verified "
        f"{plan.verification.id[:8]}) into {plan.target_branch}, approved by {plan.principal} "
        f"({approval.method}).\n\n"
    )
    from kavi.forge.records import promotion_trailers
    from kavi.gitstore.objects import format_trailers

    message += format_trailers(promotion_trailers(promotion))
    merge = repo.write_commit(
        tree=tree, parents=[plan.target_tip, plan.build_commit], message=message, signer=plan.signer
    )
    promotion = promotion.model_copy(update={"merge_commit": merge})
    pending = PendingPromotion(promotion=promotion, old_target=plan.target_tip, checkout=plan.checkout)
    write_pending(forge, pending)
    try:
        land_merge(forge, pending)
    except BaseException:
        pending_path(forge).unlink(missing_ok=True)
        raise
    failpoint("after-merge")
    return finish(forge, pending, plan.signer)


def land_merge(forge: Forge, pending: PendingPromotion) -> None:
    """Step 1: update the checkout safely, then move the target branch."""
    repo = forge.repo
    p = pending.promotion
    if pending.checkout and repo.head_branch() == p.target_branch:
        conflicts = repo.checkout_safely(p.merge_commit)
        if conflicts:
            raise ConflictError(
                "local changes are in the way of the promotion: " + ", ".join(conflicts),
                why="nothing was changed: the checkout would overwrite these files",
                remedy="commit, stash or move them away, then promote again",
            )
    repo.set_ref(
        f"refs/heads/{p.target_branch}",
        p.merge_commit,
        message=f"kavi: promote {p.skill_name} v{p.version}",
        old=pending.old_target,
    )
    pending.steps.append("merge")
    write_pending(forge, pending)


def finish(forge: Forge, pending: PendingPromotion, signer: SshSigner) -> PromotionOutcome:
    """Steps 2–5, each skipped if already done (used by promote and doctor --repair)."""
    from kavi.forge.sync import mirror_pending

    p = pending.promotion
    if "tag" not in pending.steps:
        _tag(forge, p, signer)
        pending.steps.append("tag")
        write_pending(forge, pending)
        failpoint("after-tag")
    if "ledger" not in pending.steps:
        _record(forge, p)
        pending.steps.append("ledger")
        write_pending(forge, pending)
        failpoint("after-ledger")
    if "notes" not in pending.steps:
        _notes(forge, p, signer)
        pending.steps.append("notes")
        write_pending(forge, pending)
        failpoint("after-notes")
    mirrored = mirror_pending(forge, signer)
    pending_path(forge).unlink(missing_ok=True)
    return PromotionOutcome(promotion=forge.ledger.promotions(p.skill_name)[-1], mirrored=mirrored)


def tag_message(p: Promotion, tree: str, forge_id: str) -> str:
    from kavi.forge.records import promotion_trailers
    from kavi.gitstore.objects import format_trailers

    return f"Kavi promotion: {p.skill_name} v{p.version}\n\n" + format_trailers(
        {**promotion_trailers(p), "Kavi-Merge": p.merge_commit, "Kavi-Tree": tree, "Kavi-Forge": forge_id}
    )


def _tag(forge: Forge, p: Promotion, signer: SshSigner) -> None:
    from kavi.forge.trust import forge_identity
    from kavi.gitstore.objects import read_tag, write_signed_tag

    repo = forge.repo
    ref = f"refs/tags/{p.tag_name}"
    existing = repo.ref_target(ref)
    if existing is not None:
        info = read_tag(repo, existing)
        if info is not None and info.target == p.merge_commit:
            return
        raise TrustError(f"tag {p.tag_name} exists and points elsewhere", remedy="investigate with git show")
    tag = write_signed_tag(
        repo,
        name=p.tag_name,
        target=p.merge_commit,
        message=tag_message(p, repo.commit_tree(p.merge_commit), forge_identity(forge)),
        tagger=repo.committer(),
        signer=signer,
    )
    repo.set_ref(ref, tag, message="kavi: promotion tag", old="0" * 40)


def _record(forge: Forge, p: Promotion) -> None:
    ledger = forge.ledger
    if any(x.id == p.id for x in ledger.promotions(p.skill_name)):
        return
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
    out = []
    for a in ledger.artifacts_for(related):
        out.append(artifact_stem(a.kind, p.skill_name, a.id, _attempt(ledger.build(p.build_id), a.kind)))
    return out


def _attempt(build: Build, kind: ArtifactKind) -> int | None:
    return build.attempt_number if kind in (ArtifactKind.BUILD_PACKET, ArtifactKind.BUILD_LOG) else None


def _notes(forge: Forge, p: Promotion, signer: SshSigner) -> None:
    from kavi.forge.identity import record_block
    from kavi.forge.init import NOTES_REF
    from kavi.forge.records import build_note, promotion_note, verification_note
    from kavi.gitstore.objects import add_notes, read_note

    repo = forge.repo
    ledger = forge.ledger
    existing = read_note(repo, repo.ref_target(NOTES_REF), p.merge_commit)
    if existing is not None and f"Kavi-Promotion: {p.id}" in existing:
        return
    build = ledger.build(p.build_id)
    proposal = ledger.proposal(p.proposal_id)
    verification = ledger.verification(p.verification_id)
    packet = ledger.artifact(build.packet_artifact_id or "")
    report = ledger.artifact(verification.report_artifact_id or "")
    build_text = build_note(proposal, build, packet) + "\n" + verification_note(verification, report)
    add_notes(
        repo,
        ref=NOTES_REF,
        notes={build.commit_id or "": build_text, p.merge_commit: promotion_note(p)},
        message=f"kavi: notes for {p.tag_name}\n\nKavi-Promotion: {p.id}\n" + record_block(forge, signer),
        signer=signer,
    )


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
