"""Commands: research-skill, forge (the research → retry loop), withdraw, prune."""

from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from kavi.cli import output
from kavi.cli.cmd_forge import (
    BackendOpt,
    FormatOpt,
    FromOpt,
    HintOpt,
    TimeoutOpt,
    WaitOpt,
    holding,
    open_forge,
)
from kavi.cli.hints import kavi as hint
from kavi.cli.output import Format

if TYPE_CHECKING:
    from kavi.forge.loop import ForgeOutcome
    from kavi.ledger.models import Research

NoAdviseOpt = Annotated[
    bool, typer.Option("--no-advise", help="Deterministic findings only: do not ask the advisor.")
]


def research_lines(r: "Research", *, limit: int = 12) -> list[str]:
    lines = []
    for f in r.facts[:limit]:
        mark = "⚠" if f.security else "✗"
        rule = f" [{f.rule}]" if f.rule else ""
        lines.append(f"  {mark} {f.where} {f.gate}{rule}: {f.message}")
    if len(r.facts) > limit:
        lines.append(f"  … {len(r.facts) - limit} more in the note")
    lines.append(f"  {r.advice_notice}")
    if r.advice is not None and r.advice_status.value == "ok":
        lines += [f"    advice: {step}" for step in r.advice.steps[:6]]
    for reason in r.security_reasons:
        lines.append(f"  needs a human — security-class: {reason}")
    for reason in r.widening:
        lines.append(f"  needs a human — the advice would widen the proposal: {reason}")
    return lines


