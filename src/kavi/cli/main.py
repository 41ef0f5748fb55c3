"""Console entry point (``kavi`` and ``git-kavi``) and the one top-level error handler."""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from kavi.confine.session import Worker
    from kavi.errors import KaviError


def main(argv: list[str] | None = None) -> None:
    """The ``kavi``/``git-kavi`` command. ``argv``: the arguments when called from Python
    (tests); None when this process *is* the command, which lets ``run-skill`` end the
    process itself once everything is written (see :func:`_done`)."""
    args = sys.argv[1:] if argv is None else argv
    if argv is None:
        _standard_streams()
    worker = None
    try:
        from kavi.cli.run_fast import prestart

        worker = prestart(args)  # run-skill: its confined worker imports while the rest loads
        whole_process = argv is None and worker is not None
        if whole_process:
            import gc

            gc.disable()  # one bounded run, then os._exit: no cycles worth collecting meanwhile
        _main(args, worker, whole_process)
    except KeyboardInterrupt as exc:  # before the handler below was in place
        from kavi.errors import interrupted

        stop = interrupted(exc)
        _report(stop)
        sys.exit(stop.exit_code)
    finally:
        if worker is not None:
            worker.abort()  # (a no-op once the run has ended it)


def _standard_streams() -> None:
    """Descriptors 0–2 closed by the caller (``>&-``) are opened on /dev/null, so no file
    Kavi opens (the ledger) can land on them; a closed stdout then fails every write, as
    it would have, and is reported as such."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            os.open(os.devnull, os.O_RDWR)  # the lowest free descriptor: this one
            if fd == 1:
                sys.stdout = _ClosedStdout()
    if sys.stdin is None:
        sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115 - the process's own
    if sys.stderr is None:
        sys.stderr = open(2, "w", encoding="utf-8", closefd=False)  # noqa: SIM115


class _ClosedStdout(io.TextIOBase):
    """What ``sys.stdout`` is when the caller closed descriptor 1: every write fails."""

    def write(self, text: str) -> int:
        import errno

        raise OSError(errno.EBADF, "stdout is closed")

    def fileno(self) -> int:
        return 1


def _main(args: list[str], worker: Worker | None, whole_process: bool) -> None:
    from kavi.errors import EXIT_INTERNAL, KaviError

    try:
        if _wants_json(args):
            from kavi.cli import output

            output.use(output.Format.json)
        _check_arguments(args)
        if args == ["--version"]:  # no need to build the command tree for this
            from kavi import __version__

            sys.stdout.write(f"kavi {__version__}\n")
            sys.exit(0)
        from kavi.cli.run_fast import fast_main

        if fast_main(args, worker):
            if whole_process:
                _done()
            sys.exit(0)
        from kavi.cli.app import build_app

        app = build_app()
        if _wants_json(args):
            _run_json(app, args)
        app(args=args, prog_name=_prog_name(), standalone_mode=True)
    except KaviError as err:
        err = _environment(err) or err
        _retry_hint(err, args)
        _report(err)
        sys.exit(err.exit_code)
    except KeyboardInterrupt as exc:
        from kavi.errors import interrupted

        stop = interrupted(exc)
        _report(stop)
        sys.exit(stop.exit_code)
    except SystemExit:
        raise
    except BrokenPipeError as exc:
        _output_failed(exc)
    except Exception as exc:  # a bug: say so plainly, keep the traceback for KAVI_DEBUG
        if _caused_by_interrupt(exc):  # Ctrl-C inside an import turns into an ImportError
            from kavi.errors import interrupted

            stop = interrupted(KeyboardInterrupt())
            _report(stop)
            sys.exit(stop.exit_code)
        fault = _environment(exc)
        if fault is not None:  # a full disk, a read-only file system, a refused permission
            _report(fault)
            sys.exit(fault.exit_code)
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


def _done() -> None:
    """The fast path's end: everything is written, flushed and closed (the ledger, the run
    record, the worker's process tree), so the interpreter's teardown — tens of
    milliseconds of freeing pydantic's schemas — is skipped."""
    try:
        sys.stdout.flush()
    except OSError as exc:
        _output_failed(exc)
    except ValueError:
        os._exit(120)  # what Python's own exit returns when it cannot flush stdout
    try:
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os._exit(0)


def _caused_by_interrupt(exc: BaseException) -> bool:
    from kavi.errors import causes

    return any(isinstance(cause, KeyboardInterrupt) for cause in causes(exc))


