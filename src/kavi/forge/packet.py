"""The frozen BUILD_PACKET: everything a backend is told for one build attempt.

A packet is epistemically closed (seed decision D009): the spec, the I/O schema,
the skill contract, the policy constraints, the two allowed paths and the base
commit. Its BLAKE3 is recorded in the ledger and in the build commit's trailers.

BUILD_PACKET_(N+1) also carries what attempt N taught (:class:`Feedback`): its
classified findings with ``file:line`` and the gates' own words, the advisory
model's advice (marked as advice), the human's hint, and the files it wrote.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kavi.forge.propose import io_table
from kavi.forge.spec import SkillPaths
from kavi.ledger.models import Advice, Fact, Proposal
from kavi.policy.contract import SKILL_CODE_RULES
from kavi.policy.model import Policy

PACKET_FILE = "KAVI_BUILD_PACKET.md"
# Bounds that keep a packet well inside one command-line argument (the claude backend
# passes it with -p; Linux allows 128 kB per argument).
MAX_FILE_CHARS = 20_000  # a previous attempt's file quoted in full up to this size
MAX_FACTS = 60
FINDINGS_HEADING = "### Findings (Kavi's gates — facts)"


@dataclass(frozen=True)
class Feedback:
    """What the previous attempt left for the next one."""

    attempt: int
    build_id: str
    outcome: str  # "build FAILED", "verification FAILED: mypy", "verification PASSED", …
    kind: str | None = None  # the primary failure kind, when it failed
    facts: list[Fact] = field(default_factory=list)
    advice: Advice | None = None
    hints: list[str] = field(default_factory=list)
    files: list[tuple[str, str]] = field(default_factory=list)  # (path, text) it wrote
    research_id: str | None = None


def _fence(text: str) -> str:
    run = 3
    while "`" * run in text:
        run += 1
    return "`" * run


def render_feedback(fb: Feedback) -> list[str]:
    title = f"## Previous attempt ({fb.attempt}: {fb.outcome}" + (f" — {fb.kind})" if fb.kind else ")")
    lines = ["", title, ""]
    if fb.facts:
        lines += [
            f"Attempt {fb.attempt} (build `{fb.build_id[:8]}`) failed. Fix exactly these findings and keep "
            "everything else that worked.",
            "",
            FINDINGS_HEADING,
            "",
        ]
        listed = fb.facts[:MAX_FACTS]
        for f in listed:
            rule = f" [{f.rule}]" if f.rule else ""
            lines.append(f"- `{f.where}` {f.gate}{rule}: {f.message[:500]}")
        if len(fb.facts) > len(listed):
            lines.append(f"- … and {len(fb.facts) - len(listed)} more of the same attempt")
        words = "\n".join(f.words[:500] for f in listed)
        fence = _fence(words)
        lines += ["", "In the gates' own words:", "", f"{fence}text", words, fence]
    else:
        lines.append(f"Attempt {fb.attempt} (build `{fb.build_id[:8]}`): {fb.outcome}.")
    if fb.advice is not None:
        a = fb.advice
        lines += [
            "",
            f"### Advice (from the advisory model {a.model}; suggestions, not facts — "
            "the packet above rules)",
            "",
        ]
        if a.diagnosis:
            lines += [f"> {a.diagnosis}", ""]
        lines += [f"- {step}" for step in a.steps]
    if fb.hints:
        lines += ["", "### Hint from a human", ""]
        for hint in fb.hints:
            lines += [f"> {line}" for line in hint.splitlines() or [""]]
    for path, text in fb.files:
        shown = text if len(text) <= MAX_FILE_CHARS else text[:MAX_FILE_CHARS] + "\n# … (cut by Kavi)\n"
        fence = _fence(shown)
        lines += [
            "",
            f"### `{path}` as attempt {fb.attempt} wrote it",
            "",
            f"{fence}python",
            shown.rstrip("\n"),
            fence,
        ]
    return lines


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
    feedback: Feedback | None,
) -> str:
    from kavi.confine import capabilities
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
        "## What the code may do when it runs (enforced by the operating system)",
        "",
        f"This skill is `{proposal.side_effect_class.value}`; its tests are the generated-test column. "
        "Anything else fails: a path outside these roots does not exist, a connection without "
        "network is refused, a limit ends the run. Resolve input paths with "
        "`ctx.resolve_read_path(...)` / `ctx.resolve_write_path(...)`.",
        "",
        capabilities.table_markdown(),
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
    if feedback is not None:
        sections += render_feedback(feedback)
    return "\n".join(sections) + "\n"
