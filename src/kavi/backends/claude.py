"""``claude`` backend: Claude Code in headless mode, fenced in (D037–D039).

What the CLI is told (checked against the real CLI, 2.1.197):

* ``--tools Read,Glob,Grep,Edit,Write``: the only built-in tools it offers the model (no
  shell, web, sub-agents, scheduled tasks, workflows, worktrees…);
* ``--allowedTools Read(./**),Edit(./<skill>),Edit(./<test>)`` with ``--permission-mode
  dontAsk``: reads within the sandbox, writes to the two files (``Edit`` rules govern
  ``Write`` too), everything else refused;
* ``--setting-sources ""``, ``--strict-mcp-config``, ``--safe-mode``,
  ``--disable-slash-commands``: no settings, hooks, ``env``, MCP servers, CLAUDE.md,
  skills or commands from the sandbox (which is a checkout of what anyone could push) or
  the home;
* ``--no-session-persistence``, ``--max-turns``, ``--max-budget-usd``; and an
  environment with the switches of :data:`kavi.backends.env.CLAUDE_SWITCHES`.

It runs with cwd = sandbox, stdin from /dev/null, its own process group, a hard timeout
and a scrubbed environment. Exit status 0 is not success: the stream is judged event by
event (:mod:`kavi.backends.claude_stream`), then the ``result`` event must say
``success`` without error. The gate judges the files after.
"""

from __future__ import annotations

import re
import shlex
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from kavi.backends.base import BackendRequest, BackendResult
from kavi.backends.claude_stream import TOOLS, StreamJudge
from kavi.backends.env import CLAUDE_SWITCHES
from kavi.backends.jail import Jail, confine
from kavi.backends.proc import run_bounded
from kavi.config import ClaudeBackendConfig
from kavi.errors import BackendError, ConfigError

# Flags a forge may add through backends.claude.extra_args (each takes one value, but
# the last): none of them widens the fence.
EXTRA_FLAGS = {
    "--effort": 1,
    "--fallback-model": 1,
    "--betas": 1,
    "--append-system-prompt": 1,
    "--exclude-dynamic-system-prompt-sections": 0,
}
# a path must be matched by the permission rule literally (no glob, no list separator)
_UNSAFE_PATH = re.compile(r"[*?\[\]{}!\\,()\s#]")

PROMPT = """You are the code-writing backend of Kavi, a governed skill forge.
Read the build packet below (also in ./KAVI_BUILD_PACKET.md) and write exactly these files:
{paths}
Write complete file contents with the Write/Edit tools. Do not create, rename, delete or
modify any other file, do not read anything outside the current directory, and do not try
to run commands: no shell is available. When both files are written, reply with one short
sentence.

{packet}"""


def _budget(config: ClaudeBackendConfig, request: BackendRequest) -> str:
    cap = (
        config.max_budget_usd
        if request.budget_usd is None
        else min(config.max_budget_usd, request.budget_usd)
    )
    return f"{max(cap, 0.000001):.6f}".rstrip("0").rstrip(".")


def build_argv(config: ClaudeBackendConfig, executable: str, request: BackendRequest) -> list[str]:
    paths = "\n".join(f"- {p}" for p in request.allowed_paths)
    prompt = PROMPT.format(paths=paths, packet=request.packet_text)
    allowed = ["Read(./**)", *(f"Edit(./{p})" for p in request.allowed_paths)]
    argv = [
        executable,
        "-p",
        prompt,
        "--output-format",
        "stream-json",
        "--verbose",
        "--tools",
        ",".join(TOOLS),
        "--allowedTools",
        ",".join(allowed),
        "--permission-mode",
        "dontAsk",
        "--setting-sources",
        "",
        "--strict-mcp-config",
        "--safe-mode",
        "--disable-slash-commands",
        "--no-session-persistence",
        "--max-turns",
        str(config.max_turns),
        "--max-budget-usd",
        _budget(config, request),
    ]
    if config.model:
        argv += ["--model", config.model]
    return argv + list(config.extra_args)


