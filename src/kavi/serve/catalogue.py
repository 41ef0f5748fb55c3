"""The tools a forge serves: one per TRUSTED skill that could run now, derived from the
ledger, the committed policy and the verified bytes — never from the skill's code.

:func:`build_catalogue` reads what ``run-skill`` would check (the promotion in force,
``registry.yaml``, the source hash, the runtime policy's decision, the declared secrets)
and turns each skill that passes into a :class:`ServedTool`: its name, a description
naming version, signer and source hash, the JSON Schemas of the proposal's declared I/O
models (:mod:`kavi.skills.schema_models`), and the annotations of its verified
side-effect class (:func:`kavi.confine.capabilities.tool_hints`). A skill that would be
refused is listed as :class:`Withheld` with the reason (``serve mcp --check`` shows both).

:func:`fingerprint` is the cheap watch: the target branch's commit (read from git's
files), and the size and modification time of the ledger, the configuration, the
registry and every skill file. The catalogue is rebuilt only when it changes.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kavi.confine.capabilities import ToolHints, tool_hints
from kavi.errors import KaviError
from kavi.forge.context import Forge

META = "dev.kavi/"  # prefix of Kavi's keys in a tool's ``_meta``


@dataclass(frozen=True)
class ServedTool:
    """One TRUSTED skill as a tool."""

    name: str
    title: str
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    hints: ToolHints
    side_effect: str
    version: int
    tag: str
    promotion_id: str
    sha256: str
    approved_by: str
    needs_approval: bool

    def wire(self) -> dict[str, Any]:
        """The tool as ``tools/list`` sends it (MCP field names)."""
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "inputSchema": self.input_schema,
            "outputSchema": self.output_schema,
            "annotations": {"title": self.title, **self.hints.as_annotations()},
            "_meta": {
                f"{META}sideEffect": self.side_effect,
                f"{META}version": self.version,
                f"{META}tag": self.tag,
                f"{META}promotionId": self.promotion_id,
                f"{META}sha256": self.sha256,
                f"{META}approval": "each call" if self.needs_approval else "none",
            },
        }


@dataclass(frozen=True)
class Withheld:
    """A TRUSTED skill that is not served, and why."""

    name: str
    reason: str


@dataclass(frozen=True)
class Catalogue:
    tools: tuple[ServedTool, ...] = ()
    withheld: tuple[Withheld, ...] = ()
    skill_paths: tuple[Path, ...] = field(default=(), compare=False)

    def find(self, name: str) -> ServedTool | None:
        return next((t for t in self.tools if t.name == name), None)

    def digest(self) -> str:
        """Changes exactly when what ``tools/list`` returns changes."""
        wire = json.dumps([t.wire() for t in self.tools], sort_keys=True)
        return hashlib.sha256(wire.encode()).hexdigest()


def build_catalogue(forge: Forge) -> Catalogue:
    from kavi.forge.registry import current_promotions
    from kavi.forge.run import decide
    from kavi.ledger.autoimport import ensure_ledger
    from kavi.policy.model import Decision
    from kavi.secrets import secret_env_name
    from kavi.skills.loader import TrustedSkill, check_registry, read_verified_source

    ensure_ledger(forge)
    ledger = forge.ledger
    tools: list[ServedTool] = []
    withheld: list[Withheld] = []
    paths: list[Path] = []
    for name, promotion in sorted(current_promotions(ledger).items()):
        proposal = ledger.proposal(promotion.proposal_id)
        skill = TrustedSkill(promotion, proposal, b"", forge.workdir / promotion.skill_path)
        paths.append(skill.path)
        try:
            check_registry(forge, skill)
            skill = read_verified_source(skill)
        except KaviError as exc:
            withheld.append(Withheld(name, exc.message))
            continue
        decision, reason = decide(forge, skill)
        if decision is Decision.DENY:
            withheld.append(Withheld(name, f"the runtime policy denies it: {reason}"))
            continue
        missing = [s for s in proposal.required_secrets if secret_env_name(s) not in os.environ]
        if missing:
            names = ", ".join(secret_env_name(s) for s in missing)
            withheld.append(Withheld(name, f"it needs {names}, which is not set where Kavi serves it"))
            continue
        tools.append(_tool(skill, needs_approval=decision is Decision.REQUIRE_APPROVAL))
    return Catalogue(tuple(tools), tuple(withheld), tuple(paths))


def _tool(skill: Any, *, needs_approval: bool) -> ServedTool:
    from kavi.skills.schema_models import io_models
    from kavi.textsafe import printable

    p, proposal = skill.promotion, skill.proposal
    effect = proposal.side_effect_class.value
    inp, out = io_models(proposal.io_schema)
    title = f"{p.skill_name} v{p.version} ({effect})"
    lines = [
        printable(proposal.description, multiline=False)[:1000],
        "",
        f"Kavi skill {p.skill_name} v{p.version} ({p.tag_name}), side-effect class {effect}, "
        f"promoted by {printable(p.approved_by)} (key {p.signing_key_fingerprint}), "
        f"source sha256 {p.skill_sha256[:16]}. Every call re-verifies the source hash, "
        "runs confined by the operating system and is recorded.",
    ]
    if needs_approval:
        lines.append("The runtime policy requires the user's approval of each call.")
    return ServedTool(
        name=p.skill_name,
        title=title,
        description="\n".join(lines),
        input_schema=_schema(inp, f"{p.skill_name} input"),
        output_schema=_schema(out, f"{p.skill_name} output"),
        hints=tool_hints(proposal.side_effect_class),
        side_effect=effect,
        version=p.version,
        tag=p.tag_name,
        promotion_id=p.id,
        sha256=p.skill_sha256,
        approved_by=p.approved_by,
        needs_approval=needs_approval,
    )


def _schema(model: Any, title: str) -> dict[str, Any]:
    schema: dict[str, Any] = model.model_json_schema()
    schema["title"] = title
    schema.setdefault("properties", {})
    schema["type"] = "object"
    return schema


def fingerprint(forge: Forge, skill_paths: tuple[Path, ...]) -> tuple[Any, ...]:
    """What changes when the catalogue may: cheap (no pygit2, no hashing, no queries)."""
    from kavi import cache
    from kavi.layout import CONFIG_FILE

    config = forge.workdir / CONFIG_FILE
    try:
        target = forge.config.target_branch
        registry = forge.workdir / forge.config.skills_dir / "registry.yaml"
    except KaviError:
        target, registry = "", config
    ledger = forge.location.ledger_path
    files = (config, registry, ledger, ledger.with_name(ledger.name + "-wal"), *skill_paths)
    return (cache.read_ref(forge.location.common_dir, f"refs/heads/{target}"), *map(_stat, files))


def _stat(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)
