"""``run-skill`` without Typer: the command automation calls most.

:func:`fast_main` parses ``run-skill`` arguments with the standard library, so the
command does not pay for importing Typer; ``--help`` still goes through Typer.
Both paths call :func:`run_skill_command`. :func:`prestart`, called first thing by
:func:`kavi.cli.main.main`, starts the confined worker before anything else is imported
(this module imports nothing at the top for that reason).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

    from kavi.cli.output import Format
    from kavi.confine.session import Worker

MAX_TEXT = (1 << 20) + 1  # a text-only stdin (tests): read at most this many characters


def prestart(argv: list[str]) -> Worker | None:
    """For ``run-skill`` (not ``--approve``, not ``--help``): the confined worker, started
    before anything else is imported, so it imports while Kavi parses, opens the forge and
    checks. The caller aborts it if the command does not get as far as running it."""
    if not argv or argv[0] != "run-skill" or {"-h", "--help", "--approve"} & set(argv):
        return None
    from kavi.confine.session import Worker

    return Worker.start()


def run_skill_command(
    name: str,
    json_input: str | None,
    input_file: Path | None,
    approve: bool,
    fmt: Format,
    worker: Worker | None = None,
) -> None:
    """``run-skill``; ``worker``: one :func:`prestart` started (this call owns it)."""
    import json
    import sys
    from pathlib import Path

    from kavi.cli import output

    output.use(fmt)

    from kavi.confine.session import Worker
    from kavi.errors import UsageError

    if approve and worker is not None:
        worker.abort()  # the person's answer may take long: start it after the question
        worker = None
    try:
        if (json_input is None) == (input_file is None):
            raise UsageError("give the input with exactly one of --json or --input-file")
        # the confined child starts now (if it has not yet) and imports while Kavi checks
        if worker is None and not approve:
            worker = Worker.start()
        from kavi.forge.context import Forge
        from kavi.forge.run import parse_input, run_skill
        from kavi.ledger.autoimport import ensure_ledger

        if json_input is not None:
            payload = parse_input(json_input, source="--json")
        else:
            from kavi.inputs import decode_utf8, read_bounded_stream, read_input_file

            source = input_file or Path("-")
            if str(source) == "-":
                stream = getattr(sys.stdin, "buffer", None)
                data = (
                    read_bounded_stream(stream, source="stdin")
                    if stream is not None
                    else sys.stdin.read(MAX_TEXT).encode("utf-8", "surrogatepass")
                )
                where = "stdin"
            else:
                data = read_input_file(source)
                where = f"--input-file {source}"
            payload = parse_input(decode_utf8(data, source=where), source=where)
        forge = Forge.open()
        ensure_ledger(forge)
        if approve:
            from kavi.cli.approval import obtain_approval

            obtain_approval(
                plan_digest=name,
                approver=forge.actor,
                yes=False,
                question=f"Run {name} with this input?",
                action="this run",
            )
    except BaseException:
        if worker is not None:
            worker.abort()
        raise
    try:
        outcome = run_skill(forge, name, payload, approved=approve, worker=worker)
    finally:
        forge.close()
    run = outcome.run
    output.emit(
        {
            "output": outcome.output,
            "run_id": run.id,
            "skill": run.skill_name,
            "status": run.status.value,
            "promotion_id": run.promotion_id,
            "duration_s": run.duration_s,
            "record": outcome.artifact_path,
        },
        json.dumps(outcome.output, indent=2)
        + f"\n(run {run.id[:8]} of {run.skill_name}: {run.status.value} in {run.duration_s:.3f}s)",
    )


def fast_main(argv: list[str], worker: Worker | None = None) -> bool:
    """Handle ``run-skill …`` without Typer; False if argv is not for the fast path.
    ``worker``: the one :func:`prestart` started for it."""
    if not argv or argv[0] != "run-skill" or {"-h", "--help"} & set(argv):
        return False
    import argparse
    from pathlib import Path

    from kavi.cli.output import Format
    from kavi.errors import UsageError

    class _Parser(argparse.ArgumentParser):
        def error(self, message: str) -> None:  # type: ignore[override]
            raise UsageError(f"run-skill: {message}", remedy="see `git kavi run-skill --help`")

    parser = _Parser(prog="kavi run-skill", add_help=False)
    parser.add_argument("name")
    parser.add_argument("--json", dest="json_input")
    parser.add_argument("--input-file", type=Path)
    parser.add_argument("--approve", action="store_true")
    parser.add_argument("--format", default="text", choices=[f.value for f in Format])
    ns = parser.parse_args(argv[1:])
    run_skill_command(ns.name, ns.json_input, ns.input_file, ns.approve, Format(ns.format), worker)
    return True
