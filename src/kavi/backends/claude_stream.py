"""Judging Claude Code's ``stream-json`` output, event by event (D037).

The final ``result`` event says how the CLI ended, but not what the agent tried: a call
to a tool the CLI does not offer is answered "No such tool available" and never recorded
as a permission denial. So every event is read as it arrives:

* ``system``/``init``: the CLI's version and model, the tools it offers;
* ``assistant``: every ``tool_use`` — a tool other than the five (Read, Glob, Grep, Edit,
  Write) is an attempt "not offered"; a path argument that leaves the sandbox (an
  absolute one elsewhere, ``..``, ``~``) is an attempt "outside the sandbox", even where
  the CLI would have allowed it (a ``Glob`` of ``/etc/*`` is answered); an ``Edit`` or
  ``Write`` of any file but the two is an attempt "not an allowed file", whatever the CLI
  answers (it checks its input before its permissions: a file not read yet, a string not
  found is a validation error, never a denial);
* ``user``: every ``tool_result`` — "No such tool available" is an attempt "unavailable",
  a permission refusal an attempt "denied";
* ``result``: ``permission_denials`` (each "denied"), cost, turns, tokens; more than one
  result event is an error.

A tool-use id the model repeats names each of its calls separately (results are matched
in order). Any attempt fails the build. The judge never raises on malformed input: what
it cannot read it counts, and a line too long to read fails the build. The transcript the
build log keeps (:meth:`StreamJudge.kept`) leaves out what a refused call returned.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kavi.confine.proc import DROPPED_LINE
from kavi.ledger.models import BuildUsage, ToolAttempt

TOOLS = ("Read", "Glob", "Grep", "Edit", "Write")
OUTCOMES = ("not offered", "unavailable", "denied", "outside the sandbox", "not an allowed file")
# shown only when nothing else refused the call (a write the CLI failed to validate)
_FALLBACK = "not an allowed file"
WRITE_TOOLS = ("Edit", "Write")
NOT_KEPT = "[kavi: the result of a refused call not kept]"
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
    writable: tuple[str, ...] = ()  # the files it may write, relative to the sandbox
    progress: Callable[[str], None] | None = None
    started: float = field(default_factory=time.monotonic)
    init: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    events: int = 0
    results: int = 0  # result events (the CLI ends with exactly one)
    unreadable: int = 0
    dropped: int = 0
    model: str | None = None
    attempts: dict[str, tuple[str, str, list[str]]] = field(
        default_factory=dict
    )  # call → tool, input, outcomes
    _names: dict[str, tuple[str, object]] = field(default_factory=dict)  # call → tool, input
    _calls: dict[str, list[str]] = field(default_factory=dict)  # tool-use id → its calls, in order
    _answered: dict[str, int] = field(default_factory=dict)  # tool-use id → results seen
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
            self.results += 1
            self.result = event
            denials = event.get("permission_denials")
            if denials is not None and not isinstance(denials, list):
                self.unreadable += 1  # malformed: refused, never read as "no denials"
            for denial in denials if isinstance(denials, list) else []:
                if isinstance(denial, dict):
                    ident = str(denial.get("tool_use_id") or f"denial-{len(self.attempts)}")
                    call = self._denied_call(ident, denial.get("tool_name"))
                    if call is not None:
                        self._attempt(call, denial.get("tool_name"), denial.get("tool_input"), "denied")
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
        calls = self._calls.setdefault(ident, [])
        call = ident if not calls else f"{ident}#{len(calls) + 1}"  # a repeated id: another call
        calls.append(call)
        name, tool_input = block.get("name"), block.get("input")
        self._names[call] = (str(name), tool_input)
        if name not in TOOLS:
            self._attempt(call, name, tool_input, "not offered")
        else:
            if self._leaves_sandbox(str(name), tool_input):
                self._attempt(call, name, tool_input, "outside the sandbox")
            if name in WRITE_TOOLS and not self._may_write(tool_input):
                self._attempt(call, name, tool_input, _FALLBACK)
        self._say(f"{name} {self._target(tool_input)}".rstrip())

    def _answered_call(self, ident: str) -> str:
        """The call a result with tool-use id ``ident`` answers: the calls of a repeated id
        are answered in order."""
        calls = self._calls.get(ident)
        if not calls:
            return ident
        seen = self._answered.get(ident, 0)
        self._answered[ident] = seen + 1
        return calls[min(seen, len(calls) - 1)]

    def _denied_call(self, ident: str, tool: object) -> str | None:
        """The call a listed permission denial names — of a repeated id, the one of that
        tool — or None when it is already recorded as denied."""
        calls = self._calls.get(ident) or [ident]
        named = [c for c in calls if self._names.get(c, (None,))[0] == tool]
        for call in named or calls:
            if "denied" not in self.attempts.get(call, ("", "", []))[2]:
                return call
        return None

    def _user(self, message: object) -> None:
        content = message.get("content") if isinstance(message, dict) else None
        for block in content if isinstance(content, list) else []:
            if not isinstance(block, dict) or block.get("type") != "tool_result":
                continue
            call = self._answered_call(str(block.get("tool_use_id")))
            if not block.get("is_error"):
                continue
            text = _text(block.get("content"))
            name, tool_input = self._names.get(call, (None, None))
            if NO_SUCH_TOOL in text:
                if name is None:  # "No such tool available: Bash. …"
                    name = text.split(NO_SUCH_TOOL, 1)[1].lstrip(": ").split(".")[0].split("<")[0].strip()
                self._attempt(call, name, tool_input, "unavailable")
            elif "Permission to use" in text and "denied" in text:
                self._attempt(call, name, tool_input, "denied")

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

    def _may_write(self, tool_input: object) -> bool:
        """Does an Edit/Write name one of the files it may write (lexically: a symlink to it
        is another file)?"""
        value = tool_input.get("file_path") if isinstance(tool_input, dict) else None
        if not isinstance(value, str) or not value or value.startswith("~"):
            return False
        for root in self.roots:
            allowed = {os.path.normpath(os.path.join(root, w)) for w in self.writable}
            if os.path.normpath(os.path.join(root, value)) in allowed:
                return True
        return False

    def _pattern_escapes(self, pattern: str) -> bool:
        """Could a glob pattern reach outside the sandbox? ``~`` or a ``..`` anywhere; an
        absolute one unless the directory before its first wildcard is in the sandbox
        (the CLI searches from there: a model that spells the sandbox out is no attempt)."""
        parts = pattern.replace("\\", "/").split("/")
        if pattern.startswith("~") or ".." in parts:
            return True
        if not pattern.startswith("/"):
            return False
        cut = min((i for i, c in enumerate(pattern) if c in "*?[{"), default=len(pattern))
        base = pattern[: pattern.rfind("/", 0, cut) + 1] or "/"
        return not self._inside(base)

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
        def outcome(outcomes: list[str]) -> str:
            named = [o for o in OUTCOMES if o in outcomes and o != _FALLBACK]
            return "; ".join(named) if named else _FALLBACK

        return [
            ToolAttempt(tool=tool, input=summary, outcome=outcome(outcomes))
            for tool, summary, outcomes in self.attempts.values()
        ]

    def kept(self, stdout: str) -> str:
        """``stdout`` as the build log keeps it: what a refused call returned is replaced by
        :data:`NOT_KEPT` — all of it for a call outside the sandbox (the CLI answers a
        ``Glob`` of ``/``), else unless it is the CLI's refusal (an error result) — and a
        line that is not whole JSON is left out (it could hold either)."""
        ids = {call: ident for ident, calls in self._calls.items() for call in calls}
        outside, refused = set(), set()
        for call, (_tool, _summary, outcomes) in self.attempts.items():
            ident = ids.get(call, call)
            refused.add(ident)
            if "outside the sandbox" in outcomes:
                outside.add(ident)
        lines: list[str] = []
        for line in stdout.split("\n"):
            if not line.lstrip().startswith("{"):
                lines.append(line)
                continue
            try:
                event = json.loads(line)
            except (ValueError, RecursionError):
                lines.append(f"[kavi: a line of {len(line)} characters that is not whole JSON not kept]")
                continue
            lines.append(_without_results(event, outside, refused) or line)
        return "\n".join(lines)

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

    @property
    def result_problem(self) -> str | None:
        return f"claude reported {self.results} final results" if self.results > 1 else None

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


def _without_results(event: object, outside: set[str], refused: set[str]) -> str | None:
    """``event`` (a ``user`` event) re-serialised without the results it must not keep;
    None when it keeps them all."""
    message = event.get("message") if isinstance(event, dict) and event.get("type") == "user" else None
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(event, dict) or not isinstance(content, list):
        return None
    changed = False
    for block in content:
        if not isinstance(block, dict) or block.get("type") != "tool_result":
            continue
        ident = str(block.get("tool_use_id"))
        if ident in outside or (ident in refused and not block.get("is_error")):
            block["content"] = NOT_KEPT
            changed = True
    if not changed:
        return None
    if "tool_use_result" in event:  # the CLI's structured copy of the same result
        event["tool_use_result"] = NOT_KEPT
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))
