"""Commands: init, propose-skill, build-skill, status, show, list-proposals."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from kavi.cli import output
from kavi.cli.output import Format

if TYPE_CHECKING:
    from kavi.forge.context import Forge
    from kavi.ledger.models import Build, Proposal

FormatOpt = Annotated[Format, typer.Option("--format", help="Output format: text or json (one JSON object).")]
BackendOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--backend",
        help="claude | openai | files (default: the config's; --retry and forge repeat the last attempt's).",
    ),
]
FromOpt = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option(
        "--from", help="Directory holding the two files, laid out like the repository (files backend)."
    ),
]
TimeoutOpt = Annotated[
    Optional[float],  # noqa: UP045
    typer.Option("--timeout", help="Hard timeout for each backend run, in seconds."),
]
HintOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("--hint", help="Guidance from you, recorded and quoted in the next build packet."),
]
WaitOpt = Annotated[
    float,
    typer.Option(
        "--wait",
        metavar="SECONDS",
        min=0,
        help="If another Kavi command holds the forge, wait up to SECONDS for it (default: refuse at once).",
    ),
]


@contextmanager
def holding(forge: "Forge", command: str, wait: float) -> Iterator[None]:
    """Hold the forge lock while changing the forge; close the ledger before letting go, so
    SQLite's closing checkpoint is not left to run after another command took over."""
    from kavi.forge.lock import forge_lock

    with forge_lock(forge.kavi_dir, command, wait=wait):
        try:
            yield
        finally:
            forge.close()


def open_forge() -> "Forge":
    from kavi.forge.context import Forge
    from kavi.ledger.autoimport import ensure_ledger

    forge = Forge.open()
    ensure_ledger(forge)
    from kavi.forge.remotes import keep_configured

    keep_configured(forge.workdir, forge.location.common_dir, forge.kavi_dir)  # a remote added later
    return forge


def proposal_dict(p: "Proposal") -> dict[str, Any]:
    return p.model_dump(mode="json")


def build_dict(b: "Build") -> dict[str, Any]:
    data = b.model_dump(mode="json")
    data["build_id"] = b.id
    data["branch"] = b.branch_name
    data["commit"] = b.commit_id
    return data


def _spent_text(usage: dict[str, Any]) -> str:
    from kavi.forge.budget import describe
    from kavi.ledger.models import BuildUsage

    return describe(
        BuildUsage.model_validate(usage).model_copy(update={"model": None, "backend_version": None})
    )


def _trust_lines(res: Any) -> list[str]:
    """What `init` says about keys: always what is committed, never a guess."""
    if res.root:
        root = f"  trust root: forge {res.root} (pinned in this clone)"
    else:
        root = "  trust root: none yet — .kavi/allowed_signers lists no key"
    if res.signer is None:
        return [
            root,
            "  signing key: none configured; set one up (git config gpg.format ssh; "
            "git config user.signingkey ~/.ssh/id_ed25519.pub)"
            + (", then make it the root: git kavi trust add" if not res.root else ""),
        ]
    if res.signer_listed:
        return [root, f"  signing key: {res.signer} ({res.signer_key}) — listed in .kavi/allowed_signers"]
    hint = (
        "make it the root: git kavi trust add"
        if not res.root
        else "ask a trusted signer to trust it: git kavi trust add KEY.pub --principal " + res.signer
    )
    return [root, f"  signing key: {res.signer} ({res.signer_key}) — NOT in .kavi/allowed_signers; {hint}"]


