"""Commands: audit, provenance, doctor."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from kavi.cli import output
from kavi.cli.cmd_forge import FormatOpt, WaitOpt, open_forge
from kavi.cli.output import Format


def register(app: typer.Typer) -> None:
    @app.command("audit")
    def audit_cmd(
        skill: Annotated[
            Optional[str],  # noqa: UP045
            typer.Argument(help="Skill name (default: every skill in the ledger)."),
        ] = None,
        fmt: FormatOpt = Format.text,
    ) -> None:
        """Show the chain of custody with every signature checked and every hash re-computed.

        Exit 1 if any check fails.

        Example: git kavi audit write_note
        """
        output.use(fmt)
        from kavi.forge.audit import audit, render

        report = audit(open_forge(), skill)
        output.emit(report, render(report))
        if not report["ok"]:
            raise typer.Exit(1)

    @app.command("provenance")
    def provenance_cmd(
        ref: Annotated[str, typer.Argument(help="<skill> or <skill>@v<N>.")],
        fmt: FormatOpt = Format.json,
    ) -> None:
        """Print an in-toto Statement v1 with an SLSA Provenance v1 predicate (JSON).

        Example: git kavi provenance write_note@v1 > write_note.intoto.json
        """
        output.use(Format.json)
        import json

        from kavi.forge.provenance import statement

        data = statement(open_forge(), ref)
        output.emit(data, json.dumps(data, indent=2))

    @app.command("doctor")
    def doctor_cmd(
        repair: Annotated[bool, typer.Option("--repair", help="Fix what can be fixed safely.")] = False,
        wait: WaitOpt = 0.0,
        fmt: FormatOpt = Format.text,
    ) -> None:
        """Find what interrupted commands, crashes and full disks left, and any disagreement
        between the ledger, git and the vault (and repair it).

        Example: git kavi doctor --repair
        """
        output.use(fmt)
        from kavi.forge.context import Forge
        from kavi.forge.doctor import doctor

        report = doctor(Forge.open(any_repository=True), repair=repair, wait=wait)
        lines = [f"note: {n}" for n in report.notes]
        for f in report.findings:
            mark = "✓ repaired" if f.repaired else "✗"
            lines.append(f"{mark} [{f.check}] {f.problem}")
            if f.repair and not f.repaired:
                lines.append(f"    fix: {f.repair}" + ("" if repair else " (run `git kavi doctor --repair`)"))
            elif f.repair and f.repaired:
                lines.append(f"    done: {f.repair}")
        if not report.findings:
            lines.append("no problems found (" + ", ".join(report.checked) + ")")
        output.emit(
            {
                "ok": report.ok,
                "findings": [f.as_dict() for f in report.findings],
                "checked": report.checked,
                "notes": report.notes,
            },
            "\n".join(lines),
        )
        if not report.ok:
            raise typer.Exit(1)


def register_hooks(app: typer.Typer) -> None:
    hooks_app = typer.Typer(help="Install Kavi's git hooks.", no_args_is_help=True)
    app.add_typer(hooks_app, name="hooks")

    @hooks_app.command("install")
    def install_cmd(
        server: Annotated[
            Optional[Path],  # noqa: UP045
            typer.Option("--server", help="Install the pre-receive hook into this (bare) repository."),
        ] = None,
        trust: Annotated[
            Optional[Path],  # noqa: UP045
            typer.Option("--trust", help="allowed_signers file to pin as the server's trust root."),
        ] = None,
        protect: Annotated[
            Optional[list[str]],  # noqa: UP045
            typer.Option("--protect", help="Protected branch (repeatable; default from the forge config)."),
        ] = None,
        fmt: FormatOpt = Format.text,
    ) -> None:
        """Install the server-side pre-receive hook (--server) or this clone's pre-push check.

        Examples: git kavi hooks install --server /srv/git/forge.git
                  git kavi hooks install
        """
        output.use(fmt)
        from kavi.hooks.install import install_client, install_server

        if server is not None:
            result = install_server(server, trust=trust, protected=protect, cwd=Path.cwd())
        else:
            if trust is not None or protect:
                from kavi.errors import UsageError

                raise UsageError("--trust and --protect only apply with --server")
            result = install_client(Path.cwd())
        lines = [f"installed {result.hook}"]
        if result.chained:
            lines.append(f"  the existing hook was kept as {result.chained} and runs first")
        if result.pinned_trust:
            lines.append(f"  trust root pinned at {result.pinned_trust}")
        lines += [f"  {n}" for n in result.notes]
        output.emit(
            {
                "hook": str(result.hook),
                "chained": str(result.chained) if result.chained else None,
                "trust": str(result.pinned_trust) if result.pinned_trust else None,
                "notes": result.notes,
            },
            "\n".join(lines),
        )
