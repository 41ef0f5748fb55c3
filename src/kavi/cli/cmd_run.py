"""Commands: list-skills, run-skill (see :mod:`kavi.cli.run_fast` for its fast path)."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from kavi.cli import output
from kavi.cli.output import Format

FormatOpt = Annotated[Format, typer.Option("--format", help="Output format: text or json (one JSON object).")]


def register(app: typer.Typer) -> None:
    @app.command("list-skills")
    def list_skills_cmd(fmt: FormatOpt = Format.text) -> None:
        """List TRUSTED skills (from the ledger) with version, side-effect class and tag.

        Example: git kavi list-skills
        """
        output.use(fmt)
        from kavi.cli.cmd_forge import open_forge
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
        from kavi.cli.run_fast import run_skill_command

        run_skill_command(name, json_input, input_file, approve, fmt)
