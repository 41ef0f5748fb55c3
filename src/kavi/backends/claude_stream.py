"""Judging Claude Code's ``stream-json`` output, event by event (D037).

The final ``result`` event says how the CLI ended, but not what the agent tried: a call
to a tool the CLI does not offer is answered "No such tool available" and never recorded
as a permission denial. So every event is read as it arrives:

* ``system``/``init``: the CLI's version and model, the tools it offers;
* ``assistant``: every ``tool_use`` — a tool other than the five (Read, Glob, Grep, Edit,
  Write) is an attempt "not offered"; a path argument that leaves the sandbox (an
  absolute one elsewhere, ``..``, ``~``) is an attempt "outside the sandbox", even where
  the CLI would have allowed it (a ``Glob`` of ``/etc/*`` is answered);
* ``user``: every ``tool_result`` — "No such tool available" is an attempt "unavailable",
  a permission refusal an attempt "denied";
* ``result``: ``permission_denials`` (each "denied"), cost, turns, tokens.

Any attempt fails the build. The judge never raises on malformed input: what it cannot
read it counts, and a line too long to read fails the build.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kavi.backends.proc import DROPPED_LINE
from kavi.ledger.models import BuildUsage, ToolAttempt

TOOLS = ("Read", "Glob", "Grep", "Edit", "Write")
OUTCOMES = ("not offered", "unavailable", "denied", "outside the sandbox")
MAX_ATTEMPTS = 100
INPUT_SUMMARY = 300
VALUE_SUMMARY = 120
REASON_CHARS = 500
NO_SUCH_TOOL = "No such tool available"


def _summary(value: object) -> str:
    """A tool input as one bounded line: long strings cut, the whole cut again."""

    def cut(v: object) -> object:
        if isinstance(v, str) and len(v) > VALUE_SUMMARY:
            return f"{v[:VALUE_SUMMARY]}…({len(v)} chars)"
        if isinstance(v, dict):
            return {str(k)[:VALUE_SUMMARY]: cut(x) for k, x in list(v.items())[:20]}
        if isinstance(v, list):
            return [cut(x) for x in v[:20]]
        return v

    try:
        text = json.dumps(cut(value), ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError, RecursionError):
        text = f"({type(value).__name__})"
    return text if len(text) <= INPUT_SUMMARY else text[:INPUT_SUMMARY] + "…"


def _text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
    return ""


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**12 else None


def _money(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) and 0 <= number < 10**9 else None


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _label(value: object, limit: int = 100) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


@dataclass
class StreamJudge:
    """Reads the CLI's stdout one line at a time (:meth:`feed`)."""

    roots: tuple[str, ...]  # the sandbox as the agent may name it (as given, resolved)
    progress: Callable[[str], None] | None = None
    started: float = field(default_factory=time.monotonic)
    init: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    events: int = 0
    unreadable: int = 0
    dropped: int = 0
    model: str | None = None
    attempts: dict[str, tuple[str, str, list[str]]] = field(
        default_factory=dict
    )  # id → tool, input, outcomes
    _names: dict[str, tuple[str, object]] = field(default_factory=dict)
    _messages: dict[str, tuple[int, int]] = field(default_factory=dict)  # message id → tokens in, out

    # -- reading -----------------------------------------------------------------

    def feed(self, line: str) -> None:
        if line == DROPPED_LINE:
            self.dropped += 1
            return
        line = line.strip()
        if not line.startswith("{"):
            return
        try:
            event = json.loads(line)
        except (ValueError, RecursionError):
            self.unreadable += 1
            return
        if not isinstance(event, dict):
            self.unreadable += 1
            return
        self.events += 1
        kind = event.get("type")
        if kind == "system" and event.get("subtype") == "init":
            self.init = event
            self._say(f"Claude Code {_label(event.get('claude_code_version')) or '?'} started")
        elif kind == "assistant":
            self._assistant(event.get("message"))
        elif kind == "user":
            self._user(event.get("message"))
        elif kind == "result":
            self.result = event
            denials = event.get("permission_denials")
            if denials is not None and not isinstance(denials, list):
                self.unreadable += 1  # malformed: refused, never read as "no denials"
            for denial in denials if isinstance(denials, list) else []:
                if isinstance(denial, dict):
                    ident = str(denial.get("tool_use_id") or f"denial-{len(self.attempts)}")
                    self._attempt(ident, denial.get("tool_name"), denial.get("tool_input"), "denied")
            self._say(self._final(), turn=False)

    def _assistant(self, message: object) -> None:
        if not isinstance(message, dict):
            return
        model = _label(message.get("model"))
        if model and not model.startswith("<"):  # "<synthetic>": the CLI's own error message
            self.model = model
        ident = str(message.get("id") or f"message-{len(self._messages)}")
        raw = message.get("usage")
        usage: dict[str, Any] = raw if isinstance(raw, dict) else {}
        tokens_in = sum(
            _count(usage.get(k)) or 0
            for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
        )
        self._messages[ident] = (tokens_in, _count(usage.get("output_tokens")) or 0)
        content = message.get("content")
        for block in content if isinstance(content, list) else []:
            if not isinstance(block, dict):
                continue
            if str(block.get("type")).endswith("tool_use"):  # also server_tool_use, mcp_tool_use
                self._tool_use(block)
            elif block.get("type") == "text":
                self._say("writing its answer")

    def _tool_use(self, block: dict[str, Any]) -> None:
        ident = str(block.get("id") or f"tool-{len(self._names)}")
        name, tool_input = block.get("name"), block.get("input")
        self._names[ident] = (str(name), tool_input)
        if name not in TOOLS:
            self._attempt(ident, name, tool_input, "not offered")
        elif self._leaves_sandbox(str(name), tool_input):
            self._attempt(ident, name, tool_input, "outside the sandbox")
        self._say(f"{name} {self._target(tool_input)}".rstrip())

    def _user(self, message: object) -> None:
        content = message.get("content") if isinstance(message, dict) else None
        for block in content if isinstance(content, list) else []:
            if not isinstance(block, dict) or block.get("type") != "tool_result" or not block.get("is_error"):
                continue
            text = _text(block.get("content"))
            ident = str(block.get("tool_use_id"))
            name, tool_input = self._names.get(ident, (None, None))
            if NO_SUCH_TOOL in text:
                if name is None:  # "No such tool available: Bash. …"
                    name = text.split(NO_SUCH_TOOL, 1)[1].lstrip(": ").split(".")[0].split("<")[0].strip()
                self._attempt(ident, name, tool_input, "unavailable")
            elif "Permission to use" in text and "denied" in text:
                self._attempt(ident, name, tool_input, "denied")

    # -- judging -------------------------------------------------------------------

    def _attempt(self, ident: str, tool: object, tool_input: object, outcome: str) -> None:
        if ident in self.attempts:
            outcomes = self.attempts[ident][2]
            if outcome not in outcomes:
                outcomes.append(outcome)
            return
        if len(self.attempts) >= MAX_ATTEMPTS:
            return
        self.attempts[ident] = (str(tool or "?")[:VALUE_SUMMARY], _summary(tool_input), [outcome])

    def _inside(self, value: str) -> bool:
        """Does ``value`` name a place in the sandbox, as written and where it leads (a
        committed symlink to the home is inside by name only)?"""
        if value.startswith("~"):
            return False
        for root in self.roots:
            path = os.path.normpath(os.path.join(root, value))
            if _under(path, root):
                real_root = os.path.realpath(root)
                try:
                    return _under(os.path.realpath(path), real_root)
                except (OSError, ValueError):
                    return False
        return False

    @staticmethod
    def _pattern_escapes(pattern: str) -> bool:
        return pattern.startswith(("/", "~")) or ".." in pattern.replace("\\", "/").split("/")

    def _leaves_sandbox(self, tool: str, tool_input: object) -> bool:
        if not isinstance(tool_input, dict):
            return False
        for key in ("file_path", "path", "notebook_path"):
            value = tool_input.get(key)
            if isinstance(value, str) and value and not self._inside(value):
                return True
        return any(
            isinstance(tool_input.get(key), str) and self._pattern_escapes(str(tool_input.get(key)))
            for key in ("pattern", "glob")
            if tool == "Glob" or key == "glob"
        )

    def tool_attempts(self) -> list[ToolAttempt]:
        return [
            ToolAttempt(tool=tool, input=summary, outcome="; ".join(o for o in OUTCOMES if o in outcomes))
            for tool, summary, outcomes in self.attempts.values()
        ]

    # -- reporting -------------------------------------------------------------------

    @property
    def turns(self) -> int:
        return len(self._messages)

    def usage(self, duration_s: float) -> BuildUsage:
        result = self.result or {}
        raw = result.get("usage")
        usage = raw if isinstance(raw, dict) else {}
        init = self.init or {}
        summed = self._messages.values()
        return BuildUsage(
            cost_usd=_money(result.get("total_cost_usd")),
            turns=_count(result.get("num_turns")) if self.result else (self.turns or None),
            input_tokens=_count(usage.get("input_tokens")) if usage else (sum(i for i, _ in summed) or None),
            output_tokens=_count(usage.get("output_tokens"))
            if usage
            else (sum(o for _, o in summed) or None),
            cache_read_tokens=_count(usage.get("cache_read_input_tokens")),
            cache_creation_tokens=_count(usage.get("cache_creation_input_tokens")),
            duration_s=round(duration_s, 3),
            model=self.model or _label(init.get("model")),
            backend_version=_label(init.get("claude_code_version")),
        )

    def reason(self) -> str:
        """The CLI's own words for how it ended (bounded, one line)."""
        result = self.result or {}
        parts = [str(e) for e in result.get("errors") or [] if isinstance(e, (str, int, float))]
        if result.get("is_error") or not parts:
            text = result.get("result")
            if isinstance(text, str) and text:
                parts.append(text)
        status = result.get("api_error_status")
        if isinstance(status, int) and not isinstance(status, bool):
            parts.append(f"API status {status}")
        return " ".join("; ".join(parts).split())[:REASON_CHARS]

    def _target(self, tool_input: object) -> str:
        if not isinstance(tool_input, dict):
            return ""
        for key in ("file_path", "path", "pattern", "command", "url", "prompt"):
            value = tool_input.get(key)
            if isinstance(value, str) and value:
                for root in self.roots:
                    if value.startswith(root.rstrip("/") + "/"):
                        value = value[len(root.rstrip("/")) + 1 :]
                        break
                return value[:80]
        return ""

    def _final(self) -> str:
        result = self.result or {}
        cost = _money(result.get("total_cost_usd"))
        spent = f" · ${cost:.4f}" if cost is not None else ""
        subtype = str(result.get("subtype"))[:40]
        return f"finished ({subtype}): {_count(result.get('num_turns'))} turn(s){spent}"

    def _say(self, what: str, *, turn: bool = True) -> None:
        if self.progress is None:
            return
        tokens = sum(i + o for i, o in self._messages.values())
        elapsed = time.monotonic() - self.started
        line = (
            f"claude [{elapsed:.1f}s]" + (f" turn {self.turns}" if turn and self.turns else "") + f" · {what}"
        )
        if tokens and self.result is None:
            line += f" · {tokens:,} tokens so far"
        self.progress(" ".join(line.split())[:200])
