"""``propose-skill``: record what a skill should be, before any code exists."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from kavi.clock import now_iso
from kavi.errors import ValidationError
from kavi.forge.context import Forge
from kavi.forge.spec import (
    parse_io_schema,
    skill_paths,
    validate_name,
    validate_secret_name,
)
from kavi.ledger.models import ArtifactKind, Proposal
from kavi.ledger.reducer import EventKind
from kavi.policy.model import SideEffect


def parse_side_effect(value: str) -> SideEffect:
    try:
        return SideEffect(value.strip().upper())
    except ValueError:
        allowed = ", ".join(s.value for s in SideEffect)
        raise ValidationError(
            f"unknown side-effect class {value!r}",
            why=f"the side-effect classes are: {allowed}",
            remedy="pass one of them with --side-effect",
        ) from None


def io_table(io_schema: dict[str, dict[str, str]]) -> str:
    lines = ["| side | field | type |", "|---|---|---|"]
    for side in ("input", "output"):
        for name, type_text in io_schema.get(side, {}).items():
            lines.append(f"| {side} | `{name}` | `{type_text}` |")
    return "\n".join(lines)


def propose(
    forge: Forge,
    *,
    name: str,
    description: str,
    side_effect: str,
    io_schema_json: str,
    secrets: Sequence[str] = (),
    warnings: list[str] | None = None,
) -> Proposal:
    """Record a proposal; what it changes against a TRUSTED skill of the same name is
    appended to ``warnings`` (it is allowed: a new version may change its contract)."""
    name = validate_name(name)
    description = " ".join(description.split())
    if not description:
        raise ValidationError(
            "the description is empty",
            remedy="say what the skill does with --desc",
        )
    if len(description) > 2000:
        raise ValidationError("the description is longer than 2000 characters")
    effect = parse_side_effect(side_effect)
    io_schema = parse_io_schema(io_schema_json)
    secret_names = sorted({validate_secret_name(s) for s in secrets})
    paths = skill_paths(forge.config, name)
    if warnings is not None:
        from kavi.forge.hygiene import reproposal_warnings

        warnings.extend(reproposal_warnings(forge, name, effect.value, io_schema, secret_names))

    proposal_id = str(uuid.uuid4())
    now = now_iso()
    body = "\n".join(
        [
            f"**Skill** `{name}` — {description}",
            "",
            f"- side-effect class: `{effect.value}`",
            f"- secrets: {', '.join(f'`{s}`' for s in secret_names) or 'none'}",
            f"- skill file: `{paths.skill_file}` (class `{paths.class_name}`)",
            f"- test file: `{paths.test_file}`",
            "",
            "## I/O schema",
            "",
            io_table(io_schema),
        ]
    )
    vault = forge.vault()
    with vault.pending(), forge.ledger.transaction(forge.actor) as txn:
        artifact, _ = vault.write(
            ArtifactKind.SKILL_SPEC,
            name=name,
            related_id=proposal_id,
            title=f"SKILL_SPEC {name}",
            body=body,
            meta={"proposal_id": proposal_id, "side_effect_class": effect.value},
        )
        txn.put(EventKind.ARTIFACT_RECORDED, artifact)
        proposal = Proposal(
            id=proposal_id,
            name=name,
            description=description,
            io_schema=io_schema,
            side_effect_class=effect,
            required_secrets=secret_names,
            spec_artifact_id=artifact.id,
            created_at=now,
            updated_at=now,
        )
        txn.put(EventKind.PROPOSAL_CREATED, proposal)
    return proposal
