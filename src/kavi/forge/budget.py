"""What a proposal's builds have cost together, and the per-proposal budget (D040).

Each build records what its backend reported (:class:`kavi.ledger.models.BuildUsage`);
:func:`spent` sums them over every attempt. ``proposal_budget_usd`` in
``.kavi/config.yaml`` caps that sum: a build that would start with the budget used up
is refused before anything is written, and a build that starts is given what is left as
its own cap (the claude backend's ``--max-budget-usd``), so one attempt cannot spend
much past it. Costs a backend does not report (an OpenAI-compatible server without a
``usage.cost``) count as zero.
"""

from __future__ import annotations

from collections.abc import Iterable

from kavi.config import ForgeConfig
from kavi.errors import GovernanceError
from kavi.ledger.models import Build, BuildUsage, Proposal


def spent(builds: Iterable[Build]) -> BuildUsage:
    """The sum of every build's usage (cost, turns, tokens, duration)."""
    total = BuildUsage()
    for build in builds:
        total = total + build.usage
    return total


def remaining(config: ForgeConfig, proposal: Proposal, builds: Iterable[Build]) -> float | None:
    """What a new build of ``proposal`` may still cost (None: no budget configured).

    Refuses (exit 1) when nothing is left."""
    budget = config.proposal_budget_usd
    if budget is None:
        return None
    used = spent(builds).cost_usd or 0.0
    left = budget - used
    if left <= 0:
        raise GovernanceError(
            f"proposal {proposal.id[:8]} ({proposal.name}) has used its budget: "
            f"${used:.4f} spent of ${budget:.2f}",
            why="proposal_budget_usd in .kavi/config.yaml caps what all builds of one proposal "
            "may cost together",
            remedy="raise proposal_budget_usd in .kavi/config.yaml (a governance change), or "
            "build from the files you have (`--backend files --from DIR`)",
            code="KAVI-BUDGET",
            details={"spent_usd": round(used, 6), "budget_usd": budget},
        )
    return left


def describe(usage: BuildUsage) -> str:
    """One line for people: ``$0.0421 · 5 turns · 12,034 in / 1,210 out tokens · 14.2s ·
    claude-sonnet-4-5 · Claude Code 2.1.197`` (what was not reported is left out)."""
    parts: list[str] = []
    if usage.cost_usd is not None:
        parts.append(f"${usage.cost_usd:.4f}")
    if usage.turns is not None:
        parts.append(f"{usage.turns} turn{'s' if usage.turns != 1 else ''}")
    if usage.input_tokens is not None or usage.output_tokens is not None:
        tokens = f"{usage.input_tokens or 0:,} in / {usage.output_tokens or 0:,} out tokens"
        read, written = usage.cache_read_tokens or 0, usage.cache_creation_tokens or 0
        if read or written:
            tokens += f" (cache: {read:,} read, {written:,} written)"
        parts.append(tokens)
    if usage.duration_s is not None:
        parts.append(f"{usage.duration_s:.1f}s")
    if usage.model:
        parts.append(usage.model)
    if usage.backend_version:
        parts.append(f"version {usage.backend_version}")
    return " · ".join(parts)
