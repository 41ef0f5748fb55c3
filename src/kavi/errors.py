"""One error hierarchy for all of Kavi.

Every error carries a stable code (``KAVI-…``), a message saying *what* failed, a
``why`` and a ``remedy`` saying what to do next. The exit code follows DESIGN.md:
1 refused by governance, 2 bad usage or input, 3 internal. The CLI's single
top-level handler turns any :class:`KaviError` into text or one JSON object.
"""

from __future__ import annotations

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