def _forge_text(o: "ForgeOutcome") -> str:
    run, p = o.run, o.proposal
    short = p.id[:8]
    if o.already_verified:
        return f"{p.name} is already VERIFIED; nothing to forge.\n" + hint("Next", "promote-skill", short)
    head = f"Forge run {run.id[:8]} of {p.name}: {run.status.value}"
    if run.escalation:
        head += f" — {run.escalation.value}"
    lines = [head, f"  {run.reason}", f"  attempts this run: {len(run.attempts)}, cost ${run.cost_usd:.4f}"]
    for step in o.steps:
        b, v, r = step.build, step.verification, step.research
        what = f"build {b.status.value}" + (f", verification {v.status.value}" if v else "")
        lines.append(f"  #{b.attempt_number} {b.id[:8]} {what}" + (f": {r.kind.value}" if r else ""))
        if r is not None:
            lines += ["  " + line for line in research_lines(r, limit=5)]
        if step.note_path:
            lines.append(f"     note: {step.note_path}")
    status = run.status.value
    if status == "VERIFIED":
        lines.append(hint("Next", "promote-skill", short))
    elif status == "ESCALATED":
        kind = run.escalation.value if run.escalation else "ESCALATED"
        lines.append(hint("Review", "show", short))
        lines.append(hint("Then", "forge", short, "--reviewed"))
        lines.append(hint("Or", "withdraw", short, "--reason", f"escalated: {kind}"))
    elif status == "EXHAUSTED":
        lines.append(hint("Review", "show", short))
        lines.append(hint("Continue", "forge", short, "--max-attempts", str(run.max_attempts)))
    elif status == "STOPPED":
        lines.append(hint("Retry", "forge", short))
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    @app.command("research-skill")
    def research_cmd(
        ref: Annotated[
            str,
            typer.Argument(
                help="A failed build or verification (id or prefix), or a proposal (its latest failure)."
            ),
        ],
        hint_text: HintOpt = None,
        no_advise: NoAdviseOpt = False,
        fmt: FormatOpt = Format.text,
    ) -> None:
        """Classify a failed build or verification and write a RESEARCH_NOTE for the next attempt.

        Deterministic findings (failure kind, file:line, rule, the gate's own words), plus
        advice from the advisor in research.advisor of .kavi/config.yaml if one is set.

        Example: git kavi research-skill write_note --hint "use ctx.resolve_write_path"
        """
        output.use(fmt)
        from kavi.forge.research import research_skill

        forge = open_forge()
        outcome = research_skill(forge, ref, hint=hint_text, advise=not no_advise)
        r, subject = outcome.research, outcome.subject
        short = subject.proposal.id[:8]
        lines = [
            f"Research {r.id[:8]} of {subject.proposal.name}, {subject.label}: "
            f"{outcome.classification.outcome} — {r.kind.value}",
            *research_lines(r),
            f"  note: {outcome.note.path}",
            hint("Retry", "build-skill", short, "--retry"),
        ]
        if not r.security and not r.widening:
            lines.append(hint("Or", "forge", short))
        payload: dict[str, Any] = r.model_dump(mode="json")
        payload.update(
            {"research_id": r.id, "note": outcome.note.path, "outcome": outcome.classification.outcome}
        )
        output.emit(payload, "\n".join(lines))

    @app.command("forge")
    def forge_cmd(
        proposal: Annotated[str, typer.Argument(help="Proposal id, unique prefix, or skill name.")],
        backend: BackendOpt = None,
        from_dir: FromOpt = None,
        timeout: TimeoutOpt = None,
        max_attempts: Annotated[
            Optional[int],  # noqa: UP045
            typer.Option("--max-attempts", help="Builds to make at most (default: research.max_attempts)."),
        ] = None,
        budget_usd: Annotated[
            Optional[float],  # noqa: UP045
            typer.Option("--budget-usd", help="Stop (escalate) once the attempts cost this much."),
        ] = None,
        hint_text: HintOpt = None,
        no_advise: NoAdviseOpt = False,
        reviewed: Annotated[
            bool, typer.Option("--reviewed", help="You reviewed the last run's escalation: go on.")
        ] = False,
        wait: WaitOpt = 0.0,
        fmt: FormatOpt = Format.text,
    ) -> None:
        """Build → verify → research → rebuild until VERIFIED, an escalation, or the budget.

        Never promotes. Escalates to a human on a security-class finding, advice that
        would widen the proposal, the same failure kind research.repeat_limit times in a
        row, or --budget-usd spent. Without --backend it repeats the last attempt's backend
        and options. Ctrl-C stops it cleanly.

        Example: git kavi forge write_note --max-attempts 4 --budget-usd 5
        """
        output.use(fmt)
        from kavi.forge.loop import run_forge

        forge = open_forge()
        with holding(forge, f"forge {proposal}", wait):
            outcome = run_forge(
                forge,
                proposal,
                backend=backend,
                from_dir=from_dir,
                timeout=timeout,
                max_attempts=max_attempts,
                budget_usd=budget_usd,
                hint=hint_text,
                advise=not no_advise,
                reviewed=reviewed,
                progress=output.progress,
            )
        payload: dict[str, Any] = outcome.run.model_dump(mode="json")
        payload.update(
            {
                "forge_run_id": outcome.run.id or None,
                "proposal_status": outcome.proposal.status.value,
                "steps": [
                    {
                        "build_id": s.build.id,
                        "attempt": s.build.attempt_number,
                        "build_status": s.build.status.value,
                        "verification_id": s.verification.id if s.verification else None,
                        "verification_status": s.verification.status.value if s.verification else None,
                        "research_id": s.research.id if s.research else None,
                        "failure_kind": s.research.kind.value if s.research else None,
                        "note": s.note_path,
                    }
                    for s in outcome.steps
                ],
            }
        )
        output.emit(payload, _forge_text(outcome))
        if outcome.run.status.value != "VERIFIED":
            raise typer.Exit(1)

    @app.command("withdraw")
    def withdraw_cmd(
        proposal: Annotated[str, typer.Argument(help="Proposal id, unique prefix, or skill name.")],
        reason: Annotated[str, typer.Option("--reason", help="Why it is withdrawn (recorded).")],
        fmt: FormatOpt = Format.text,
    ) -> None:
        """Withdraw a proposal: it becomes REJECTED, with your reason in the ledger.

        Example: git kavi withdraw write_note --reason "superseded by write_note_v2"
        """
        output.use(fmt)
        from kavi.forge.hygiene import withdraw

        p = withdraw(open_forge(), proposal, reason)
        output.emit(
            {
                "proposal_id": p.id,
                "name": p.name,
                "status": p.status.value,
                "reason": " ".join(reason.split()),
            },
            f"Withdrew {p.name} ({p.id[:8]}): REJECTED\n" + hint("Next", "prune", p.id[:8]),
        )

    @app.command("prune")
    def prune_cmd(
        proposal: Annotated[
            Optional[str],  # noqa: UP045
            typer.Argument(help="Only this proposal (default: all)."),
        ] = None,
        dry_run: Annotated[bool, typer.Option("--dry-run", "-n", help="Show what would be pruned.")] = False,
        wait: WaitOpt = 0.0,
        fmt: FormatOpt = Format.text,
    ) -> None:
        """Remove build branches of failed and superseded attempts (their commits are kept).

        Each branch moves to refs/kavi-attic/<branch> (local, never pushed) and a ledger
        event names it, so `git gc` keeps the commit and the audit trail stays whole. The
        latest successful build of an open proposal stays.

        Example: git kavi prune --dry-run
        """
        output.use(fmt)
        from contextlib import nullcontext

        from kavi.forge.hygiene import prune

        forge = open_forge()
        with nullcontext() if dry_run else holding(forge, "prune", wait):
            pruned, skipped = prune(forge, proposal, dry_run=dry_run)
        verb = "would move" if dry_run else "moved"
        lines = [f"{verb} {b.build.branch_name} → {b.kept_ref}  ({b.why})" for b in pruned]
        lines += [f"left {s.build.branch_name}: {s.why}" for s in skipped]
        lines.append(f"{len(pruned)} branch(es) {'to prune' if dry_run else 'pruned'}")
        output.emit(
            {
                "dry_run": dry_run,
                "pruned": [
                    {
                        "build_id": b.build.id,
                        "branch": b.build.branch_name,
                        "kept_ref": b.kept_ref,
                        "why": b.why,
                    }
                    for b in pruned
                ],
                "skipped": [
                    {"build_id": s.build.id, "branch": s.build.branch_name, "why": s.why} for s in skipped
                ],
            },
            "\n".join(lines),
        )
