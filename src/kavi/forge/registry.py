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
