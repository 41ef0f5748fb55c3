"""Load a TRUSTED skill from exactly the bytes that were verified and approved.

The ledger says which promotion is in force; ``registry.yaml`` must agree with it;
the skill file's SHA-256 and BLAKE3 must equal the promotion record's. Exactly the
bytes that were hashed are handed to the confined worker (:mod:`kavi.confine.worker`),
which builds the module from them (never from the file), so nothing can change between
check and use. Kavi's own process never loads a skill. Any mismatch is a
:class:`~kavi.errors.TrustError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kavi.errors import NotFoundError, TrustError
from kavi.forge.context import Forge
from kavi.hashing import blake3_hex, sha256_hex
from kavi.ledger.models import Promotion, Proposal
from kavi.ledger.states import ProposalStatus


@dataclass(frozen=True)
class TrustedSkill:
    promotion: Promotion
    proposal: Proposal
    source: bytes
    path: Path


def find_trusted(forge: Forge, name: str) -> TrustedSkill:
    ledger = forge.ledger
    promotion = ledger.current_promotion(name)
    if promotion is None:
        revoked = ledger.revocations(name)
        if revoked:
            raise TrustError(
                f"skill {name!r} was revoked ({revoked[-1].reason or 'no reason given'})",
                why=f"revoked by {revoked[-1].revoked_by} at {revoked[-1].created_at[:19]}",
                remedy="propose, build, verify and promote a new version to use it again",
            )
        proposals = ledger.proposals_named(name)
        if proposals:
            raise TrustError(
                f"skill {name!r} is not TRUSTED (latest proposal is {proposals[-1].status.value})",
                why="only promoted skills may run (invariant 3)",
                remedy=f"verify and promote it: `git kavi promote-skill {proposals[-1].id[:8]}`",
            )
        raise NotFoundError(f"no skill named {name!r}", remedy="list them with `git kavi list-skills`")
    proposal = ledger.proposal(promotion.proposal_id)
    if proposal.status is not ProposalStatus.TRUSTED:
        raise TrustError(f"skill {name!r} is {proposal.status.value}, not TRUSTED")
    return TrustedSkill(promotion, proposal, b"", forge.workdir / promotion.skill_path)


def check_registry(forge: Forge, skill: TrustedSkill) -> None:
    """``registry.yaml`` must say what the ledger says about this skill."""
    from kavi.forge.registry import entry_for, parse_registry

    rel = f"{forge.config.skills_dir}/registry.yaml"
    path = forge.workdir / rel
    if _registry_is_the_last_written(forge, path):
        return  # byte-identical to what the last promotion/revocation wrote from the ledger
    if not path.exists():
        raise TrustError(
            f"{rel} is missing but the ledger has {skill.promotion.skill_name} as TRUSTED",
            remedy="restore it from the target branch (`git checkout -- {rel}`)".replace("{rel}", rel),
        )
    registry = parse_registry(path.read_text(encoding="utf-8"), source=rel)
    expected = entry_for(skill.promotion, skill.proposal)
    found = registry.skills.get(expected.name)
    if found is None:
        raise TrustError(
            f"{rel} has no entry for {expected.name}, but the ledger has it TRUSTED as "
            f"v{expected.version} ({expected.tag})",
            why="registry.yaml and the ledger disagree (the ledger wins, but Kavi will not guess)",
            remedy=f"restore {rel} from the target branch, or run `git kavi doctor`",
        )
    if found != expected:
        ours, theirs = expected.model_dump(), found.model_dump()
        diffs = [f"{k}: ledger={ours[k]!r} registry={theirs[k]!r}" for k in ours if ours[k] != theirs[k]]
        raise TrustError(
            f"{rel} disagrees with the ledger about {expected.name}",
            why="; ".join(diffs[:5]),
            remedy=f"restore {rel} from the target branch, or run `git kavi doctor`",
        )


def _registry_is_the_last_written(forge: Forge, path: Path) -> bool:
    """Is ``path`` exactly the registry the ledger's latest registry-writing event wrote?"""
    try:
        data = path.read_bytes()
    except OSError:
        return False
    return forge.ledger.wrote_registry(data)


def read_verified_source(skill: TrustedSkill) -> TrustedSkill:
    try:
        data = skill.path.read_bytes()
    except OSError as exc:
        raise TrustError(
            f"cannot read {skill.promotion.skill_path}: {exc.strerror}",
            remedy="restore it from the target branch",
        ) from None
    p = skill.promotion
    if sha256_hex(data) != p.skill_sha256 or blake3_hex(data) != p.skill_blake3:
        raise TrustError(
            f"{p.skill_path} does not match what was promoted (v{p.version}, {p.tag_name})",
            why=f"sha256 is {sha256_hex(data)[:16]}…, the promotion record says {p.skill_sha256[:16]}…",
            remedy=f"restore the approved bytes: `git checkout {p.tag_name} -- {p.skill_path}`",
        )
    return TrustedSkill(skill.promotion, skill.proposal, data, skill.path)