def _stdout_to_devnull() -> None:
    """Nothing more can reach stdout's reader: later writes (the interpreter's own flush at
    exit included) go to /dev/null instead of failing again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
        if isinstance(sys.stdout, _ClosedStdout):
            sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
    except (OSError, ValueError):
        pass


def _output_failed(exc: OSError) -> None:
    """stdout refused a write outside :func:`kavi.cli.output.emit` (a flush at the end)."""
    from kavi.errors import output_error

    err = output_error(exc)
    _report(err)
    sys.exit(err.exit_code)


def _environment(exc: BaseException) -> KaviError | None:
    """The one place the environment's faults are named: a full disk, a read-only file system,
    a refused permission (:func:`kavi.errors.environment_fault`), a ledger another process
    keeps locked (:func:`kavi.errors.busy_fault`). Refusals and usage errors stay as they are."""
    from kavi.errors import EXIT_INTERNAL, KaviError, busy_fault, environment_fault

    if isinstance(exc, KaviError) and exc.exit_code != EXIT_INTERNAL:
        return None
    found = environment_fault(exc) or busy_fault(exc)
    if found is None and _storage_failure(exc):
        from kavi.fsprobe import write_failure

        probe = write_failure()  # libgit2 and SQLite do not always say why a write failed
        found = environment_fault(probe) if probe is not None else None
        if found is None and _io_error(exc):
            from kavi.errors import IOFault

            found = IOFault(
                f"the file system failed a write: {exc}",
                why="SQLite reported an I/O error (the disk, or a full file system)",
                remedy="check the disk (`df -h`, `dmesg`), then `git kavi doctor --repair` and the "
                "command again",
            )
    return found


def _io_error(exc: BaseException) -> bool:
    name = str(getattr(exc, "sqlite_errorname", "") or "")
    return name.startswith("SQLITE_IOERR") or "disk I/O error" in str(exc)


def _storage_failure(exc: BaseException) -> bool:
    """An error from the layers that write files (SQLite, libgit2, the OS), which may hide the
    environment's reason."""
    from kavi.errors import causes

    for current in causes(exc):
        module = type(current).__module__
        if isinstance(current, OSError) or module.startswith(("sqlite3", "_pygit2", "pygit2")):
            return True
        if type(current).__name__ in ("GitError", "LedgerError") and module.startswith("kavi"):
            return True
    return False


def _retry_hint(err: object, args: list[str]) -> None:
    """A busy forge: the exact command to run again, waiting for the holder."""
    from kavi.errors import BusyError

    if not isinstance(err, BusyError) or not err.details.get("holder"):
        return
    import shlex

    again: list[str] = []
    skip = False
    for arg in args:  # drop an earlier --wait, whichever way it was written
        if skip:
            skip = False
        elif arg == "--wait":
            skip = True
        elif not arg.startswith("--wait="):
            again.append(arg)
    command = shlex.join([*again, "--wait", "60"])
    err.remedy = (
        f"wait for it to finish, or run this again waiting up to a minute: `{_prog_name()} {command}`"
    )


def _check_arguments(args: list[str]) -> None:
    """Arguments must be text: bytes that are not UTF-8 reach Python as lone surrogates,
    which nothing downstream can store, sign or print."""
    for i, arg in enumerate(args, start=1):
        bad = next((c for c in arg if "\ud800" <= c <= "\udfff"), None)
        if bad is not None:
            from kavi.errors import UsageError

            raw = bad.encode("utf-8", "surrogateescape") if "\udc80" <= bad <= "\udcff" else None
            where = f"byte 0x{raw.hex()}" if raw else f"the lone surrogate U+{ord(bad):04X}"
            raise UsageError(
                f"argument {i} is not valid UTF-8 ({where})",
                why="Kavi records and signs its input as UTF-8 text",
                remedy="pass the argument encoded as UTF-8",
            )


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
    from kavi.errors import OutputError

    if isinstance(err, OutputError):
        _stdout_to_devnull()  # stdout is gone: the error goes to stderr, in either format
    try:
        if is_json() and not isinstance(err, OutputError):
            sys.stdout.write(json.dumps(err.to_dict(), indent=2, default=str) + "\n")
            sys.stdout.flush()
        else:
            end_live()
            sys.stderr.write(err.render() + "\n")
            sys.stderr.flush()
    except OSError:
        if not isinstance(err, OutputError):  # stdout refused the JSON: say it on stderr
            _stdout_to_devnull()
            with contextlib.suppress(OSError):
                sys.stderr.write(err.render() + "\n")
                sys.stderr.flush()
