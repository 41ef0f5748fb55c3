"""Commands: promote-skill, list-skills, run-skill, ledger sync/import, audit, provenance, doctor."""

from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from kavi.cli import output
from kavi.cli.cmd_forge import FormatOpt, WaitOpt, holding, open_forge
from kavi.cli.output import Format

if TYPE_CHECKING:
    from kavi.forge.context import Forge


def finish_interrupted(forge: "Forge") -> None:
    """Before changing the forge: finish (or roll back) a change a crash interrupted."""
    from kavi.forge.recovery import describe
    from kavi.forge.recovery import finish_interrupted as finish

    done = finish(forge)
    if done is not None:
        output.progress(describe(*done))


def register(app: typer.Typer) -> None:
    @app.command("promote-skill")
    def promote_cmd(
        proposal: Annotated[
            Optional[str],  # noqa: UP045
            typer.Argument(help="Proposal id, unique prefix, or skill name."),
        ] = None,
        yes: Annotated[bool, typer.Option("--yes", "-y", help="Approve without the prompt.")] = False,
        republish: Annotated[
            bool,
            typer.Option(
                "--republish",
                help="Publish again after another push won the race: your promotions and ledger "
                "events, re-signed onto the remote's new tips.",
            ),
        ] = False,
        remote: Annotated[str, typer.Option("--remote", help="The remote to republish onto.")] = "origin",
        wait: WaitOpt = 0.0,
        fmt: FormatOpt = Format.text,
    ) -> None:
        """Merge a verified build into the target branch, signed by you (user command).

        Shows what will be merged and asks for confirmation (--yes skips the prompt;
        without a terminal and without --yes it refuses). Creates the signed merge
        commit (with registry.yaml), the signed tag kavi/<name>/v<N>, signed notes and
        signed ledger-mirror commits. With --republish (after a push was refused because
        someone else pushed first) it shows what changed on the remote and signs your
        promotions and ledger events again on top of it.

        Example: git kavi promote-skill write_note
                 git kavi promote-skill --republish
        """
        output.use(fmt)
        import json
        import sys

        from kavi.cli.approval import obtain_approval
        from kavi.cli.hints import example_input, hint
        from kavi.cli.hints import kavi as kavi_hint
        from kavi.forge.promote import (
            PromotionOutcome,
            already_promoted,
            describe_plan,
            diff_command,
            plan_promotion,
            promote,
        )
        from kavi.signing import user_signer

        if republish:
            if proposal is not None:
                from kavi.errors import UsageError

                raise UsageError("--republish takes no proposal: it republishes what lost the race")
            _republish(remote, yes, wait)
            return
        if proposal is None:
            from kavi.errors import UsageError

            raise UsageError("name the proposal to promote", remedy="git kavi promote-skill <proposal>")
        forge = open_forge()
        signer = user_signer(forge.repo)
        planned: dict[str, Any] = {}
        with holding(forge, f"promote-skill {proposal}", wait):
            finish_interrupted(forge)
            done = already_promoted(forge, proposal)
            if done is not None:
                outcome = PromotionOutcome(promotion=done, mirrored=0, already=True)
                schema = forge.ledger.proposal(done.proposal_id).io_schema
            else:
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
                schema = plan.proposal.io_schema
                planned = {
                    "diffstat": [{"path": f, "added": a, "deleted": d} for f, a, d in plan.diffstat],
                    "diff_command": diff_command(plan),
                }
        p = outcome.promotion
        headline = (
            f"Already promoted: {p.skill_name} v{p.version} is TRUSTED (nothing to do)"
            if outcome.already
            else f"Promoted {p.skill_name} v{p.version}: TRUSTED"
        )
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
                "already_promoted": outcome.already,
                "notes": outcome.notes,
                **planned,
            },
            f"{headline}\n"
            f"  merge: {p.merge_commit[:12]} on {p.target_branch} (signed by {p.approved_by})\n"
            f"  tag:   {p.tag_name}\n"
            + (
                ""
                if outcome.already
                else f"  ledger mirror: {outcome.mirrored} event(s) signed onto refs/kavi/ledger\n"
            )
            + "".join(f"  note: {n}\n" for n in outcome.notes)
            + hint("Audit", "git", "log", "--notes=kavi", "-1", p.merge_commit[:12])
            + "\n"
            + kavi_hint("Run", "run-skill", p.skill_name, "--json", json.dumps(example_input(schema))),
        )

    def _republish(remote: str, yes: bool, wait: float) -> None:
        import sys

        from kavi.cli.approval import approve_within, obtain_approval
        from kavi.forge import republish as rp
        from kavi.forge.promote import promote
        from kavi.signing import trusted_principal, user_signer

        forge = open_forge()
        signer = user_signer(forge.repo)
        with holding(forge, "promote-skill --republish", wait):
            finish_interrupted(forge)
            plan = rp.prepare(forge, remote, signer)
            principal = trusted_principal(signer, forge.allowed_signers(), branch=plan.branch)
            if not output.is_json():
                sys.stderr.write(rp.describe(plan) + "\n")
            approval = obtain_approval(
                plan_digest=plan.digest,
                approver=principal,
                yes=yes,
                question=f"Republish onto {remote}/{plan.branch}?",
                action="republishing",
            )
            rp.reset_to_upstream(forge, plan, approval)
            promoted = []
            for lost in plan.lost:
                again = rp.replan(forge, plan, lost, signer)
                promoted.append(promote(forge, again, approve_within(approval, again.digest)).promotion)
            mirrored = rp.finish(forge, plan, signer)
        push = (
            f"git push {remote} {plan.branch} 'refs/tags/kavi/*:refs/tags/kavi/*' "
            "refs/notes/kavi refs/kavi/ledger"
        )
        lines = [f"Republished onto {remote}/{plan.branch} ({plan.upstream_tip[:12]}):"]
        lines += [
            f"  {p.skill_name} v{p.version}: merge {p.merge_commit[:12]}, tag {p.tag_name}" for p in promoted
        ]
        lines.append(
            f"  ledger: {len(plan.kept)} event(s) of yours re-sequenced; "
            f"{mirrored} signed onto refs/kavi/ledger"
        )
        lines.append(f"Next: {push}")
        output.emit(
            {
                "remote": remote,
                "branch": plan.branch,
                "upstream_tip": plan.upstream_tip,
                "promotions": [
                    {
                        "skill": p.skill_name,
                        "version": p.version,
                        "merge_commit": p.merge_commit,
                        "tag": p.tag_name,
                    }
                    for p in promoted
                ],
                "resequenced_events": len(plan.kept),
                "mirrored_events": mirrored,
                "next": push,
            },
            "\n".join(lines),
        )

    @app.command("revoke-skill")
    def revoke_cmd(
        name: Annotated[str, typer.Argument(help="Name of the TRUSTED skill to revoke.")],
        reason: Annotated[str, typer.Option("--reason", help="Why it is revoked (recorded).")] = "",
        yes: Annotated[bool, typer.Option("--yes", "-y", help="Approve without the prompt.")] = False,
        wait: WaitOpt = 0.0,
        fmt: FormatOpt = Format.text,
    ) -> None:
        """Withdraw a TRUSTED skill: signed commit removing it, signed tag, ledger event (user command).

        Example: git kavi revoke-skill write_note --reason "writes outside Inbox/"
        """
        output.use(fmt)
        import sys

        from kavi.cli.approval import obtain_approval
        from kavi.forge.revoke import already_revoked, plan_revocation, revoke
        from kavi.signing import user_signer

        forge = open_forge()
        signer = user_signer(forge.repo)
        with holding(forge, f"revoke-skill {name}", wait):
            finish_interrupted(forge)
            r = already_revoked(forge, name)
            already = r is not None
            if r is None:
                plan = plan_revocation(forge, name, reason, signer)
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
                "already_revoked": already,
            },
            ("Already revoked (nothing to do): " if already else "Revoked ")
            + f"{r.skill_name}: commit {r.commit_id[:12]}, tag {r.tag_name}, by {r.revoked_by}",
        )

    ledger_app = typer.Typer(help="The ledger and its git mirror (refs/kavi/ledger).", no_args_is_help=True)
    app.add_typer(ledger_app, name="ledger")

    @ledger_app.command("sync")
    def sync_cmd(wait: WaitOpt = 0.0, fmt: FormatOpt = Format.text) -> None:
        """Sign and mirror every ledger event not yet on refs/kavi/ledger.

        Example: git kavi ledger sync && git push origin refs/kavi/ledger
        """
        output.use(fmt)
        forge = open_forge()
        with holding(forge, "ledger sync", wait):
            count = _sync(forge)
        output.emit({"mirrored": count}, f"mirrored {count} event(s) onto refs/kavi/ledger")

    def _sync(forge: "Forge") -> int:
        """Finish an interrupted change, then mirror every unmirrored event as a journalled
        step, signed with the user's trusted key. The caller holds the forge lock."""
        from kavi.forge import journal
        from kavi.forge.sync import mirror_state, reconcile
        from kavi.gitstore.mirror import LEDGER_REF
        from kavi.signing import trusted_principal, user_signer

        signer = user_signer(forge.repo)
        principal = trusted_principal(
            signer, forge.allowed_signers(), branch=forge.committed_config.target_branch
        )
        finish_interrupted(forge)
        state = mirror_state(forge)
        if state.problem or state.foreign:
            reconcile(forge, state)  # refuses, saying what to do (import, or which side to trust)
        if not (state.unmirrored or not state.in_sync):
            return 0
        step = journal.MirrorStep(label="mirror", old=state.tip)
        entry = journal.Journal.new(
            op="sync", subject=LEDGER_REF, signer=signer, principal=principal, steps=[step]
        )
        return journal.run(forge, entry, signer).mirrored

    @app.command("push")
    def push_cmd(
        remote: Annotated[str, typer.Argument(help="The remote to push to.")] = "origin",
        no_sync: Annotated[
            bool, typer.Option("--no-sync", help="Do not mirror unmirrored ledger events first.")
        ] = False,
        wait: WaitOpt = 0.0,
        fmt: FormatOpt = Format.text,
    ) -> None:
        """Mirror the ledger, then push the target branch and Kavi's refs (tags, notes, ledger).

        Runs: git push REMOTE <target> 'refs/tags/kavi/*' refs/notes/kavi refs/kavi/ledger

        Example: git kavi push origin
        """
        output.use(fmt)
        import subprocess
        import sys

        from kavi.errors import GitError
        from kavi.forge.remotes import push_refs, remote_specs

        forge = open_forge()
        if remote not in remote_specs(forge.workdir):
            from kavi.errors import UsageError

            raise UsageError(f"no remote named {remote!r}", remedy="list them with `git remote -v`")
        mirrored = 0
        unmirrored = len(forge.ledger.unmirrored_events())
        if unmirrored and not no_sync:
            with holding(forge, f"push {remote}", wait):
                mirrored = _sync(forge)
                unmirrored = len(forge.ledger.unmirrored_events())
        refs = push_refs(forge.workdir, remote, forge.config.target_branch)
        done = subprocess.run(
            ["git", "push", remote, *refs], cwd=forge.workdir, capture_output=True, text=True, check=False
        )
        if not output.is_json():
            sys.stderr.write(done.stderr)
        if done.returncode != 0:
            raise GitError(
                f"git push {remote} failed (exit {done.returncode})",
                why=(done.stderr.strip().splitlines() or ["-"])[-1],
                remedy="see git's message above; if the server refused a Kavi ref, "
                "`git kavi promote-skill --republish` publishes after the others",
            )
        output.emit(
            {"remote": remote, "pushed": refs, "mirrored": mirrored, "unmirrored": unmirrored},
            f"pushed {' '.join(refs)} to {remote}"
            + (f" (mirrored {mirrored} ledger event(s) first)" if mirrored else "")
            + (f"; {unmirrored} event(s) not mirrored: git kavi ledger sync" if unmirrored else ""),
        )

    @ledger_app.command("import")
    def import_cmd(
        accept_loss: Annotated[
            bool,
            typer.Option(
                "--accept-loss",
                help="The ledger file was deleted with events never mirrored: rebuild it from "
                "refs/kavi/ledger anyway, losing those events.",
            ),
        ] = False,
        wait: WaitOpt = 0.0,
        fmt: FormatOpt = Format.text,
    ) -> None:
        """Rebuild (or extend) the local ledger from refs/kavi/ledger, checking every signature.

        A damaged ledger file (empty, foreign, failing SQLite's integrity check) is set aside
        as ledger.db.damaged-… and rebuilt, keeping what can be read of its unmirrored events.

        Example: git fetch origin 'refs/kavi/*:refs/kavi/*' && git kavi ledger import
        """
        output.use(fmt)
        from kavi.forge.context import Forge
        from kavi.forge.importer import import_ledger

        forge = Forge.open()
        with holding(forge, "ledger import", wait):
            result = import_ledger(forge, accept_loss=accept_loss)
        lines = [
            f"ledger: {result['imported']} event(s) imported from refs/kavi/ledger "
            f"({result['events']} in total, {result['artifacts_restored']} artifact(s) restored)"
        ]
        if result.get("set_aside"):
            lines.append(f"  the damaged ledger ({result['damage']}) is kept as {result['set_aside']}")
            lines.append(
                f"  {result.get('recovered_unmirrored', 0)} unmirrored event(s) recovered from it "
                f"({result.get('salvaged', 0)} readable in all)"
            )
        for stray in result.get("stray_wal_set_aside", []):
            lines.append(f"  a stray write-ahead log of the deleted ledger is kept as {stray}")
        output.emit(result, "\n".join(lines))
