"""The Typer application. Command modules import nothing heavy at import time:
``git kavi --help`` and ``--version`` load neither pygit2, httpx nor pydantic."""

from typing import Annotated, Optional

import typer


def _version(value: bool) -> None:
    if value:
        from kavi import __version__

        typer.echo(f"kavi {__version__}")
        raise typer.Exit()


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="kavi",
        help="Kavi — a git-native governed skill forge.\n\n"
        "Skills written by a coding LLM are proposed, built in a sandbox, verified by "
        "independent gates and promoted by a signed human decision.",
        no_args_is_help=True,
        add_completion=False,
        rich_markup_mode=None,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )

    @app.callback()
    def _root(
        version: Annotated[
            Optional[bool],  # noqa: UP045 - typer needs the Optional spelling at runtime
            typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
        ] = None,
    ) -> None:
        """Kavi — a git-native governed skill forge."""

    from kavi.cli import cmd_audit, cmd_forge, cmd_promote, cmd_run, cmd_trust, cmd_verify

    cmd_forge.register(app)
    cmd_verify.register(app)
    cmd_promote.register(app)
    cmd_run.register(app)
    cmd_audit.register(app)
    cmd_audit.register_hooks(app)
    cmd_trust.register(app)
    return app
