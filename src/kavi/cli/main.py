"""Console entry point (``kavi`` and ``git-kavi``) and the one top-level error handler."""

from __future__ import annotations

import itertools
import os
import sys


def main(argv: list[str] | None = None) -> None:
    from kavi.errors import EXIT_INTERNAL, KaviError

    args = sys.argv[1:] if argv is None else argv
    try:
        if args == ["--version"]:  # no need to build the command tree for this
            from kavi import __version__

            sys.stdout.write(f"kavi {__version__}\n")
            sys.exit(0)
        from kavi.cli.run_fast import fast_main

        if fast_main(args):
            sys.exit(0)
        from kavi.cli.app import build_app

        app = build_app()
        if _wants_json(args):
            _run_json(app, args)
        app(args=args, prog_name=_prog_name(), standalone_mode=True)
    except KaviError as err:
        _report(err)
        sys.exit(err.exit_code)
    except KeyboardInterrupt as exc:
        from kavi.errors import interrupted

        stop = interrupted(exc)
        _report(stop)
        sys.exit(stop.exit_code)
    except SystemExit:
        raise
    except Exception as exc:  # a bug: say so plainly, keep the traceback for KAVI_DEBUG
        if os.environ.get("KAVI_DEBUG"):
            raise
        from kavi.errors import InternalError

        _report(
            InternalError(
                f"internal error: {type(exc).__name__}: {exc}",
                why="this is a bug in Kavi",
                remedy="re-run with KAVI_DEBUG=1 for a traceback and report it",
            )
        )
        sys.exit(EXIT_INTERNAL)


def _wants_json(args: list[str]) -> bool:
    return any(a == "--format=json" for a in args) or any(
        a == "--format" and b == "json" for a, b in itertools.pairwise(args)
    )


def _run_json(app: object, args: list[str]) -> None:
    """With ``--format json``, even a usage error the parser finds is one JSON object.

    The parser's exceptions are recognised by shape (click's ``Exit``, ``Abort`` and
    ``ClickException``), so this works with Typer's vendored click and with click itself.
    """
    from kavi.cli import output
    from kavi.errors import KaviError, UsageError

    output.use(output.Format.json)
    try:
        result = app(args=args, prog_name=_prog_name(), standalone_mode=False)  # type: ignore[operator]
    except KaviError:
        raise
    except Exception as exc:
        kind = type(exc).__name__
        if kind == "Exit":
            sys.exit(int(getattr(exc, "exit_code", 0)))
        if kind == "Abort":
            sys.exit(130)
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
            raise UsageError(
                str(exc.format_message()), remedy=f"see `{_prog_name()} {args[0]} --help`"
            ) from None
        raise
    sys.exit(result if isinstance(result, int) else 0)


def _prog_name() -> str:
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "kavi"
    return "git kavi" if name == "git-kavi" else "kavi"


def _report(err: object) -> None:
    import json

    from kavi.cli.output import end_live, is_json
    from kavi.errors import KaviError

    if not isinstance(err, KaviError):
        return
    if is_json():
        sys.stdout.write(json.dumps(err.to_dict(), indent=2, default=str) + "\n")
        sys.stdout.flush()
    else:
        end_live()
        sys.stderr.write(err.render() + "\n")
