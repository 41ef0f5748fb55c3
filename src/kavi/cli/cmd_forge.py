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
    return forge


def proposal_dict(p: "Proposal") -> dict[str, Any]:
    return p.model_dump(mode="json")


def build_dict(b: "Build") -> dict[str, Any]:
    data = b.model_dump(mode="json")
    data["build_id"] = b.id
    data["branch"] = b.branch_name
    data["commit"] = b.commit_id
    return data


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
        lines.append(
            f"  signing key: {res.signer} (listed in .kavi/allowed_signers)"
            if res.signer
            else "  signing key: none configured — promotion will need one "
            "(git config gpg.format ssh; git config user.signingkey ~/.ssh/id_ed25519.pub)"
        )
        for item in res.configured:
            lines.append(f"  git config: {item}")
        lines.append("Next: git kavi propose-skill --name … --desc … --side-effect … --io-schema-json …")
        output.emit(
            {
                "workdir": str(res.workdir),
                "target_branch": res.target_branch,
                "created": res.created,
                "commit": res.commit,
                "ledger": str(res.ledger_path),
                "ledger_created": res.ledger_created,
                "signer": res.signer,
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
        from kavi.forge.propose import propose

        forge = open_forge()
        p = propose(
            forge,
            name=name,
            description=desc,
            side_effect=side_effect,
            io_schema_json=io_schema_json,
            secrets=secret or [],
        )
        spec = forge.ledger.artifact(p.spec_artifact_id or "")
        output.emit(
            {
                "proposal_id": p.id,
                "name": p.name,
                "status": p.status.value,
                "side_effect_class": p.side_effect_class.value,
                "io_schema": p.io_schema,
                "required_secrets": p.required_secrets,
                "spec_artifact": spec.path if spec else None,
            },
            f"Proposed {p.name}: {p.id}  [PROPOSED]\n"
            f"  spec: {spec.path if spec else '-'}\n"
            f"Next: git kavi build-skill {p.id[:8]} --backend claude|openai|files",
        )

    @app.command("build-skill")
    def build_cmd(
        proposal: Annotated[str, typer.Argument(help="Proposal id, unique id prefix, or skill name.")],
        backend: Annotated[
            Optional[str],  # noqa: UP045
            typer.Option("--backend", help="claude | openai | files (default from config)."),
        ] = None,
        from_dir: Annotated[
            Optional[Path],  # noqa: UP045
            typer.Option("--from", help="Directory to copy files from (files backend)."),
        ] = None,
        timeout: Annotated[
            Optional[float],  # noqa: UP045
            typer.Option("--timeout", help="Hard timeout for the backend, in seconds."),
        ] = None,
        wait: WaitOpt = 0.0,
        fmt: FormatOpt = Format.text,
    ) -> None:
        """Build a proposal in a sandboxed worktree and run the diff-allowlist gate.

        Example: git kavi build-skill 1a2b3c4d --backend files --from ./my_skill
        """
        output.use(fmt)
        from kavi.forge.build import build_skill

        forge = open_forge()
        chosen = backend or ("files" if from_dir is not None else forge.committed_config.backends.default)
        with holding(forge, f"build-skill {proposal}", wait):
            outcome = build_skill(
                forge,
                proposal,
                backend_name=chosen,
                from_dir=from_dir,
                timeout=timeout,
                progress=output.progress,
            )
        b = outcome.build
        ok = b.status.value == "SUCCEEDED"
        lines = [
            f"Build {b.id[:8]} of {outcome.proposal.name} (attempt {b.attempt_number}, "
            f"{b.backend}): {'SUCCEEDED' if ok else 'FAILED'}",
            f"  branch: {b.branch_name}" + (f" @ {b.commit_id[:12]}" if b.commit_id else ""),
            f"  summary: {b.summary}",
        ]
        for v in b.violations:
            lines.append(f"  ✗ {v.path}: {v.reason}")
        if outcome.log:
            lines.append(f"  log: {outcome.log.path}")
        lines.append(
            f"Next: git kavi verify-skill {outcome.proposal.id[:8]}"
            if ok
            else f"Inspect: git log -p {b.branch_name} -1   Retry: git kavi build-skill "
            f"{outcome.proposal.id[:8]}"
        )
        payload = build_dict(b)
        payload.update(
            {
                "proposal_id": outcome.proposal.id,
                "status": b.status.value,
                "violations": [v.model_dump() for v in b.violations],
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
            "proposals:      "
            + (", ".join(f"{k} {v}" for k, v in data["proposals_by_status"].items()) or "none"),
        ]
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
        ref: Annotated[str, typer.Argument(help="Proposal id, unique prefix, or skill name.")],
        fmt: FormatOpt = Format.text,
    ) -> None:
        """Show a proposal with its builds, verifications, promotions and artifacts.

        Example: git kavi show 1a2b3c4d
        """
        output.use(fmt)
        from kavi.forge.status import proposal_details, render_details

        forge = open_forge()
        details = proposal_details(forge, ref)
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
