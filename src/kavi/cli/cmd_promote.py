"""Commands: promote-skill, list-skills, run-skill, ledger sync/import, audit, provenance, doctor."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from kavi.cli import output
from kavi.cli.cmd_forge import FormatOpt, open_forge
from kavi.cli.output import Format


def register(app: typer.Typer) -> None:
    @app.command("promote-skill")
    def promote_cmd(
        proposal: Annotated[str, typer.Argument(help="Proposal id, unique prefix, or skill name.")],
        yes: Annotated[bool, typer.Option("--yes", "-y", help="Approve without the prompt.")] = False,
        fmt: FormatOpt = Format.text,
    ) -> None:
        """Merge a verified build into the target branch, signed by you (user command).

        Shows what will be merged and asks for confirmation (--yes skips the prompt;
        without a terminal and without --yes it refuses). Creates the signed merge
        commit (with registry.yaml), the signed tag kavi/<name>/v<N>, signed notes and
        signed ledger-mirror commits.

        Example: git kavi promote-skill write_note
        """
        output.use(fmt)
        import sys

        from kavi.cli.approval import obtain_approval
        from kavi.forge.promote import describe_plan, plan_promotion, promote
        from kavi.signing import user_signer

        forge = open_forge()
        signer = user_signer(forge.repo)
        plan = plan_promotion(forge, proposal, signer)
        if not output.is_json():
            sys.stderr.write(describe_plan(plan) + "\n")
        approval = obtain_approval(
            plan_digest=plan.digest,
            approver=plan.principal,
            yes=yes,
            question=f"Promote {plan.proposal.name} v{plan.version} into {plan.target_branch}?",
            action="promotion",
        )
        outcome = promote(forge, plan, approval)
        p = outcome.promotion
        output.emit(
            {
                "promotion_id": p.id,
                "proposal_id": p.proposal_id,
                "skill": p.skill_name,
                "version": p.version,
                "merge_commit": p.merge_commit,
                "tag": p.tag_name,
                "approved_by": p.approved_by,
                "registry_blob": p.registry_blob,
                "skill_sha256": p.skill_sha256,
                "mirrored_events": outcome.mirrored,
                "status": "TRUSTED",
            },
            f"Promoted {p.skill_name} v{p.version}: TRUSTED\n"
            f"  merge: {p.merge_commit[:12]} on {p.target_branch} (signed by {p.approved_by})\n"
            f"  tag:   {p.tag_name}\n"
            f"  ledger mirror: {outcome.mirrored} event(s) signed onto refs/kavi/ledger\n"
            f"Audit: git log --notes=kavi -1 {p.merge_commit[:12]}   "
            f"Run: git kavi run-skill {p.skill_name} --json '{{…}}'",
        )

    @app.command("revoke-skill")
    def revoke_cmd(
        name: Annotated[str, typer.Argument(help="Name of the TRUSTED skill to revoke.")],
        reason: Annotated[str, typer.Option("--reason", help="Why it is revoked (recorded).")] = "",
        yes: Annotated[bool, typer.Option("--yes", "-y", help="Approve without the prompt.")] = False,
        fmt: FormatOpt = Format.text,
    ) -> None:
        """Withdraw a TRUSTED skill: signed commit removing it, signed tag, ledger event (user command).

        Example: git kavi revoke-skill write_note --reason "writes outside Inbox/"
        """
        output.use(fmt)
        import sys

        from kavi.cli.approval import obtain_approval
        from kavi.forge.revoke import plan_revocation, revoke
        from kavi.signing import user_signer

        forge = open_forge()
        plan = plan_revocation(forge, name, reason, user_signer(forge.repo))
        p = plan.promotion
        if not output.is_json():
            sys.stderr.write(
                f"Revoke {p.skill_name} v{p.version} ({p.tag_name}) on {plan.target_branch}:\n"
                f"  removes: {', '.join(plan.files[:2])}; updates {plan.files[2]}\n"
                f"  reason:  {plan.reason}\n  signed by: {plan.principal}\n"
            )
        approval = obtain_approval(
            plan_digest=plan.digest,
            approver=plan.principal,
            yes=yes,
            question=f"Revoke {p.skill_name}?",
            action="revocation",
        )
        r = revoke(forge, plan, approval)
        output.emit(
            {
                "revocation_id": r.id,
                "skill": r.skill_name,
                "commit": r.commit_id,
                "tag": r.tag_name,
                "revoked_by": r.revoked_by,
                "reason": r.reason,
                "status": "REVOKED",
            },
            f"Revoked {r.skill_name}: commit {r.commit_id[:12]}, tag {r.tag_name}, by {r.revoked_by}",
        )

    ledger_app = typer.Typer(help="The ledger and its git mirror (refs/kavi/ledger).", no_args_is_help=True)
    app.add_typer(ledger_app, name="ledger")

    @ledger_app.command("sync")
    def sync_cmd(fmt: FormatOpt = Format.text) -> None:
        """Sign and mirror every ledger event not yet on refs/kavi/ledger.

        Example: git kavi ledger sync && git push origin refs/kavi/ledger
        """
        output.use(fmt)
        from kavi.forge.sync import mirror_pending
        from kavi.signing import trusted_principal, user_signer

        forge = open_forge()
        signer = user_signer(forge.repo)
        trusted_principal(signer, forge.allowed_signers(), branch=forge.committed_config.target_branch)
        count = mirror_pending(forge, signer)
        output.emit({"mirrored": count}, f"mirrored {count} event(s) onto refs/kavi/ledger")

    @ledger_app.command("import")
    def import_cmd(fmt: FormatOpt = Format.text) -> None:
        """Rebuild (or extend) the local ledger from refs/kavi/ledger, checking every signature.

        Example: git fetch origin 'refs/kavi/*:refs/kavi/*' && git kavi ledger import
        """
        output.use(fmt)
        from kavi.forge.context import Forge
        from kavi.forge.importer import import_ledger

        forge = Forge.open()
        result = import_ledger(forge)
        output.emit(
            result,
            f"ledger: {result['imported']} event(s) imported from refs/kavi/ledger "
            f"({result['events']} in total, {result['artifacts_restored']} artifact(s) restored)",
        )


def register_run(app: typer.Typer) -> None:
    @app.command("list-skills")
    def list_skills_cmd(fmt: FormatOpt = Format.text) -> None:
        """List TRUSTED skills (from the ledger) with version, side-effect class and tag.

        Example: git kavi list-skills
        """
        output.use(fmt)
        from kavi.forge.registry import current_promotions, entry_for

        forge = open_forge()
        ledger = forge.ledger
        entries = [entry_for(p, ledger.proposal(p.proposal_id)) for p in current_promotions(ledger).values()]
        entries.sort(key=lambda e: e.name)
        rows = [
            [e.name, f"v{e.version}", e.side_effect_class, e.tag, e.sha256[:12], e.description[:40]]
            for e in entries
        ]
        text = output.table(rows, ["NAME", "VERSION", "SIDE EFFECT", "TAG", "SHA256", "DESCRIPTION"])
        output.emit({"skills": [e.model_dump() for e in entries]}, text or "no TRUSTED skills yet")

    @app.command("run-skill")
    def run_cmd(
        name: Annotated[str, typer.Argument(help="Skill name.")],
        json_input: Annotated[
            Optional[str],  # noqa: UP045
            typer.Option("--json", help="Input as a JSON object."),
        ] = None,
        input_file: Annotated[
            Optional[Path],  # noqa: UP045
            typer.Option("--input-file", help="Read the input JSON from this file ('-' for stdin)."),
        ] = None,
        approve: Annotated[
            bool, typer.Option("--approve", help="Approve a run the policy marks REQUIRE_APPROVAL.")
        ] = False,
        fmt: FormatOpt = Format.text,
    ) -> None:
        """Run a TRUSTED skill: hash re-verified, input/output validated, runtime guard on.

        Example: git kavi run-skill write_note --json '{"path": "Inbox/AI/hello.md",
        "title": "Hello", "body": "World"}'
        """
        output.use(fmt)
        import json
        import sys

        from kavi.errors import UsageError
        from kavi.forge.run import parse_input, run_skill

        if (json_input is None) == (input_file is None):
            raise UsageError("give the input with exactly one of --json or --input-file")
        if json_input is not None:
            payload = parse_input(json_input, source="--json")
        else:
            source = input_file or Path("-")
            text = sys.stdin.read() if str(source) == "-" else _read_text(source)
            payload = parse_input(text, source=str(source))
        forge = open_forge()
        if approve:
            from kavi.cli.approval import obtain_approval

            obtain_approval(
                plan_digest=name,
                approver=forge.actor,
                yes=False,
                question=f"Run {name} with this input?",
                action="this run",
            )
        outcome = run_skill(forge, name, payload, approved=approve)
        run = outcome.run
        output.emit(
            {
                "output": outcome.output,
                "run_id": run.id,
                "skill": run.skill_name,
                "status": run.status.value,
                "promotion_id": run.promotion_id,
                "duration_s": run.duration_s,
                "record": outcome.artifact_path,
            },
            json.dumps(outcome.output, indent=2)
            + f"\n(run {run.id[:8]} of {run.skill_name}: {run.status.value} in {run.duration_s:.3f}s)",
        )


def _read_text(path: Path) -> str:
    from kavi.errors import UsageError

    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read --input-file {path}: {exc.strerror}") from None
