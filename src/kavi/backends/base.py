"""The contract between the build step and a code-writing backend.

A backend receives a sandbox directory (the build worktree with its ``.git`` link
hidden), the frozen build packet, the two paths it is asked to write, a scrubbed
environment and a deadline. It may leave any files in the sandbox: Kavi, not the
backend, commits the sandbox and the gate judges the result. A backend reports
whether *it* considers the run successful and returns a transcript for the build
log; it never raises for model misbehaviour (only :class:`kavi.errors.BackendError`
when it cannot run at all, e.g. its executable is missing).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from kavi.backends.jail import Confinement
from kavi.ledger.models import BuildUsage, ToolAttempt


@dataclass(frozen=True)
class BackendRequest:
    sandbox: Path
    packet_text: str
    allowed_paths: tuple[str, ...]
    env: dict[str, str]
    timeout_seconds: float
    # How to confine the backend's processes where the machine can (None: run them as they are)
    confinement: Confinement | None = None
    # The most this build may cost in USD (what is left of the proposal's budget; None: the
    # backend's own cap)
    budget_usd: float | None = None
    # Receives a line of progress now and then while the backend runs. The lines carry
    # agent-chosen text: the receiver escapes and redacts them before showing them.
    progress: Callable[[str], None] | None = None


@dataclass
class BackendResult:
    ok: bool
    reason: str = ""
    transcript: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    usage: BuildUsage = field(default_factory=BuildUsage)  # cost, turns, tokens, model, version
    attempts: list[ToolAttempt] = field(default_factory=list)  # refused tool calls (fail the build)


class Backend(Protocol):
    name: str

    def run(self, request: BackendRequest) -> BackendResult: ...
