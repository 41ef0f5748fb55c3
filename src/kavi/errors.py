"""One error hierarchy for all of Kavi.

Every error carries a stable code (``KAVI-…``), a message saying *what* failed, a
``why`` and a ``remedy`` saying what to do next. The exit code follows DESIGN.md:
1 refused by governance, 2 bad usage or input, 3 internal. The CLI's single
top-level handler turns any :class:`KaviError` into text or one JSON object.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3


class KaviError(Exception):
    """Base of every error Kavi raises on purpose."""

    code: ClassVar[str] = "KAVI-INTERNAL"
    exit_code: ClassVar[int] = EXIT_INTERNAL

    def __init__(
        self,
        message: str,
        *,
        why: str | None = None,
        remedy: str | None = None,
        code: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.why = why
        self.remedy = remedy
        self.details = dict(details or {})
        if code is not None:
            self.code = code  # type: ignore[misc]

    @property
    def kind(self) -> str:
        return type(self).__name__

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "error": self.kind,
            "code": self.code,
            "message": self.message,
            "why": self.why,
            "remedy": self.remedy,
            "exit_code": self.exit_code,
        }
        if self.details:
            out["details"] = self.details
        return out

    def render(self) -> str:
        lines = [f"error[{self.code}]: {self.message}"]
        if self.why:
            lines.append(f"  why: {self.why}")
        if self.remedy:
            lines.append(f"  fix: {self.remedy}")
        return "\n".join(lines)


# --- bad usage or input (exit 2) -------------------------------------------------


class UsageError(KaviError):
    """The caller asked for something malformed."""

    code = "KAVI-USAGE"
    exit_code = EXIT_USAGE


class ValidationError(UsageError):
    code = "KAVI-INVALID"


class NotFoundError(UsageError):
    code = "KAVI-NOT-FOUND"


class AmbiguousIdError(UsageError):
    code = "KAVI-AMBIGUOUS-ID"


class NotAForgeError(UsageError):
    code = "KAVI-NOT-A-FORGE"


class ConfigError(UsageError):
    code = "KAVI-CONFIG"


# --- refused by governance (exit 1) ----------------------------------------------


class GovernanceError(KaviError):
    """Kavi understood the request and refuses it on purpose."""

    code = "KAVI-REFUSED"
    exit_code = EXIT_REFUSED


class StateError(GovernanceError):
    """An illegal status transition, or a step run out of order."""

    code = "KAVI-STATE"


class GateError(GovernanceError):
    code = "KAVI-GATE"


class PolicyDenied(GovernanceError):
    code = "KAVI-POLICY"


class TrustError(GovernanceError):
    """Bytes, signatures or records do not match what was approved."""

    code = "KAVI-TRUST"


class SigningError(GovernanceError):
    code = "KAVI-SIGNING"


class ApprovalError(GovernanceError):
    code = "KAVI-APPROVAL"


class ConflictError(GovernanceError):
    """The working tree or a ref is in the way; nothing was changed."""

    code = "KAVI-CONFLICT"


class GuardViolation(GovernanceError):
    """The runtime guard refused an operation of a running skill or test."""

    code = "KAVI-GUARD"


class BusyError(ConflictError):
    """Another process holds the forge (Kavi's forge lock) or one of git's lock files."""

    code = "KAVI-BUSY"


class LedgerMissingError(StateError):
    """The ledger file is gone, and with it events the mirror never received."""

    code = "KAVI-LEDGER-MISSING"


# --- the environment cannot do it (exit 2): disk full, read-only, permissions -----


class EnvironmentFault(KaviError):
    """The file system or the machine refused; nothing is wrong with Kavi or the input."""

    code = "KAVI-ENVIRONMENT"
    exit_code = EXIT_USAGE


class DiskFullError(EnvironmentFault):
    code = "KAVI-DISK-FULL"


class ReadOnlyError(EnvironmentFault):
    code = "KAVI-READ-ONLY"


class PermissionDeniedError(EnvironmentFault):
    code = "KAVI-PERMISSION"


class IOFault(EnvironmentFault):
    """The file system failed a write (an I/O error) for a reason it did not name."""

    code = "KAVI-IO-ERROR"


class OutputError(IOFault):
    """The command's output could not be written to stdout (its reader went away, a full
    device, a closed descriptor). What the command did before is kept; exit 2."""


class ReaderGone(OutputError):
    """The reader of stdout closed the pipe (``| head``): exit 141, as if killed by SIGPIPE."""

    exit_code = 141


def output_error(exc: OSError) -> OutputError:
    """The :class:`OutputError` for a failed write to stdout."""
    import errno

    if exc.errno == errno.EPIPE:
        return ReaderGone(
            "the output could not be written: its reader closed the pipe",
            why="stdout is a pipe and the program reading it exited before the command finished writing",
            remedy="read the whole output (or write it to a file); what the command recorded before "
            "this is kept: see `git kavi status`",
        )
    return OutputError(
        f"the output could not be written: {exc.strerror or exc}",
        why="stdout refused the write (a closed descriptor, a full device)",
        remedy="send the output somewhere writable; what the command recorded before this is kept: "
        "see `git kavi status`",
    )


class LedgerDamagedError(EnvironmentFault):
    """The ledger file is empty, not a Kavi ledger, or fails SQLite's integrity check."""

    code = "KAVI-LEDGER-DAMAGED"


# --- internal / environment (exit 3) -------------------------------------------


class Interrupted(KaviError):
    """Ctrl-C, or SIGTERM/SIGHUP while a backend ran (exit 130, as shells expect)."""

    code = "KAVI-INTERRUPTED"
    exit_code = 130


