"""Proposal hygiene that retries make necessary: withdraw, prune, re-proposal warnings.

* ``withdraw``: a proposal nobody will pursue becomes REJECTED, with the reason recorded.
* ``prune``: build branches of failed or superseded attempts leave ``refs/heads``. Their
  commits stay reachable — each is kept under ``refs/kavi-attic/<branch>`` and named in a
  ``build.pruned`` ledger event — so ``git gc`` never collects them and the audit trail
  stays whole. The attic is local: it is not under ``refs/kavi/`` (which the server hook
  and the configured push refspecs reserve for the ledger mirror), so a failed attempt's
  code does not travel with ``git push``.
* re-proposing a TRUSTED skill's name with another side-effect class, I/O schema or
  secrets is allowed, and warned about.
"""

from __future__ import annotations

from dataclasses import dataclass

from kavi.errors import StateError, ValidationError
from kavi.forge.context import Forge
from kavi.ledger.models import Build, BuildStatus, Proposal
from kavi.ledger.reducer import EventKind
from kavi.ledger.states import TERMINAL, ProposalStatus

ATTIC = "refs/kavi-attic/"
WITHDRAWABLE = (ProposalStatus.PROPOSED, ProposalStatus.BUILT, ProposalStatus.VERIFIED)


def withdraw(forge: Forge, proposal_ref: str, reason: str) -> Proposal:
    reason = " ".join(reason.split())
    if not reason:
        raise ValidationError("a withdrawal needs a reason", remedy='say why with --reason "…"')
    if len(reason) > 2000:
        raise ValidationError("the reason is longer than 2000 characters")
    ledger = forge.ledger
    proposal = ledger.find_proposal(proposal_ref)
    if proposal.status not in WITHDRAWABLE:
        remedy = (
            f"revoke the TRUSTED skill instead: `git kavi revoke-skill {proposal.name}`"
            if proposal.status is ProposalStatus.TRUSTED
            else "nothing to do: it is already closed"
        )
        raise StateError(
            f"proposal {proposal.id[:8]} ({proposal.name}) is {proposal.status.value}",
            why="only PROPOSED, BUILT or VERIFIED proposals can be withdrawn",
            remedy=remedy,
        )
    with ledger.transaction(forge.actor) as txn:
        txn.record(
            EventKind.STATUS_CHANGED,
            proposal.id,
            {
                "proposal_id": proposal.id,
                "from": proposal.status.value,
                "to": ProposalStatus.REJECTED.value,
                "reason": f"withdrawn: {reason}",
            },
        )
    return ledger.proposal(proposal.id)


@dataclass(frozen=True)
class Pruned:
    build: Build
    proposal: Proposal
    kept_ref: str
    why: str


@dataclass(frozen=True)
class Skipped:
    build: Build
    why: str


def _candidate(proposal: Proposal, build: Build, current: str | None) -> str | None:
    """Why ``build``'s branch may go (None: it stays)."""
    if build.status is BuildStatus.STARTED or build.kept_ref is not None or build.commit_id is None:
        return None
    if build.status is BuildStatus.FAILED:
        return "failed attempt"
    if proposal.status in TERMINAL:
        return f"proposal {proposal.status.value}"
    if build.id != current:
        return "superseded by a later attempt"
    return None


def prune(
    forge: Forge, proposal_ref: str | None = None, *, dry_run: bool = False
) -> tuple[list[Pruned], list[Skipped]]:
    """Move the branches of failed and superseded attempts into the attic (all proposals,
    or one). The current candidate of an open proposal — its latest successful build — stays."""
    ledger = forge.ledger
    repo = forge.repo
    proposals = [ledger.find_proposal(proposal_ref)] if proposal_ref else ledger.proposals()
    pruned: list[Pruned] = []
    skipped: list[Skipped] = []
    for proposal in proposals:
        latest = ledger.latest_build(proposal.id, succeeded=True)
        current = latest.id if latest else None
        for build in ledger.builds_for(proposal.id):
            why = _candidate(proposal, build, current)
            if why is None:
                continue
            branch = f"refs/heads/{build.branch_name}"
            tip = repo.ref_target(branch)
            if tip is None:
                skipped.append(Skipped(build, f"branch {build.branch_name} no longer exists"))
                continue
            if tip != build.commit_id:
                skipped.append(
                    Skipped(
                        build,
                        f"branch {build.branch_name} moved since the build (now {tip[:12]}); left alone",
                    )
                )
                continue
            kept = ATTIC + build.branch_name
            pruned.append(Pruned(build, proposal, kept, why))
            if dry_run:
                continue
            existing = repo.ref_target(kept)
            if existing is not None and existing != tip:
                skipped.append(Skipped(build, f"{kept} already exists and points elsewhere"))
                pruned.pop()
                continue
            if existing is None:
                repo.set_ref(kept, tip, message=f"kavi prune: keep build {build.id[:8]}", old="0" * 40)
            with ledger.transaction(forge.actor) as txn:
                txn.record(
                    EventKind.BUILD_PRUNED,
                    build.id,
                    {"build_id": build.id, "branch": build.branch_name, "kept_ref": kept, "commit_id": tip},
                )
            repo.delete_ref(branch)
    return pruned, skipped


def reproposal_warnings(
    forge: Forge, name: str, side_effect: str, io_schema: dict[str, dict[str, str]], secrets: list[str]
) -> list[str]:
    """What a new proposal for ``name`` changes against its TRUSTED version, if any."""
    trusted = [p for p in forge.ledger.proposals() if p.name == name and p.status is ProposalStatus.TRUSTED]
    if not trusted:
        return []
    old = trusted[-1]
    warnings = []
    if old.side_effect_class.value != side_effect:
        warnings.append(
            f"{name} is TRUSTED as {old.side_effect_class.value}; this proposal declares {side_effect}"
        )
    if old.io_schema != io_schema:
        warnings.append(
            f"{name} is TRUSTED with another I/O schema ({_schema_change(old.io_schema, io_schema)})"
        )
    if sorted(old.required_secrets) != sorted(secrets):
        warnings.append(
            f"{name} is TRUSTED with secrets {old.required_secrets or 'none'}; this proposal declares "
            f"{sorted(secrets) or 'none'}"
        )
    return warnings


def _schema_change(old: dict[str, dict[str, str]], new: dict[str, dict[str, str]]) -> str:
    parts = []
    for side in ("input", "output"):
        a, b = old.get(side, {}), new.get(side, {})
        parts += [f"+{side}.{k}: {b[k]}" for k in b if k not in a]
        parts += [f"-{side}.{k}" for k in a if k not in b]
        parts += [f"{side}.{k}: {a[k]} → {b[k]}" for k in a if k in b and a[k] != b[k]]
    return ", ".join(parts)
