"""How one confined run ended: the worker's reply, its stderr, and what its PID 1 reported."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class WorkerResult:
    reply: dict[str, Any] | None
    stderr: str
    confined: bool
    timed_out: bool = False
    status: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0

    @property
    def limit(self) -> str | None:
        """Which limit ended the run, if one did."""
        if self.timed_out:
            return "wall_seconds"
        if self.reply is not None and self.reply.get("kind") == "limit":
            return str(self.reply.get("limit") or "memory_mb")
        found = self.status.get("limit")
        return str(found) if found else None

    @property
    def cannot_confine(self) -> str | None:
        """Why the jail could not be built (nothing ran), or None. Its PID 1 reports every
        end but one Kavi caused; with no report and no reply, ``unshare`` itself failed
        (a kernel or security module that refuses user namespaces)."""
        if not self.confined:
            return None
        if self.status.get("exit") == 97:
            return str(self.status.get("error") or "cannot confine")
        if self.status.get("unreported") and self.reply is None and not self.timed_out:
            code = self.status.get("exit")
            if isinstance(code, int) and code < 0:
                return None  # killed by a signal from outside: it ran, it did not fail to start
            detail = self.stderr.strip().splitlines()[-1:] or ["no report"]
            return f"the namespaces could not be created ({detail[0][:200]})"
        return None
