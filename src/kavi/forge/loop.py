"""``git kavi forge``: build → verify → research → rebuild, until VERIFIED or a human is needed.

Iteration is across attempts, never within one: each rebuild is a new attempt whose
BUILD_PACKET_(N+1) carries what attempt N taught (findings, advice, hints). The loop
never promotes. It stops at:

* **VERIFIED** — an attempt passed every gate (``promote-skill`` is the human's step);
* an **escalation**, recorded in the ledger and shown by ``status`` and ``show``:
  a security-class finding (:mod:`kavi.forge.classify`), advice that would widen the
  proposal (:mod:`kavi.forge.widening`), the same failure kind ``research.repeat_limit``
  times in a row, or the ``--budget-usd`` spent;
* **EXHAUSTED** — ``--max-attempts`` builds made, none verified;
* **STOPPED** — the backend is unavailable, or Kavi refused a step (the error is shown);
* **INTERRUPTED** — Ctrl-C or SIGTERM, between or within attempts: the running attempt is
  recorded as it ended (a build as FAILED, an unfinished verification not at all), the
  run as INTERRUPTED, and nothing is left behind.

A proposal whose last run escalated is not forged again until a human says they
reviewed it (``--reviewed``); the new run names the run it follows.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kavi.clock import now_iso
from kavi.errors import KaviError, StateError, UsageError
from kavi.forge.build import BuildOutcome
from kavi.forge.context import Forge
from kavi.ledger.models import (
    Build,
    BuildStatus,
    Escalation,
    FailureKind,
    ForgeRun,
    ForgeStatus,
    Proposal,
    Research,
    Verification,
    VerificationStatus,
)
from kavi.ledger.reducer import EventKind
from kavi.ledger.states import ProposalStatus

Progress = Callable[[str], None]


def attempt_cost_usd(outcome: BuildOutcome) -> float:
    """What one attempt cost in USD — the one place the loop reads a cost: the build
    record's usage as the backend reported it (the files backend costs nothing; an
    openai-compatible server that reports no price counts as 0)."""
    return outcome.build.usage.cost_usd or 0.0


@dataclass
class Step:
    """One attempt of the run, as it went."""

    build: Build
    verification: Verification | None = None
    research: Research | None = None
    note_path: str | None = None


@dataclass
class ForgeOutcome:
    run: ForgeRun
    proposal: Proposal
    steps: list[Step] = field(default_factory=list)
    already_verified: bool = False


@dataclass
class _State:
    run: ForgeRun
    proposal: Proposal
    backend: str
    from_dir: Path | None
    timeout: float | None
    hint: str | None
    advise: bool
    progress: Progress
    steps: list[Step] = field(default_factory=list)
    kinds: list[FailureKind] = field(default_factory=list)
    cost: float = 0.0


class _Stop(Exception):
    def __init__(self, status: ForgeStatus, reason: str, escalation: Escalation | None = None) -> None:
        super().__init__(reason)
        self.status, self.reason, self.escalation = status, reason, escalation


def _check_start(forge: Forge, proposal: Proposal, reviewed: bool) -> str | None:
    """Close a run a dead process left RUNNING; refuse after an unreviewed escalation.
    Returns the id of the escalated run a human reviewed (if any)."""
    runs = forge.ledger.forge_runs(proposal.id)
    last = runs[-1] if runs else None
    if last is not None and last.status is ForgeStatus.RUNNING:
        _finish(
            forge, last, ForgeStatus.INTERRUPTED, "did not finish (the process ended without recording it)"
        )
        last = forge.ledger.forge_runs(proposal.id)[-1]
    if last is not None and last.status is ForgeStatus.ESCALATED:
        if not reviewed:
            short = proposal.id[:8]
            kind = last.escalation.value if last.escalation else "ESCALATED"
            raise StateError(
                f"the last forge run of {proposal.name} escalated: {kind} — {last.reason}",
                why="an escalation needs a human's review before the loop may continue",
                remedy=f"review it (`git kavi show {short}`), then run `git kavi forge {short} --reviewed`, "
                f"or withdraw the proposal (`git kavi withdraw {short} --reason 'escalated: {kind}'`)",
            )
        return last.id
    return None


def _finish(
    forge: Forge, run: ForgeRun, status: ForgeStatus, reason: str, escalation: Escalation | None = None
) -> ForgeRun:
    with forge.ledger.transaction(forge.actor) as txn:
        txn.record(
            EventKind.FORGE_FINISHED,
            run.id,
            {
                "forge_run_id": run.id,
                "status": status.value,
                "reason": reason,
                "escalation": escalation.value if escalation else None,
                "attempts": run.attempts,
                "researches": run.researches,
                "cost_usd": round(run.cost_usd, 6),
                "finished_at": now_iso(),
            },
        )
    return next(r for r in forge.ledger.forge_runs(run.proposal_id) if r.id == run.id)


def run_forge(
    forge: Forge,
    proposal_ref: str,
    *,
    backend: str | None = None,
    from_dir: Path | None = None,
    timeout: float | None = None,
    max_attempts: int | None = None,
    budget_usd: float | None = None,
    hint: str | None = None,
    advise: bool = True,
    reviewed: bool = False,
    progress: Progress = lambda _msg: None,
) -> ForgeOutcome:
    from kavi.forge.build import last_attempt_options, make_backend

    ledger = forge.ledger
    config = forge.committed_config
    proposal = ledger.find_proposal(proposal_ref)
    if proposal.status is ProposalStatus.VERIFIED:
        run = ForgeRun(
            id="",
            proposal_id=proposal.id,
            status=ForgeStatus.VERIFIED,
            backend="-",
            max_attempts=0,
            repeat_limit=config.research.repeat_limit,
            reason="already VERIFIED",
            started_at=now_iso(),
        )
        return ForgeOutcome(run, proposal, already_verified=True)
    if proposal.status not in (ProposalStatus.PROPOSED, ProposalStatus.BUILT):
        raise StateError(
            f"proposal {proposal.id[:8]} ({proposal.name}) is {proposal.status.value}",
            why="only PROPOSED or BUILT proposals can be forged",
            remedy="propose the skill again to forge a new version",
        )
    attempts_limit = max_attempts if max_attempts is not None else config.research.max_attempts
    if attempts_limit < 1:
        raise UsageError("--max-attempts must be at least 1")
    if budget_usd is not None and budget_usd <= 0:
        raise UsageError("--budget-usd must be more than 0")
    repeat = last_attempt_options(forge, proposal)
    if backend is None and repeat is not None:  # repeat the last attempt, like --retry
        backend = repeat.backend
        from_dir = from_dir if from_dir is not None else repeat.from_dir
        timeout = timeout if timeout is not None else repeat.timeout
    backend = backend or ("files" if from_dir is not None else config.backends.default)
    make_backend(forge, backend, from_dir)  # preflight: a bad backend fails before any state
    reviewed_run = _check_start(forge, proposal, reviewed)
    run = ForgeRun(
        id=str(uuid.uuid4()),
        proposal_id=proposal.id,
        backend=backend,
        max_attempts=attempts_limit,
        budget_usd=budget_usd,
        repeat_limit=config.research.repeat_limit,
        reviewed_run_id=reviewed_run,
        started_at=now_iso(),
    )
    with ledger.transaction(forge.actor) as txn:
        txn.put(EventKind.FORGE_STARTED, run)
    state = _State(run, proposal, backend, from_dir, timeout, hint, advise, progress)
    try:
        _loop(forge, state, reviewed=reviewed_run is not None)
    except _Stop as stop:
        state.run = _finish(forge, state.run, stop.status, stop.reason, stop.escalation)
    except BaseException as exc:  # Ctrl-C, SIGTERM, or a refused step: record the run, then re-raise
        interrupted = isinstance(exc, KeyboardInterrupt)
        status = ForgeStatus.INTERRUPTED if interrupted else ForgeStatus.STOPPED
        why = "interrupted" if interrupted else (exc.message if isinstance(exc, KaviError) else repr(exc))
        _finish(forge, state.run, status, why)
        raise
    return ForgeOutcome(state.run, ledger.proposal(proposal.id), state.steps)


def _record(state: _State, **changes: Any) -> None:
    state.run = state.run.model_copy(update=changes)


def _resume(forge: Forge, state: _State) -> Step | None:
    """Where the proposal stands: its latest finished attempt, with the verification and
    the research it already has (a new ``--hint`` asks for a new research)."""
    ledger = forge.ledger
    latest = ledger.latest_build(state.proposal.id)
    if latest is None or latest.status is BuildStatus.STARTED:
        return None
    step = Step(latest)
    checked = ledger.verifications_of_build(latest.id) if latest.status is BuildStatus.SUCCEEDED else []
    if checked:
        step.verification = checked[-1]
    if state.hint is None:
        wanted = step.verification.id if step.verification else None
        done = [r for r in ledger.researches_of_build(latest.id) if r.verification_id == wanted]
        if done:
            step.research = done[-1]
            _record(state, researches=[*state.run.researches, done[-1].id])
    return step


def _loop(forge: Forge, state: _State, *, reviewed: bool) -> None:
    """The state machine, from wherever the proposal stands: an unverified successful
    build is verified, an unresearched failure researched, and then a new attempt built."""
    step = _resume(forge, state)
    earlier = reviewed  # the latest attempt predates this run, and a human reviewed it
    while True:
        if step is not None:
            if step.build.status is BuildStatus.SUCCEEDED and step.verification is None:
                step.verification = _verify(forge, state, step.build)
                earlier = False  # a failure this run found
            if step.verification is not None and step.verification.status is VerificationStatus.PASSED:
                raise _Stop(ForgeStatus.VERIFIED, f"attempt {step.build.attempt_number} passed every gate")
            if step.research is None:
                step.research, step.note_path = _research(forge, state, step)
                _record(state, researches=[*state.run.researches, step.research.id])
            state.steps.append(step)
            _judge(state, step.research, earlier)
            earlier = False
        if len(state.run.attempts) >= state.run.max_attempts:
            raise _Stop(
                ForgeStatus.EXHAUSTED,
                f"{state.run.max_attempts} attempt(s) made, none verified (raise --max-attempts to go on)",
            )
        if state.run.budget_usd is not None and state.cost >= state.run.budget_usd:
            raise _Stop(
                ForgeStatus.ESCALATED,
                f"budget spent: ${state.cost:.4f} of ${state.run.budget_usd:.4f}",
                Escalation.BUDGET_SPENT,
            )
        step = Step(_build(forge, state))


def _judge(state: _State, research: Research, earlier: bool) -> None:
    """Escalate, stop or go on, after one failed attempt was researched. A failure from
    before a human's review was judged then: it only counts toward the repeat limit."""
    if research.kind is FailureKind.INTERRUPTED:
        return  # not the agent's failure
    if not earlier:
        if research.security:
            raise _Stop(
                ForgeStatus.ESCALATED,
                "security-class finding: " + "; ".join(research.security_reasons[:5]),
                Escalation.SECURITY,
            )
        if research.widening:
            raise _Stop(
                ForgeStatus.ESCALATED,
                "advice would widen the proposal: " + "; ".join(research.widening[:5]),
                Escalation.ADVICE_WIDENS,
            )
        if research.kind is FailureKind.BACKEND_UNAVAILABLE:
            detail = research.facts[0].message if research.facts else ""
            raise _Stop(ForgeStatus.STOPPED, f"the backend is unavailable: {detail}")
    state.kinds.append(research.kind)
    limit = state.run.repeat_limit
    if not earlier and len(state.kinds) >= limit and len(set(state.kinds[-limit:])) == 1:
        raise _Stop(
            ForgeStatus.ESCALATED,
            f"the same failure kind {research.kind.value} {limit} times in a row",
            Escalation.REPEATED_FAILURE,
        )


