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
        out: Annotated[
            Optional[Path],  # noqa: UP045
            typer.Option(
                "--output",
                "-o",
                help="Write PREFIX.intoto.json (DSSE envelope), PREFIX.pae and PREFIX.sig "
                "(verify with ssh-keygen alone).",
            ),
        ] = None,
        unsigned: Annotated[
            bool, typer.Option("--unsigned", help="Print the bare in-toto statement, unsigned.")
        ] = False,
        fmt: FormatOpt = Format.text,
    ) -> None:
        """An in-toto Statement v1 (SLSA Provenance v1 predicate) in a DSSE envelope signed
        with your SSH key (the bare statement with --unsigned).

        Examples: git kavi provenance write_note@v1 > write_note-v1.intoto.json
                  git kavi provenance write_note@v1 --output write_note-v1
        """
        import json

        from kavi.forge.provenance import sign, statement, verify_commands, write_files

        forge = open_forge()
        data = statement(forge, ref)
        if unsigned:
            if out is not None:
                from kavi.errors import UsageError

                raise UsageError("--output writes a signed envelope; drop --unsigned or --output")
            output.use(Format.json)
            output.emit(data, json.dumps(data, indent=2))
            return
        from kavi.signing import user_signer

        signed = sign(forge, data, user_signer(forge.repo))
        if out is None:
            output.use(Format.json)
            output.emit(signed.envelope, json.dumps(signed.envelope, indent=2))
            return
        output.use(fmt)
        files = write_files(signed, out)
        commands = verify_commands(signed, files, Path.cwd())
        lines = [f"wrote {path}" for path in files.values()]
        lines += [f"signed by {signed.principal} ({signed.fingerprint}) under {signed.governance[:12]}"]
        lines += [f"Verify: {commands[0]}", f"Then: {commands[1]}"]
        output.emit(
            {
                "files": {k: str(v) for k, v in files.items()},
                "principal": signed.principal,
                "key": signed.fingerprint,
                "governance": signed.governance,
                "verify": commands,
            },
            "\n".join(lines),
        )

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
            mark = "✓ repaired" if f.repaired else "!" if f.warning else "✗"
            lines.append(f"{mark} [{f.check}] {f.problem}")
            if f.warning:
                lines.append(f"    run: {f.repair}")
            elif f.repair and not f.repaired:
                lines.append(f"    fix: {f.repair}" + ("" if repair else " (run `git kavi doctor --repair`)"))
            elif f.repair and f.repaired:
                lines.append(f"    done: {f.repair}")
        if all(f.warning for f in report.findings):
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
        forge_id: Annotated[
            Optional[str],  # noqa: UP045
            typer.Option(
                "--forge", help="The forge id (its root commit) to pin, when not run inside the forge."
            ),
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
            result = install_server(server, trust=trust, protected=protect, cwd=Path.cwd(), forge_id=forge_id)
        else:
            if trust is not None or protect or forge_id:
                from kavi.errors import UsageError

                raise UsageError("--trust, --protect and --forge only apply with --server")
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
