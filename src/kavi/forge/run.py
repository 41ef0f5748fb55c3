"""``run-skill``: run a TRUSTED skill — the exact approved bytes, fenced in, recorded.

Order: ledger lookup (TRUSTED only) → registry agrees with the ledger → source hash
equals the promotion record → runtime policy decision for the side-effect class →
input validated by the skill's input model → module built from the verified bytes and
``execute`` run under the runtime guard (writes only below ``allowed_write_paths``, no
subprocess, socket or dynamic code) → output validated by the output model → run
recorded in the ledger with a RUN_RECORD artifact. Refusals after the skill was
found are recorded too (status REFUSED or FAILED).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kavi.clock import now_iso
from kavi.errors import (
    GovernanceError,
    GuardViolation,
    KaviError,
    PolicyDenied,
    TrustError,
    ValidationError,
)
from kavi.forge.context import Forge
from kavi.ledger.models import ArtifactKind, Run, RunStatus
from kavi.ledger.reducer import EventKind
from kavi.policy.guard import GuardPolicy, guarded, read_violations  # bound before any skill runs
from kavi.policy.model import Decision
from kavi.skills.loader import TrustedSkill


@dataclass
class RunOutcome:
    run: Run
    output: dict[str, Any]
    artifact_path: str | None


def parse_input(text: str, *, source: str) -> dict[str, Any]:
    """A run's input: a JSON object within Kavi's input bounds (:mod:`kavi.inputs`)."""
    from kavi.inputs import parse_json

    data = parse_json(text, source=source)
    if not isinstance(data, dict):
        raise ValidationError(f"{source} must be a JSON object, got {type(data).__name__}")
    return data


def decide(forge: Forge, skill: TrustedSkill) -> tuple[Decision, str]:
    """First matching runtime rule wins; the engine only decides, it never edits inputs."""
    runtime = forge.policy.runtime
    effect = skill.proposal.side_effect_class
    for rule in runtime.rules:
        if rule.match.side_effect not in (None, effect):
            continue
        if rule.match.skill not in (None, skill.promotion.skill_name):
            continue
        return rule.decision, rule.reason or f"rule for {effect.value}"
    return runtime.default, "no rule matched; default decision"


def _write_roots(forge: Forge) -> tuple[Path, ...]:
    roots = []
    for rel in forge.policy.runtime.allowed_write_paths:
        p = Path(rel)
        roots.append((p if p.is_absolute() else forge.workdir / p).resolve())
    return tuple(roots)


def _secrets(skill: TrustedSkill) -> dict[str, str]:
    from kavi.secrets import secret_env_name

    out = {}
    for name in skill.proposal.required_secrets:
        var = secret_env_name(name)
        if var not in os.environ:
            raise PolicyDenied(
                f"skill {skill.promotion.skill_name} needs secret {name}, and {var} is not set",
                remedy=f"export {var}=… (it is only given to this TRUSTED skill)",
            )
        out[name] = os.environ[var]
    return out


def run_skill(forge: Forge, name: str, payload: dict[str, Any], *, approved: bool = False) -> RunOutcome:
    from kavi.skills.loader import check_registry, find_trusted, read_verified_source

    skill = find_trusted(forge, name)
    forge.ledger.require_writable()  # a run that cannot be recorded does not run at all
    started = now_iso()
    clock = time.monotonic()
    try:
        check_registry(forge, skill)
        skill = read_verified_source(skill)
        decision, reason = decide(forge, skill)
        effect = skill.proposal.side_effect_class.value
        if decision is Decision.DENY:
            raise PolicyDenied(
                f"runtime policy denies {effect} skills: {reason}",
                why=f"{skill.promotion.skill_name} declares side-effect class {effect}",
                remedy="change .kavi/policy.yaml (runtime.rules) with a signed governance commit",
            )
        if decision is Decision.REQUIRE_APPROVAL and not approved:
            raise PolicyDenied(
                f"runtime policy requires approval for {effect} skills: {reason}",
                remedy="re-run at a terminal with --approve (a person must approve each run)",
            )
        output = _execute(forge, skill, payload)
    except KaviError as exc:
        status = RunStatus.REFUSED if isinstance(exc, GovernanceError) else RunStatus.FAILED
        _record(forge, skill, status, payload, None, exc.message, started, clock)
        raise
    run, artifact = _record(forge, skill, RunStatus.SUCCEEDED, payload, output, None, started, clock)
    return RunOutcome(run=run, output=output, artifact_path=artifact)


def _execute(forge: Forge, skill: TrustedSkill, payload: dict[str, Any]) -> dict[str, Any]:
    from pydantic import BaseModel
    from pydantic import ValidationError as PydanticError

    from kavi.skills.base import BaseSkill, SkillContext
    from kavi.skills.loader import prepare_module
    from kavi.yamlio import format_validation

    p = skill.promotion
    roots = _write_roots(forge)
    for root in roots:
        root.mkdir(parents=True, exist_ok=True)
    guard = GuardPolicy(write_roots=roots)
    ctx = SkillContext(
        vault_root=(forge.workdir / forge.config.vault_dir).resolve(),
        allowed_write_paths=roots,
        secrets=_secrets(skill),
    )
    prepared = prepare_module(skill)
    with guarded(guard) as handle:
        module = prepared.load()
        cls = getattr(module, p.class_name, None)
        if not (isinstance(cls, type) and issubclass(cls, BaseSkill)):
            raise TrustError(f"{p.skill_path} does not define {p.class_name}")
        try:
            inp = cls.input_model.model_validate(payload)
        except PydanticError as exc:
            raise ValidationError(
                f"invalid input for {p.skill_name}",
                why=format_validation(exc),
                remedy=f"the input fields are: {json.dumps(skill.proposal.io_schema['input'])}",
            ) from None
        try:
            result = cls().execute(inp, ctx)
        except GuardViolation:
            raise _guard_error(read_violations(handle)) from None
        except KaviError:
            raise
        except Exception as exc:
            if read_violations(handle):
                raise _guard_error(read_violations(handle)) from None
            raise GovernanceError(
                f"{p.skill_name} raised {type(exc).__name__}: {exc}",
                code="KAVI-RUN-FAILED",
                remedy="see the skill's tests; report the failure to the skill's owner",
            ) from None
    if read_violations(handle):
        raise _guard_error(read_violations(handle))
    # re-validate from the raw field values: a model built with model_construct() or
    # mutated after construction gets no free pass
    data = dict(result) if isinstance(result, BaseModel) else result
    try:
        out = cls.output_model.model_validate(data)
    except PydanticError as exc:
        raise TrustError(
            f"{p.skill_name} returned output that does not match its output model",
            why=format_validation(exc),
            remedy="the skill is broken; revoke it or promote a fixed version",
        ) from None
    validated: dict[str, Any] = out.model_dump(mode="json")
    return validated


def _guard_error(violations: list[str]) -> GovernanceError:
    return GuardViolation(
        "the runtime guard refused what the skill tried: " + "; ".join(violations[:5]),
        why="TRUSTED skills may only write inside allowed_write_paths and never spawn processes, "
        "open sockets or run dynamic code",
        remedy="fix the skill (a new version goes through build, verify and promote again)",
    )


def _record(
    forge: Forge,
    skill: TrustedSkill,
    status: RunStatus,
    payload: dict[str, Any],
    output: dict[str, Any] | None,
    error: str | None,
    started: str,
    clock: float,
) -> tuple[Run, str | None]:
    p = skill.promotion
    run = Run(
        id=str(uuid.uuid4()),
        skill_name=p.skill_name,
        proposal_id=p.proposal_id,
        promotion_id=p.id,
        status=status,
        input=payload,
        output=output,
        error=error,
        duration_s=round(time.monotonic() - clock, 4),
        started_at=started,
        finished_at=now_iso(),
    )
    from kavi.secrets import secret_values

    vault = forge.vault(
        secret_values(os.environ, [f"KAVI_SECRET_{s}" for s in skill.proposal.required_secrets])
    )
    ledger = forge.ledger
    with vault.pending(), ledger.transaction(forge.actor) as txn:
        body = "\n".join(
            [
                f"- skill: `{p.skill_name}` v{p.version} ({p.tag_name})",
                f"- status: **{status.value}**",
                f"- duration: {run.duration_s:.3f}s",
                "",
                "## Input",
                "",
                "```json",
                json.dumps(payload, indent=2, sort_keys=True),
                "```",
                "",
                "## Output" if output is not None else "## Error",
                "",
                "```json" if output is not None else "```text",
                json.dumps(output, indent=2, sort_keys=True) if output is not None else (error or ""),
                "```",
            ]
        )
        artifact, _ = vault.write(
            ArtifactKind.RUN_RECORD,
            name=p.skill_name,
            related_id=run.id,
            title=f"RUN_RECORD {p.skill_name} v{p.version} — {status.value}",
            body=body,
            meta={"run_id": run.id, "promotion_id": p.id, "status": status.value},
        )
        txn.put(EventKind.ARTIFACT_RECORDED, artifact)
        run = run.model_copy(update={"artifact_id": artifact.id})
        txn.put(EventKind.RUN_RECORDED, run)
    return run, artifact.path
