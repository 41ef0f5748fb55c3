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

    from kavi.cli import (
        cmd_audit,
        cmd_forge,
        cmd_promote,
        cmd_research,
        cmd_run,
        cmd_serve,
        cmd_trust,
        cmd_verify,
    )

    cmd_forge.register(app)
    cmd_verify.register(app)
    cmd_research.register(app)
    cmd_promote.register(app)
    cmd_run.register(app)
    cmd_audit.register(app)
    cmd_audit.register_hooks(app)
    cmd_trust.register(app)
    cmd_serve.register(app)
    _report_interrupts(app)
    return app


def _report_interrupts(app: typer.Typer) -> None:
    """Typer turns a KeyboardInterrupt inside a command into a silent exit 130. Each
    command's own cleanup runs first (the interrupt unwinds through it unchanged); at the
    command's edge it becomes :class:`kavi.errors.Interrupted`, which the top-level handler
    reports (one JSON object with --format json)."""
    import functools
    from collections.abc import Callable
    from typing import Any

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except KeyboardInterrupt as exc:
                from kavi.errors import interrupted

                raise interrupted(exc) from exc

        return run

    stack = [app]
    while stack:
        current = stack.pop()
        for command in current.registered_commands:
            if command.callback is not None:
                command.callback = wrap(command.callback)
        stack.extend(group.typer_instance for group in current.registered_groups if group.typer_instance)