def extra_args_problem(args: Sequence[str]) -> str | None:
    """Why ``extra_args`` cannot be passed (None: they can)."""
    i = 0
    while i < len(args):
        flag = args[i].split("=", 1)[0]
        if flag not in EXTRA_FLAGS:
            return f"{args[i]!r} is not one of {', '.join(EXTRA_FLAGS)}"
        i += 1 if "=" in args[i] else 1 + EXTRA_FLAGS[flag]
    return None


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

    def preflight(self, environ: Mapping[str, str], allowed_paths: Sequence[str]) -> None:
        """Everything that can be known before a build starts: refused here, nothing is written."""
        self.executable(environ.get("PATH"))
        problem = extra_args_problem(self.config.extra_args)
        if problem:
            raise ConfigError(
                f"backends.claude.extra_args cannot be passed to Claude Code: {problem}",
                why="Kavi sets the flags that fence the agent in; other flags could undo them",
                remedy="remove the argument from .kavi/config.yaml",
            )
        for path in allowed_paths:
            if _UNSAFE_PATH.search(path):
                raise ConfigError(
                    f"the claude backend cannot fence the path {path!r}",
                    why="its permission rules would read glob or separator characters in it",
                    remedy="use skills_dir/tests_dir without *?[]{}!,()#, spaces or backslashes",
                )
        names = self.config.credential_env
        if not any(environ.get(name) for name in names):
            raise ConfigError(
                "no credential for Claude Code: none of " + ", ".join(names) + " is set",
                why="the claude backend runs Claude Code with a throwaway home, so a `claude login` "
                "session is not used; it needs a credential in the environment",
                remedy="export ANTHROPIC_API_KEY (an API key) or CLAUDE_CODE_OAUTH_TOKEN (from "
                "`claude setup-token`), or list your variable in backends.claude.credential_env",
                code="KAVI-NO-CREDENTIAL",
            )

    def run(self, request: BackendRequest) -> BackendResult:
        argv = build_argv(self.config, self.executable(request.env.get("PATH")), request)
        timeout = min(request.timeout_seconds, self.config.timeout_seconds)
        plan = request.confinement
        jail = (
            confine(argv, plan, cwd=request.sandbox, path_env=request.env.get("PATH"))
            if plan is not None
            else Jail(argv, False)
        )
        judge = StreamJudge(roots=_roots(request.sandbox), progress=request.progress)
        proc = run_bounded(
            jail.argv,
            cwd=request.sandbox,
            env={**request.env, **CLAUDE_SWITCHES},
            timeout=timeout,
            reap_orphans=True,
            on_line=judge.feed,
        )
        transcript = (
            "confinement: "
            + (
                "namespaces (user, mount, PID, IPC; no capabilities); read-only filesystem, "
                "forge and home hidden, private /tmp and /run, "
                f"{len(plan.withhold) if plan else 0} secret path(s) withheld"
                if jail.confined
                else "none (tripwire only)"
            )
            + "\n"
            f"$ {self.config.command} -p <packet> {shlex.join(argv[3:])}\n"
            f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}\n"
            f"--- exit: {'killed after timeout' if proc.timed_out else proc.returncode}"
            f" in {proc.duration_s:.1f}s ---\n"
        )
        result = judge.result or {}
        details: dict[str, Any] = {
            "exit_code": proc.returncode,
            "duration_s": proc.duration_s,
            "confined": jail.confined,
            "events": judge.events,
            "subtype": str(result.get("subtype"))[:100] if judge.result else None,
            "is_error": result.get("is_error") if isinstance(result.get("is_error"), bool) else None,
        }
        reason = _verdict(judge, proc.returncode, proc.timed_out, timeout, proc.stderr)
        return BackendResult(
            ok=not reason,
            reason=reason,
            transcript=transcript,
            details=details,
            usage=judge.usage(proc.duration_s),
            attempts=judge.tool_attempts(),
        )


def _roots(sandbox: Path) -> tuple[str, ...]:
    return tuple(dict.fromkeys((str(sandbox), str(sandbox.resolve()))))


def _stderr_tail(stderr: str) -> str:
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    return " ".join(" | ".join(lines[-3:]).split())[:300]


def _verdict(judge: StreamJudge, code: int | None, timed_out: bool, timeout: float, stderr: str) -> str:
    """Why the run failed, in order of weight ("" if it did not)."""
    problems: list[str] = []
    if timed_out:
        problems.append(f"claude did not finish within {timeout:g}s; its process group was killed")
    attempts = judge.tool_attempts()
    if attempts:
        listed = ", ".join(f"{a.tool} ({a.outcome})" for a in attempts[:10])
        more = f" and {len(attempts) - 10} more" if len(attempts) > 10 else ""
        problems.append(f"claude attempted {len(attempts)} tool call(s) outside its fence: {listed}{more}")
    if judge.dropped or judge.unreadable:
        problems.append(
            f"claude's output could not be read whole ({judge.dropped} over-long, "
            f"{judge.unreadable} malformed line(s))"
        )
    if timed_out:
        return "; ".join(problems)
    result = judge.result
    if result is None:
        tail = _stderr_tail(stderr)
        problems.append(f"claude exited {code} without a final result event" + (f": {tail}" if tail else ""))
    elif result.get("is_error") is not False or result.get("subtype") != "success":
        said = judge.reason()
        problems.append(f"claude stopped ({str(result.get('subtype'))[:60]})" + (f": {said}" if said else ""))
    elif code != 0:
        problems.append(f"claude exited {code} despite a success result")
    return "; ".join(problems)
