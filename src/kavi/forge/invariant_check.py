"""Standalone checks: ``check-invariants`` on a build, and the policy used by ``policy scan``."""

from __future__ import annotations

from typing import Any

from kavi.forge.context import Forge
from kavi.forge.spec import SkillPaths, skill_paths
from kavi.ledger.models import Proposal
from kavi.policy.invariants import Expectation
from kavi.policy.model import Policy


def expectation_for(proposal: Proposal, paths: SkillPaths) -> Expectation:
    """What the invariant checker must find in the skill module, from the proposal."""
    return Expectation(
        name=proposal.name,
        class_name=paths.class_name,
        side_effect=proposal.side_effect_class.value,
        io_schema=proposal.io_schema,
        secrets=tuple(proposal.required_secrets),
    )


def check_build(forge: Forge, proposal_ref: str, *, build_ref: str | None) -> dict[str, Any]:
    from kavi.forge.verify import choose_build
    from kavi.gitstore import gate
    from kavi.policy.invariants import check_skill, check_test

    proposal = forge.ledger.find_proposal(proposal_ref)
    build = choose_build(forge, proposal, build_ref)
    commit = build.commit_id or ""
    paths = skill_paths(forge.committed_config, proposal.name)
    expect = expectation_for(proposal, paths)
    repo = forge.repo
    skill = repo.file_bytes(commit, paths.skill_file) or b""
    test = repo.file_bytes(commit, paths.test_file) or b""
    findings = [
        f"{v.path}:0: {v.reason} [scope/{v.rule}]"
        for v in gate.check(repo, build.base_commit, commit, paths.allowed)
    ]
    findings += [str(f) for f in check_skill(skill, paths.skill_file, expect)]
    findings += [str(f) for f in check_test(test, paths.test_file)]
    return {
        "proposal_id": proposal.id,
        "name": proposal.name,
        "build_id": build.id,
        "commit": commit,
        "ok": not findings,
        "findings": findings,
    }


def scan_policy_for_cwd() -> tuple[Policy, str]:
    """The committed policy of the forge around the current directory, else the default."""
    from kavi.errors import KaviError

    try:
        forge = Forge.open()
        policy = forge.policy
    except KaviError:
        return Policy(), "default policy"
    return policy, f"policy of {forge.workdir}"