def _build(forge: Forge, state: _State) -> Build:
    from kavi.forge.build import build_skill

    n = len(state.run.attempts) + 1
    state.progress(f"forge: attempt {n} of {state.run.max_attempts} — building with {state.backend}")
    try:
        outcome = build_skill(
            forge,
            state.proposal.id,
            backend_name=state.backend,
            from_dir=state.from_dir,
            timeout=state.timeout,
            hint=state.hint,
            forge_run_id=state.run.id,
            progress=state.progress,
        )
    except BaseException:
        latest = forge.ledger.latest_build(state.proposal.id)  # an interrupted build is recorded
        if latest is not None and latest.options.forge_run_id == state.run.id:
            _record(state, attempts=[*state.run.attempts, latest.id])
        raise
    state.cost += attempt_cost_usd(outcome)
    _record(state, attempts=[*state.run.attempts, outcome.build.id], cost_usd=state.cost)
    state.progress(
        f"forge: build {outcome.build.id[:8]} {outcome.build.status.value}: {outcome.build.summary}"
    )
    return outcome.build


def _verify(forge: Forge, state: _State, build: Build) -> Verification:
    from kavi.forge.verify import verify_skill

    state.progress(f"forge: verifying attempt {build.attempt_number}")
    outcome = verify_skill(forge, state.proposal.id, build_ref=build.id, progress=state.progress)
    state.progress(f"forge: verification {outcome.verification.id[:8]} {outcome.verification.status.value}")
    return outcome.verification


def _research(forge: Forge, state: _State, step: Step) -> tuple[Research, str]:
    from kavi.forge.research import Subject, research_skill

    subject = Subject(state.proposal, step.build, step.verification)
    outcome = research_skill(forge, "", hint=state.hint, advise=state.advise, subject=subject)
    r = outcome.research
    where = next((f.where for f in r.facts if f.file), "-")
    state.progress(f"forge: attempt {step.build.attempt_number} failed: {r.kind.value} at {where}")
    state.progress(r.advice_notice)
    return r, outcome.note.path
