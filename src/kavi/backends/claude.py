"""``claude`` backend: Claude Code in headless mode, fenced in.

The command runs with cwd = sandbox, stdin from /dev/null, its own process group, a
hard timeout, a scrubbed environment, and tools limited to reading and editing the
two allowed files (shell, web and sub-agents disallowed), capped by ``--max-turns``
and ``--max-budget-usd``. Exit status 0 is not success: the final ``result`` event
of the ``stream-json`` output must report ``subtype == "success"`` and
``is_error == false`` with no permission denials. The gate judges the files after.
"""

from __future__ import annotations

import json
import shutil
from typing import Any

from kavi.backends.base import BackendRequest, BackendResult
from kavi.config import ClaudeBackendConfig
from kavi.confine.jail import Jail, confine
from kavi.confine.proc import run_bounded
from kavi.errors import BackendError

DISALLOWED_TOOLS = (
    "Bash",
    "BashOutput",
    "KillShell",
    "WebFetch",
    "WebSearch",
    "Task",
    "NotebookEdit",
    "SlashCommand",
    "Skill",
)

PROMPT = """You are the code-writing backend of Kavi, a governed skill forge.
Read the build packet below (also in ./KAVI_BUILD_PACKET.md) and write exactly these files:
{paths}
Write complete file contents with the Write/Edit tools. Do not create, rename, delete or
modify any other file, and do not try to run commands: no shell is available. When both
files are written, reply with one short sentence.

{packet}"""


def build_argv(config: ClaudeBackendConfig, executable: str, request: BackendRequest) -> list[str]:
    paths = "\n".join(f"- {p}" for p in request.allowed_paths)
    prompt = PROMPT.format(paths=paths, packet=request.packet_text)
    allowed = ["Read", "Glob", "Grep"]
    for p in request.allowed_paths:
        allowed += [f"Edit({p})", f"Write({p})"]
    argv = [
        executable,
        "-p",
        prompt,
        "--output-format",
        "stream-json",
        "--verbose",
        "--permission-mode",
        "dontAsk",
        "--allowedTools",
        ",".join(allowed),
        "--disallowedTools",
        ",".join(DISALLOWED_TOOLS),
        "--max-turns",
        str(config.max_turns),
        "--max-budget-usd",
        f"{config.max_budget_usd:g}",
    ]
    if config.model:
        argv += ["--model", config.model]
    return argv + list(config.extra_args)


def parse_stream(stdout: str) -> tuple[dict[str, Any] | None, int]:
    """The last ``result`` event of a stream-json transcript, and the number of events."""
    result: dict[str, Any] | None = None
    count = 0
    for line in stdout.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            event = json.loads(line)
        except (ValueError, RecursionError):  # malformed, absurdly nested, or huge numbers
            continue
        if not isinstance(event, dict):
            continue
        count += 1
        if event.get("type") == "result":
            result = event
    return result, count


def _scalar(value: object) -> object:
    """A result field as the ledger may keep it: plain scalars, anything else described."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return value[:2000]
    return f"({type(value).__name__})"


class ClaudeBackend:
    name = "claude"

    def __init__(self, config: ClaudeBackendConfig) -> None:
        self.config = config

    def executable(self, path_env: str | None) -> str:
        found = shutil.which(self.config.command, path=path_env)
        if not found:
            raise BackendError(
                f"Claude Code executable {self.config.command!r} not found on PATH",
                why="the claude backend runs Claude Code's CLI in headless mode",
                remedy="install Claude Code (`npm install -g @anthropic-ai/claude-code`), set "
                "backends.claude.command in .kavi/config.yaml, or use --backend files/openai",
            )
        return found

    def run(self, request: BackendRequest) -> BackendResult:
        argv = build_argv(self.config, self.executable(request.env.get("PATH")), request)
        timeout = min(request.timeout_seconds, self.config.timeout_seconds)
        plan = request.confinement
        jail = (
            confine(argv, plan, cwd=request.sandbox, path_env=request.env.get("PATH"))
            if plan is not None
            else Jail(argv, False)
        )
        confined = jail.confined
        proc = run_bounded(
            jail.argv, cwd=request.sandbox, env=request.env, timeout=timeout, reap_orphans=True
        )
        transcript = (
            "confinement: "
            + (
                "namespaces (user, mount, PID, IPC; no capabilities); read-only filesystem, "
                "forge and home hidden, private /tmp and /run, "
                f"{len(plan.withhold) if plan else 0} secret path(s) withheld"
                if confined
                else "none (tripwire only)"
            )
            + "\n"
            f"$ {self.config.command} -p <packet> {' '.join(argv[3:])}\n"
            f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}\n"
            f"--- exit: {'killed after timeout' if proc.timed_out else proc.returncode}"
            f" in {proc.duration_s:.1f}s ---\n"
        )
        details: dict[str, Any] = {
            "exit_code": proc.returncode,
            "duration_s": proc.duration_s,
            "confined": confined,
        }
        if proc.timed_out:
            return BackendResult(
                ok=False,
                reason=f"claude did not finish within {timeout:g}s; its process group was killed",
                transcript=transcript,
                details=details,
            )
        result, events = parse_stream(proc.stdout)
        details["events"] = events
        if result is None:
            return BackendResult(
                ok=False,
                reason=f"claude exited {proc.returncode} without a final result event",
                transcript=transcript,
                details=details,
            )
        result = {key: _scalar(value) for key, value in result.items() if key != "permission_denials"} | {
            "permission_denials": result.get("permission_denials")
        }
        details.update(
            {
                "subtype": result.get("subtype"),
                "is_error": result.get("is_error"),
                "num_turns": result.get("num_turns"),
                "total_cost_usd": result.get("total_cost_usd"),
            }
        )
        denials = result.get("permission_denials") or []
        if not isinstance(denials, list):
            return BackendResult(
                ok=False,
                reason="claude's result event is malformed (permission_denials is not a list)",
                transcript=transcript,
                details=details,
            )
        if result.get("is_error") or result.get("subtype") != "success":
            reason = (
                f"claude reported failure (subtype={result.get('subtype')!r}, "
                f"is_error={result.get('is_error')!r})"
            )
            return BackendResult(ok=False, reason=reason, transcript=transcript, details=details)
        if denials:
            names = sorted({str(d.get("tool_name", "?"))[:100] for d in denials if isinstance(d, dict)})
            details["permission_denials"] = [
                _scalar(d.get("tool_name")) if isinstance(d, dict) else "?" for d in denials[:100]
            ]
            return BackendResult(
                ok=False,
                reason=f"claude attempted tools it is not allowed to use: {', '.join(names)}",
                transcript=transcript,
                details=details,
            )
        if proc.returncode != 0:
            return BackendResult(
                ok=False,
                reason=f"claude exited {proc.returncode} despite a success result",
                transcript=transcript,
                details=details,
            )
        return BackendResult(ok=True, transcript=transcript, details=details)
