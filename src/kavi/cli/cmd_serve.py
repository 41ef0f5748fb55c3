"""Command: ``serve mcp`` — TRUSTED skills as MCP tools (see :mod:`kavi.serve.mcp_server`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from kavi.cli import output
from kavi.cli.output import Format

FormatOpt = Annotated[Format, typer.Option("--format", help="Output format of --check: text or json.")]


def register(app: typer.Typer) -> None:
    serve_app = typer.Typer(help="Serve TRUSTED skills to other programs.", no_args_is_help=True)
    app.add_typer(serve_app, name="serve")

    @serve_app.command("mcp")
    def mcp_cmd(
        check: Annotated[
            bool,
            typer.Option("--check", help="Print the tools (with annotations) that would be served; exit."),
        ] = False,
        http: Annotated[
            bool, typer.Option("--http", help="Streamable HTTP on 127.0.0.1 instead of stdio.")
        ] = False,
        port: Annotated[int, typer.Option("--port", help="Port for --http (0: any free port).")] = 8765,
        forge_dir: Annotated[
            Optional[Path],  # noqa: UP045
            typer.Option(
                "--forge", help="The forge to serve (default: the one around the current directory)."
            ),
        ] = None,
        poll: Annotated[
            float, typer.Option("--poll", help="Seconds between checks whether the skill set changed.")
        ] = 1.0,
        fmt: FormatOpt = Format.text,
    ) -> None:
        """Serve the forge's TRUSTED skills as MCP tools (stdio by default).

        Each call is a `run-skill`: hash re-verified, runtime policy, confined, recorded
        with the client's name.

        \b
        Examples:
          claude mcp add kavi -- git kavi serve mcp
          git kavi serve mcp --check
          git kavi serve mcp --forge ~/src/my-forge     (for clients that cannot set a directory)
          git kavi serve mcp --http --port 8765
        """
        output.use(fmt)
        from kavi.errors import UsageError
        from kavi.forge.context import Forge

        if not 0 <= port <= 65535:
            raise UsageError(f"--port must be between 0 and 65535, not {port}")
        if not 0.05 <= poll <= 3600:
            raise UsageError(f"--poll must be between 0.05 and 3600 seconds, not {poll:g}")
        forge = Forge.open(forge_dir.expanduser().resolve() if forge_dir is not None else None)
        if check:
            _check(forge)
            return
        if fmt is Format.json:
            raise UsageError(
                "--format json applies to --check only (stdout is the MCP channel)",
                remedy="git kavi serve mcp --check --format json",
            )
        workdir = forge.workdir
        forge.close()
        _serve(Path(workdir), http=http, port=port, poll=poll)


def _check(forge: Any) -> None:
    from kavi.serve.catalogue import build_catalogue

    catalogue = build_catalogue(forge)
    tools = [t.wire() for t in catalogue.tools]
    withheld = [{"name": w.name, "reason": w.reason} for w in catalogue.withheld]
    lines = [f"{len(tools)} tool(s) served from {forge.workdir}"]
    for tool in catalogue.tools:
        hints = " ".join(f"{k}={str(v).lower()}" for k, v in tool.hints.as_annotations().items())
        approval = "; each call needs the user's approval (elicitation)" if tool.needs_approval else ""
        lines.append(f"  {tool.name}  v{tool.version}  {tool.side_effect}  {hints}{approval}")
        lines.append(f"      {tool.tag}, sha256 {tool.sha256[:16]}, promoted by {tool.approved_by}")
    if withheld:
        lines.append(f"{len(withheld)} TRUSTED skill(s) not served:")
        lines += [f"  {w['name']}: {w['reason']}" for w in withheld]
    lines.append("Add it to Claude Code: claude mcp add kavi -- git kavi serve mcp")
    forge.close()
    output.emit({"forge": str(forge.workdir), "tools": tools, "withheld": withheld}, "\n".join(lines))


def _serve(workdir: Any, *, http: bool, port: int, poll: float) -> None:
    import sys

    import anyio

    from kavi.serve.mcp_server import KaviMCP, configure_logging

    configure_logging()
    server = KaviMCP(workdir, transport="streamable-http" if http else "stdio", poll=poll)
    if not http:
        anyio.run(server.serve_stdio)
        return

    def ready(url: str) -> None:
        sys.stderr.write(f"kavi serve mcp: listening on {url} (loopback only)\n")
        sys.stderr.flush()

    anyio.run(server.serve_http, port, ready)
