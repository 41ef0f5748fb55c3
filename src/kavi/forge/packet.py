"""The frozen BUILD_PACKET: everything a backend is told for one build attempt.

A packet is epistemically closed (seed decision D009): the spec, the I/O schema,
the skill contract, the policy constraints, the two allowed paths and the base
commit. Its BLAKE3 is recorded in the ledger and in the build commit's trailers.
"""

from __future__ import annotations

from kavi.forge.propose import io_table
from kavi.forge.spec import SkillPaths
from kavi.ledger.models import Build, Proposal
from kavi.policy.contract import SKILL_CODE_RULES
from kavi.policy.model import Policy

PACKET_FILE = "KAVI_BUILD_PACKET.md"


def _model_block(class_name: str, base: str, fields: dict[str, str]) -> str:
    lines = [f"class {class_name}({base}):"]
    if not fields:
        lines.append("    pass")
    for name, type_text in fields.items():
        lines.append(f"    {name}: {type_text}")  # the vocabulary is valid Python
    return "\n".join(lines)


def contract_source() -> str:
    """The source of the public skill API, quoted verbatim into every packet."""
    import inspect

    from kavi.skills import base as skill_base

    parts = [
        inspect.getsource(obj).rstrip()
        for obj in (
            skill_base.SkillInput,
            skill_base.SkillOutput,
            skill_base.SkillContext,
            skill_base.BaseSkill,
        )
    ]
    return "\n\n\n".join(parts)


def render_packet(
    *,
    proposal: Proposal,
    paths: SkillPaths,
    policy: Policy,
    base_commit: str,
    target_branch: str,
    attempt: int,
    previous: Build | None,
) -> str:
    from kavi.skills import base as skill_base

    stem = paths.class_name[: -len("Skill")]
    input_cls, output_cls = f"{stem}Input", f"{stem}Output"
    scanner = policy.scanner
    secrets = ", ".join(f"`{s}`" for s in proposal.required_secrets) or "none"
    sections = [
        f"# BUILD_PACKET_{attempt} {proposal.name}",
        "",
        f"Frozen instructions for build attempt {attempt} of proposal `{proposal.id}`.",
        "Everything you need is in this packet; do not look for other information.",
        "",
        "## The skill",
        "",
        f"- name: `{proposal.name}`",
        f"- description: {proposal.description}",
        f"- side-effect class: `{proposal.side_effect_class.value}`",
        f"- secrets it may read from `ctx.secrets`: {secrets}",
        "",
        "## Write exactly these two files — nothing else",
        "",
        f"1. `{paths.skill_file}` — defines exactly one skill class `{paths.class_name}` "
        f"(module `{paths.module}`), plus its models `{input_cls}` and `{output_cls}`.",
        f"2. `{paths.test_file}` — pytest tests for it; import it as "
        f"`from {paths.module} import {paths.class_name}, {input_cls}, {output_cls}`.",
        "",
        "Creating, deleting, renaming or changing the mode of any other file fails the build.",
        "",
        "## I/O schema (field names and types must match exactly)",
        "",
        io_table(proposal.io_schema),
        "",
        "```python",
        _model_block(input_cls, "SkillInput", proposal.io_schema.get("input", {})),
        "",
        "",
        _model_block(output_cls, "SkillOutput", proposal.io_schema.get("output", {})),
        "```",
        "",
        "## The skill contract (`kavi.skills.base`)",
        "",
        "```text",
        (skill_base.__doc__ or "").strip(),
        "```",
        "",
        "```python",
        contract_source(),
        "```",
        "",
        f"Set `side_effect_class = SideEffect.{proposal.side_effect_class.value}` and "
        f"`required_secrets = ({', '.join(repr(s) for s in proposal.required_secrets)}"
        f"{',' if len(proposal.required_secrets) == 1 else ''})`.",
        "",
        "## Policy constraints (checked statically, then enforced at run time)",
        "",
        f"- forbidden imports: {', '.join(f'`{m}`' for m in scanner.forbidden_imports)}",
        f"- forbidden calls: {', '.join(f'`{c}`' for c in scanner.forbidden_calls)}",
        "- no dynamic code: `eval`, `exec`, `compile`, `__import__`, `importlib` loaders, "
        "`getattr` tricks, `globals()`/`vars()` lookups",
        f"- network: {'allowed' if scanner.network else 'off (no socket, http, urllib, …)'}",
        f"- writes: only below `ctx.resolve_write_path(...)` (allowed write paths: "
        f"{', '.join(f'`{p}`' for p in policy.runtime.allowed_write_paths)})",
        "- tests run under a runtime guard: no subprocesses, no sockets, writes only in "
        "pytest's `tmp_path`; build a `SkillContext(vault_root=tmp_path, "
        "allowed_write_paths=(tmp_path,))` for the skill",
        "",
        "## What skill code may do (the policy scan checks it)",
        "",
        *SKILL_CODE_RULES,
        "",
        "## What will be checked",
        "",
        "1. scope: only the two files above changed (regular files, mode 100644)",
        "2. policy scan of both files",
        "3. invariants: the class, its attributes, side-effect class and the I/O schema",
        "4. `ruff check` on both files",
        f"5. `mypy --strict` on `{paths.skill_file}` (type every function)",
        f"6. `pytest {paths.test_file}`",
        "",
        "## Base",
        "",
        f"- base commit: `{base_commit}` (branch `{target_branch}`)",
    ]
    if previous is not None:
        sections += [
            "",
            f"## Previous attempt ({previous.attempt_number}: {previous.status.value})",
            "",
            previous.summary or "(no summary)",
        ]
        for v in previous.violations:
            sections.append(f"- `{v.path}`: {v.reason}")
    return "\n".join(sections) + "\n"
