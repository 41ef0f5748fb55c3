"""``<skills_dir>/registry.yaml``: the human-readable view of TRUSTED skills.

Derived from the ledger (seed decision D002: ledger > registry.yaml > files) and
written inside each promotion or revocation commit. It can always be rebuilt with
:func:`render_registry`; ``run-skill`` refuses to run when it disagrees with the ledger.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from kavi.errors import TrustError
from kavi.ledger.models import Promotion, Proposal
from kavi.ledger.store import Ledger

HEADER = (
    "# Kavi skill registry: TRUSTED skills only.\n"
    "# Derived from the Kavi ledger and written by `git kavi promote-skill` / `revoke-skill`.\n"
    "# Do not edit: the ledger wins (ledger > registry.yaml > files), and the server hook\n"
    "# rejects any change to this file that is not a signed Kavi promotion or revocation.\n"
)


class RegistryEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    name: str
    version: int
    description: str
    module: str
    class_name: str
    file: str
    test_file: str
    input_model: str
    output_model: str
    side_effect_class: str
    required_secrets: list[str] = Field(default_factory=list)
    io_schema: dict[str, dict[str, str]]
    sha256: str
    blake3: str
    blob: str
    test_blob: str
    tag: str
    proposal_id: str
    promotion_id: str


class Registry(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    version: int = 1
    skills: dict[str, RegistryEntry] = Field(default_factory=dict)


def entry_for(promotion: Promotion, proposal: Proposal) -> RegistryEntry:
    return RegistryEntry(
        name=promotion.skill_name,
        version=promotion.version,
        description=proposal.description,
        module=promotion.module,
        class_name=promotion.class_name,
        file=promotion.skill_path,
        test_file=promotion.test_path,
        input_model=f"{promotion.module}.{promotion.input_model}",
        output_model=f"{promotion.module}.{promotion.output_model}",
        side_effect_class=proposal.side_effect_class.value,
        required_secrets=list(proposal.required_secrets),
        io_schema=proposal.io_schema,
        sha256=promotion.skill_sha256,
        blake3=promotion.skill_blake3,
        blob=promotion.skill_blob,
        test_blob=promotion.test_blob,
        tag=promotion.tag_name,
        proposal_id=promotion.proposal_id,
        promotion_id=promotion.id,
    )


def current_promotions(ledger: Ledger) -> dict[str, Promotion]:
    """The promotion in force for every skill that is TRUSTED now."""
    return ledger.current_promotions()


def derive(
    ledger: Ledger, extra: tuple[Promotion, Proposal] | None = None, drop: str | None = None
) -> Registry:
    """The registry the ledger implies (plus a promotion being made, minus a skill being revoked)."""
    entries = {
        name: entry_for(p, ledger.proposal(p.proposal_id)) for name, p in current_promotions(ledger).items()
    }
    if extra is not None:
        entries[extra[0].skill_name] = entry_for(*extra)
    if drop is not None:
        entries.pop(drop, None)
    return Registry(skills=dict(sorted(entries.items())))


def render_registry(registry: Registry) -> str:
    from kavi.yamlio import dump_yaml

    return HEADER + dump_yaml(registry.model_dump(mode="json"))


def parse_registry(text: str, *, source: str) -> Registry:
    from kavi.yamlio import load_yaml_model

    return load_yaml_model(Registry, text, source=source, error=TrustError)


_PREAMBLE = "version: 1\nskills:\n"


def registry_entries(
    text: str, *, source: str, blocks: dict[str, tuple[str, dict[str, object]] | None]
) -> dict[str, dict[str, object]]:
    """The registry's entries (name → validated entry as a dict), as :func:`parse_registry`
    gives them; raises :class:`TrustError` for an invalid registry.

    Judging a history reads one registry per promotion, each a little longer than the
    last: parsed whole, a thousand promotions cost minutes of YAML. A registry in the
    layout Kavi writes (header comments, ``version: 1``, ``skills:``, then one block per
    skill: a ``  name:`` line and lines indented deeper) is read block by block instead,
    each distinct block parsed once (``blocks``: the caller's cache, by block text). A
    block must parse alone to a mapping of exactly its own name — an alias to an anchor in
    another block cannot — and names must be unique; anything else (another layout,
    duplicate names, a block that does not stand alone) is parsed whole, as before.
    """
    found = _by_blocks(text, source=source, blocks=blocks)
    if found is not None:
        return found
    return {n: e.model_dump() for n, e in parse_registry(text, source=source).skills.items()}


def _by_blocks(
    text: str, *, source: str, blocks: dict[str, tuple[str, dict[str, object]] | None]
) -> dict[str, dict[str, object]] | None:
    """The entries read block by block; None: not in Kavi's layout (parse it whole)."""
    import re

    body = text
    while body.startswith("#"):
        end = body.find("\n")
        if end < 0:
            return None
        body = body[end + 1 :]
    if not body.startswith(_PREAMBLE) or "\r" in body or "\t" in body:
        return None
    lines = body[len(_PREAMBLE) :].split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    starts = [i for i, line in enumerate(lines) if not line.startswith("    ")]
    if not starts or starts[0] != 0:
        return None
    out: dict[str, dict[str, object]] = {}
    for k, start in enumerate(starts):
        head = re.fullmatch(r"  ([A-Za-z0-9_]+):", lines[start])
        if head is None or head.group(1) in out:
            return None
        block = "\n".join(lines[start : starts[k + 1] if k + 1 < len(starts) else len(lines)]) + "\n"
        if block not in blocks:
            blocks[block] = _parse_block(block, head.group(1), source=source)
        parsed = blocks[block]
        if parsed is None:
            return None
        out[parsed[0]] = parsed[1]
    return out


def _parse_block(block: str, name: str, *, source: str) -> tuple[str, dict[str, object]] | None:
    from pydantic import ValidationError

    from kavi.errors import KaviError
    from kavi.yamlio import load_yaml

    try:
        data = load_yaml(block, source=source, error=TrustError)
    except KaviError:
        return None  # e.g. an alias whose anchor is in another block: parse the whole file
    if not isinstance(data, dict) or list(data) != [name]:
        return None
    try:
        entry = RegistryEntry.model_validate(data[name])
    except ValidationError as exc:
        from kavi.yamlio import format_validation

        raise TrustError(
            f"{source} does not match the expected schema",
            why=f"skills.{name}: {format_validation(exc)}",
            remedy=f"correct {source} as the message says and commit it",
        ) from None
    return name, entry.model_dump()