def register(app: typer.Typer) -> None:
    @app.command("init")
    def init_cmd(
        target_branch: Annotated[
            Optional[str],  # noqa: UP045
            typer.Option("--target-branch", help="Branch promotions merge into (default: current)."),
        ] = None,
        wait: WaitOpt = 0.0,
        fmt: FormatOpt = Format.text,
    ) -> None:
        """Make this git repository a Kavi forge (idempotent).

        Example: git kavi init
        """
        output.use(fmt)
        from kavi.forge.init import init_forge

        res = init_forge(target_branch=target_branch, wait=wait)
        lines = [f"Kavi forge ready in {res.workdir} (target branch: {res.target_branch})"]
        if res.created:
            lines.append("  wrote: " + ", ".join(res.created))
        if res.commit:
            lines.append(f"  committed governance files: {res.commit[:12]}")
        else:
            lines.append("  governance files already committed — nothing to change")
        lines.append(f"  ledger: {res.ledger_path}" + (" (created)" if res.ledger_created else ""))
        lines += _trust_lines(res)
        for item in res.configured:
            lines.append(f"  git config: {item}")
        from kavi.cli.hints import kavi as hint
        from kavi.examples import WRITE_NOTE_PROPOSAL

        lines.append(hint("Next", "propose-skill", *WRITE_NOTE_PROPOSAL))
        output.emit(
            {
                "workdir": str(res.workdir),
                "target_branch": res.target_branch,
                "created": res.created,
                "commit": res.commit,
                "ledger": str(res.ledger_path),
                "ledger_created": res.ledger_created,
                "signer": res.signer,
                "signer_key": res.signer_key,
                "signer_listed": res.signer_listed,
                "trust_root": res.root,
                "configured": res.configured,
            },
            "\n".join(lines),
        )

    @app.command("propose-skill")
    def propose_cmd(
        name: Annotated[str, typer.Option("--name", help="Skill name: a lowercase identifier.")],
        desc: Annotated[str, typer.Option("--desc", help="What the skill does.")],
        side_effect: Annotated[
            str,
            typer.Option("--side-effect", help="READ_ONLY | FILE_WRITE | NETWORK | MONEY | MESSAGING"),
        ],
        io_schema_json: Annotated[
            str,
            typer.Option(
                "--io-schema-json",
                help='{"input": {field: type}, "output": {field: type}}; types: str, int, '
                "float, bool, list[T], dict[str, T], T | None",
            ),
        ],
        secret: Annotated[
            Optional[list[str]],  # noqa: UP045
            typer.Option("--secret", help="A runtime secret the skill needs (repeatable)."),
        ] = None,
        fmt: FormatOpt = Format.text,
    ) -> None:
        """Propose a new skill (writes the SKILL_SPEC artifact, status PROPOSED).

        Example: git kavi propose-skill --name write_note --desc "Write a note" \\
        --side-effect FILE_WRITE --io-schema-json '{"input": {"path": "str", "title": "str",
        "body": "str"}, "output": {"written_path": "str", "sha256": "str"}}'
        """
        output.use(fmt)
        import sys

        from kavi.cli.hints import kavi as hint
        from kavi.forge.propose import propose

        forge = open_forge()
        warnings: list[str] = []
        p = propose(
            forge,
            name=name,
            description=desc,
            side_effect=side_effect,
            io_schema_json=io_schema_json,
            secrets=secret or [],
            warnings=warnings,
        )
        spec = forge.ledger.artifact(p.spec_artifact_id or "")
        if not output.is_json():
            for warning in warnings:
                sys.stderr.write(f"warning: {warning}\n")
        from kavi.forge.spec import skill_paths

        paths = skill_paths(forge.committed_config, p.name)
        default = forge.committed_config.backends.default
        lines = [f"Proposed {p.name}: {p.id}  [PROPOSED]", f"  spec: {spec.path if spec else '-'}"]
        if default == "files":
            lines.append(
                f"To build it, put {paths.skill_file} and {paths.test_file} in a directory and pass it "
                f"with --from: git kavi build-skill {p.id[:8]} --from <that directory>"
            )
        else:
            lines.append(f"  backend: {default} (from .kavi/config.yaml; or --backend openai|claude|files)")
            lines.append(hint("Next", "build-skill", p.id[:8]))
        output.emit(
            {
                "proposal_id": p.id,
                "name": p.name,
                "status": p.status.value,
                "side_effect_class": p.side_effect_class.value,
                "io_schema": p.io_schema,
                "required_secrets": p.required_secrets,
                "spec_artifact": spec.path if spec else None,
                "warnings": warnings,
            },
            "\n".join(lines),
        )

    @app.command("build-skill")
    def build_cmd(
        proposal: Annotated[str, typer.Argument(help="Proposal id, unique id prefix, or skill name.")],
        backend: BackendOpt = None,
        from_dir: FromOpt = None,
        timeout: TimeoutOpt = None,
        retry: Annotated[
            bool,
            typer.Option(
                "--retry",
                help="Repeat the last attempt's backend and options (--from, --timeout); the packet "
                "carries that attempt's findings.",
            ),
        ] = False,
        hint_text: HintOpt = None,
        wait: WaitOpt = 0.0,
        fmt: FormatOpt = Format.text,
    ) -> None:
        """Build a proposal in a sandboxed worktree and run the diff-allowlist gate.

        Example: git kavi build-skill 1a2b3c4d --backend files --from ./my_skill
        Example: git kavi build-skill write_note --retry --hint "annotate every function"
        """
        output.use(fmt)
        from kavi.cli.hints import kavi as hint
        from kavi.forge.build import build_skill, last_attempt_options

        forge = open_forge()
        if retry:
            target = forge.ledger.find_proposal(proposal)
            last = last_attempt_options(forge, target)
            if last is None:
                from kavi.errors import UsageError

                raise UsageError(
                    f"nothing to retry: {target.name} ({target.id[:8]}) has no build yet",
                    remedy=f"build it first: `git kavi build-skill {target.id[:8]}`",
                )
            if backend is None or backend == last.backend:
                backend = last.backend
                from_dir = from_dir if from_dir is not None else last.from_dir
            timeout = timeout if timeout is not None else last.timeout
        chosen = backend or ("files" if from_dir is not None else forge.committed_config.backends.default)
        with holding(forge, f"build-skill {proposal}", wait):
            outcome = build_skill(
                forge,
                proposal,
                backend_name=chosen,
                from_dir=from_dir,
                timeout=timeout,
                hint=hint_text,
                progress=output.progress,
                live=output.live,
            )
        from kavi.forge.budget import describe, spent

        b = outcome.build
        ok = b.status.value == "SUCCEEDED"
        total = spent(forge.ledger.builds_for(outcome.proposal.id))
        lines = [
            f"Build {b.id[:8]} of {outcome.proposal.name} (attempt {b.attempt_number}, "
            f"{b.backend}): {'SUCCEEDED' if ok else 'FAILED'}",
            f"  branch: {b.branch_name}" + (f" @ {b.commit_id[:12]}" if b.commit_id else ""),
            f"  summary: {b.summary}",
        ]
        if describe(b.usage):
            lines.append(f"  usage: {describe(b.usage)}")
        if b.attempt_number > 1 and total.cost_usd is not None:
            lines.append(f"  all {b.attempt_number} attempts: {describe(total)}")
        for a in b.tool_attempts:
            lines.append(f"  ✗ tool {a.tool} {a.input}: {a.outcome}")
        for v in b.violations:
            lines.append(f"  ✗ {v.path}: {v.reason}")
        if outcome.log:
            lines.append(f"  log: {outcome.log.path}")
        lines.append(f"  packet: {outcome.packet.path}")
        short = outcome.proposal.id[:8]
        if ok:
            lines.append(hint("Next", "verify-skill", short))
        else:
            if b.commit_id:
                from kavi.cli.hints import hint as git_hint

                lines.append(git_hint("Inspect", "git", "log", "-p", b.branch_name, "-1"))
            lines.append(hint("Research", "research-skill", b.id[:8]))
            lines.append(hint("Retry", "build-skill", short, "--retry"))
        payload = build_dict(b)
        payload.update(
            {
                "proposal_id": outcome.proposal.id,
                "status": b.status.value,
                "violations": [v.model_dump() for v in b.violations],
                "proposal_usage": total.model_dump(mode="json"),
                "packet_artifact": outcome.packet.path,
                "log_artifact": outcome.log.path if outcome.log else None,
            }
        )
        output.emit(payload, "\n".join(lines))
        if not ok:
            raise typer.Exit(1)

    @app.command("status")
    def status_cmd(fmt: FormatOpt = Format.text) -> None:
        """Show the forge's configuration and ledger summary.

        Example: git kavi status
        """
        output.use(fmt)
        from kavi.forge.status import forge_status

        data = forge_status(open_forge())
        lines = [
            f"forge:          {data['workdir']}",
            f"target branch:  {data['target_branch']} @ {str(data['target_tip'] or '-')[:12]}",
            f"ledger:         {data['ledger']} (schema v{data['schema_version']}, "
            f"{data['events']} events, {data['unmirrored']} not yet mirrored)",
            f"vault:          {data['vault']}",
            f"registry:       {data['registry']}",
            f"skills layout:  {data['skill_layout']}",
            f"signing key:    {data['signer'] or 'none configured'}"
            + (
                " (trusted)"
                if data["signer_trusted"]
                else (" (NOT in allowed_signers)" if data["signer"] else "")
            ),
            f"default backend:{' ' + data['default_backend']}",
            f"builds:         {data['builds']}"
            + (f", {_spent_text(data['build_usage'])}" if _spent_text(data["build_usage"]) else "")
            + (
                f" (budget per proposal: ${data['proposal_budget_usd']:.2f})"
                if data["proposal_budget_usd"] is not None
                else ""
            ),
            "proposals:      "
            + (", ".join(f"{k} {v}" for k, v in data["proposals_by_status"].items()) or "none"),
            f"escalations:    {len(data['escalations']) or 'none'}",
            *(
                f"remote {r['name']}:{' ' * max(1, 7 - len(r['name']))}"
                + ("fetches Kavi's refs" if r["fetches_kavi"] else "does NOT fetch Kavi's refs")
                + f"; push them with: {r['push']}"
                for r in data["remotes"]
            ),
        ]
        for e in data["escalations"]:
            lines.append(f"  {e['name']} ({e['proposal_id'][:8]}): {e['escalation']} — {e['reason']}")
        output.emit(data, "\n".join(lines))

    @app.command("list-proposals")
    def list_cmd(
        status: Annotated[
            Optional[str],  # noqa: UP045
            typer.Option("--status", help="Only proposals with this status."),
        ] = None,
        fmt: FormatOpt = Format.text,
    ) -> None:
        """List proposals, oldest first.

        Example: git kavi list-proposals --status BUILT
        """
        output.use(fmt)
        forge = open_forge()
        items = forge.ledger.proposals()
        if status:
            items = [p for p in items if p.status.value == status.upper()]
        rows = [
            [p.id[:8], p.name, p.status.value, p.side_effect_class.value, p.created_at[:19]] for p in items
        ]
        text = output.table(rows, ["ID", "NAME", "STATUS", "SIDE EFFECT", "CREATED"]) or "no proposals"
        output.emit({"proposals": [proposal_dict(p) for p in items]}, text)

    @app.command("show")
    def show_cmd(
        ref: Annotated[str, typer.Argument(help="Proposal id, unique prefix, or skill name; or a run id.")],
        fmt: FormatOpt = Format.text,
    ) -> None:
        """Show a proposal with its builds, verifications, promotions and artifacts (or one run).

        Examples: git kavi show 1a2b3c4d
                  git kavi show write_note
        """
        output.use(fmt)
        from kavi.errors import NotFoundError, UsageError
        from kavi.forge.status import proposal_details, render_details, render_run, run_details

        forge = open_forge()
        try:
            details = proposal_details(forge, ref)
        except NotFoundError as exc:
            try:
                run = run_details(forge, ref)
            except (NotFoundError, UsageError):  # neither a proposal nor a run: say the first
                raise exc from None
            output.emit(run, render_run(run))
            return
        output.emit(details, render_details(details))

    @app.command("demo")
    def demo_cmd(
        keep: Annotated[
            bool, typer.Option("--keep/--no-keep", help="Keep the throwaway forge for inspection.")
        ] = True,
        fmt: FormatOpt = Format.text,
    ) -> None:
        """Run the whole pipeline on a throwaway forge repository.

        Example: kavi demo
        """
        output.use(fmt)
        import sys

        from kavi.forge.demo import run_demo

        def echo(line: str) -> None:
            if not output.is_json():
                sys.stdout.write(line + "\n")
                sys.stdout.flush()

        result = run_demo(keep=keep, echo=echo)
        if output.is_json():
            output.emit(result, "")