def interrupted(exc: BaseException) -> Interrupted:
    """The error a Ctrl-C (or SIGTERM/SIGHUP while a backend ran) is reported as."""
    return Interrupted(
        "interrupted",
        why=f"Kavi received {exc}" if str(exc) else "Ctrl-C",
        remedy="run the command again; `git kavi doctor` shows anything an interrupted build left",
    )


class InternalError(KaviError):
    code = "KAVI-INTERNAL"


class BackendError(KaviError):
    """A build backend could not be run at all (not: it produced bad output)."""

    code = "KAVI-BACKEND"


class LedgerError(KaviError):
    code = "KAVI-LEDGER"


class GitError(KaviError):
    code = "KAVI-GIT"


class ToolError(KaviError):
    """An external tool (ruff, mypy, pytest, ssh-keygen) is missing or broke."""

    code = "KAVI-TOOL"


# --- mapping what the operating system said ----------------------------------------

_ENOSPC, _EDQUOT, _EROFS, _EACCES, _EPERM = 28, 122, 30, 13, 1
_TEXT_MARKERS = (
    ("no space left on device", _ENOSPC),
    ("disk quota exceeded", _EDQUOT),
    ("database or disk is full", _ENOSPC),
    ("read-only file system", _EROFS),
    ("attempt to write a readonly database", _EACCES),
    ("permission denied", _EACCES),
    ("operation not permitted", _EPERM),
)
# a read-only *file system* is found before SQLite is asked to write (the ledger then opens
# read-only, kavi.ledger.store); SQLITE_READONLY after that means the file's permissions
_SQLITE_NAMES = {"SQLITE_FULL": _ENOSPC, "SQLITE_READONLY": _EACCES, "SQLITE_PERM": _EACCES}


def _errno_of(exc: BaseException) -> int | None:
    """The environment errno an exception carries: its ``errno``, SQLite's result code, or
    the operating system's words in its message (libgit2 and subprocesses only give text)."""
    number = getattr(exc, "errno", None)
    if isinstance(number, int) and number in (_ENOSPC, _EDQUOT, _EROFS, _EACCES, _EPERM):
        return number
    name = str(getattr(exc, "sqlite_errorname", "") or "")
    for prefix, mapped in _SQLITE_NAMES.items():
        if name.startswith(prefix):
            return mapped
    parts = (exc.message, exc.why) if isinstance(exc, KaviError) else (str(exc),)
    text = " ".join(str(t) for t in parts if t).lower()
    for marker, mapped in _TEXT_MARKERS:
        if marker in text:
            return mapped
    return None


def causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what caused it: its ``__cause__`` (else ``__context__``), and so on, each
    once (a chain may loop)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def busy_fault(exc: BaseException) -> BusyError | None:
    """Someone else's lock is in the way: SQLite's "database is locked" (another process sits
    inside a ledger transaction longer than the busy timeout: stopped with Ctrl-Z, or stuck),
    or one of git's lock files (another git command runs, or one was killed and left it)."""
    for current in causes(exc):
        name = str(getattr(current, "sqlite_errorname", "") or "")
        text = current.message if isinstance(current, KaviError) else str(current)
        # SQLITE_PROTOCOL ("locking protocol"): the write-ahead log's index stayed locked
        # through SQLite's retries — another process stopped while it held it
        if (
            name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_PROTOCOL"))
            or "database is locked" in text
            or "locking protocol" in text
        ):
            return BusyError(
                "the ledger is locked by another process",
                why="another command has been inside a ledger transaction for longer than Kavi waits "
                "(30 seconds): it is stopped (Ctrl-Z) or stuck",
                remedy="let it finish (resume a stopped one with `fg`), then run this again; "
                "`git kavi doctor` shows which Kavi command holds the forge",
            )
        if "failed to lock file" in text or "is locked; this might be due to a concurrent or crashed" in text:
            return BusyError(
                f"git's lock file is in the way: {text.strip()}",
                why="another git command is running, or one was killed and left its .lock file",
                remedy="wait for the other git command; if none runs, `git kavi doctor --repair` removes "
                "stale lock files",
            )
    return None


def environment_fault(exc: BaseException) -> EnvironmentFault | None:
    """The :class:`EnvironmentFault` behind ``exc`` (or its causes), if there is one.

    Used by the one top-level handler: an ``OSError``, a SQLite error or an internal
    error caused by a full disk, a read-only file system or a refused permission is the
    environment's doing, not a bug — it gets its own code, a remedy and exit 2.
    Refusals (exit 1) and usage errors (exit 2) are left as they are.
    """
    for current in causes(exc):
        if isinstance(current, EnvironmentFault):
            return current
        if isinstance(current, KaviError) and current.exit_code != EXIT_INTERNAL:
            return None
        number = _errno_of(current)
        if number is not None:
            return _fault(number, current)
    return None


def _fault(number: int, exc: BaseException) -> EnvironmentFault:
    where = getattr(exc, "filename", None)
    detail = exc.message if isinstance(exc, KaviError) else str(exc)
    at = f" ({where})" if where else ""
    after = (
        "nothing half-written is kept: once there is room again, run `git kavi doctor --repair` "
        "(it finishes or rolls back an interrupted step) and then the command again"
    )
    if number in (_ENOSPC, _EDQUOT):
        return DiskFullError(
            f"the disk is full{at}",
            why=detail,
            remedy=f"free space on the file system holding the repository (or raise the quota); {after}",
        )
    if number == _EROFS:
        return ReadOnlyError(
            f"the file system is read-only{at}",
            why=detail,
            remedy="this command writes to the repository; run it in a writable clone "
            "(read-only clones can still run status, audit, list-skills and provenance)",
        )
    return PermissionDeniedError(
        f"permission denied{at}",
        why=detail,
        remedy="run Kavi as the user who owns the repository, or fix the ownership and modes of "
        f"the repository and its .git directory; {after}",
    )
