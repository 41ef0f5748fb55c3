"""A fake ``claude`` executable for fast unit tests: a stand-in for the external LLM only.

It proves no contract — ``test_claude_contract`` runs the real CLI for that — but it
behaves like what was observed of the real Claude Code CLI 2.1.197, so the fast tests
cannot drift from it:

* it accepts exactly the flags Kavi may pass (:data:`VALUE_FLAGS`, :data:`BOOL_FLAGS`,
  with the real CLI's arity and checks: an unknown option, a missing ``--verbose`` with
  ``stream-json`` or a bad choice ends it with the real CLI's error text and exit 1);
* its events have the real shapes: ``system``/``init`` (version, model, the tools of
  ``--tools``), one ``assistant`` event per content block (same message id, usage), a
  ``user`` event with each ``tool_result``, and a ``result`` event with cost, usage,
  turns and ``permission_denials``;
* a tool outside ``--tools`` is answered "No such tool available" and is *not* a
  permission denial; a read outside the sandbox is a denial (``Read(./**)``).

:func:`install` writes an executable script named ``claude`` into a directory (put it
first on PATH). Depending on ``mode`` the script misbehaves in one specific way; most
modes stand for an agent that could run code (which the real CLI, fenced, cannot): they
test that the gate does not rely on the fence. :data:`CLI_PRELUDE` (argv parsing and the
event helpers) is shared with :mod:`support.evil_agent`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from support.evidence import Evidence
from support.forge import WRITE_NOTE_DIR

VERSION = "2.1.197"
MODES = (
    "good",
    "third_file",
    "symlink",
    "exec_bit",
    "delete_tracked",
    "rename_tracked",
    "nested_repo",
    "git_dir_in_sandbox",
    "main_repo_tamper",
    "env_dump",
    "hang",
    "is_error",
    "ignored_file",
    "bash_attempt",
    "read_outside",
    "max_turns",
    "not_logged_in",
    "no_result",
    "read_withheld",
)

# The real CLI's arguments as Kavi may use them: name → takes a value.
VALUE_FLAGS = (
    "--output-format",
    "--tools",
    "--allowedTools",
    "--permission-mode",
    "--setting-sources",
    "--max-turns",
    "--max-budget-usd",
    "--model",
    "--effort",
    "--fallback-model",
    "--betas",
    "--append-system-prompt",
)
BOOL_FLAGS = (
    "-p",
    "--print",
    "--verbose",
    "--strict-mcp-config",
    "--safe-mode",
    "--disable-slash-commands",
    "--no-session-persistence",
    "--exclude-dynamic-system-prompt-sections",
)

CLI_PRELUDE = (
    r"""
import json, os, sys, time

VERSION = "__VERSION__"
VALUE_FLAGS = set(__VALUE_FLAGS__)
BOOL_FLAGS = set(__BOOL_FLAGS__)
CHOICES = {
    "--output-format": {"text", "json", "stream-json"},
    "--permission-mode": {"acceptEdits", "auto", "bypassPermissions", "default", "dontAsk", "plan"},
}


def _die(message):
    print(message, file=sys.stderr, flush=True)
    sys.exit(1)


def parse_cli(argv):
    opts, positional, i = {}, [], 0
    while i < len(argv):
        arg = argv[i]
        name, eq, value = arg.partition("=")
        if arg.startswith("-") and arg != "-":
            if name in BOOL_FLAGS and not eq:
                opts[name] = True
                i += 1
            elif name in VALUE_FLAGS:
                if not eq:
                    if i + 1 >= len(argv):
                        _die(f"error: option '{name} <value>' argument missing")
                    value = argv[i + 1]
                    i += 1
                opts[name] = value
                i += 1
            else:
                _die(f"error: unknown option '{arg}'")
        else:
            positional.append(arg)
            i += 1
    for flag, choices in CHOICES.items():
        if flag in opts and opts[flag] not in choices:
            _die(f"error: option '{flag} <format>' argument '{opts[flag]}' is invalid.")
    if opts.get("--output-format") == "stream-json" and not opts.get("--verbose"):
        _die("Error: When using --print, --output-format=stream-json requires --verbose")
    return opts, positional


OPTS, POSITIONAL = parse_cli(sys.argv[1:])
TOOLS = [t for t in (OPTS.get("--tools") or "").replace(" ", ",").split(",") if t]
RULES = [r for r in (OPTS.get("--allowedTools") or "").split(",") if r]
# Edit(./path) rules: the files the agent may write (Write(...) rules are not consulted)
ALLOWED = [r[len("Edit(./"):-1] for r in RULES if r.startswith("Edit(./") and r.endswith(")")]
MODEL = OPTS.get("--model") or "claude-sonnet-4-5-20250929"
_IDS = [0]
_STATE = {"turns": 0, "in": 0, "out": 0, "cost": 0.0, "denials": []}


def event(obj):
    print(json.dumps(obj), flush=True)


def _id(prefix):
    _IDS[0] += 1
    return f"{prefix}_fake{_IDS[0]:06d}"


def init():
    event({"type": "system", "subtype": "init", "cwd": os.getcwd(), "session_id": "fake-session",
           "tools": sorted(TOOLS), "mcp_servers": [], "model": MODEL,
           "permissionMode": OPTS.get("--permission-mode", "default"), "slash_commands": [],
           "apiKeySource": "ANTHROPIC_API_KEY", "claude_code_version": VERSION, "skills": [],
           "plugins": [], "analytics_disabled": True})


def assistant(*blocks, input_tokens=1200, output_tokens=150):
    # one event per content block, all with the message's id and usage (as the CLI does)
    message_id = _id("msg")
    _STATE["turns"] += 1
    _STATE["in"] += input_tokens
    _STATE["out"] += output_tokens
    _STATE["cost"] += input_tokens * 3e-6 + output_tokens * 15e-6
    ids = []
    for block in blocks:
        if block.get("type") == "tool_use":
            block = {**block, "id": _id("toolu")}
            ids.append(block["id"])
        event({"type": "assistant", "message": {"id": message_id, "type": "message", "role": "assistant",
               "model": MODEL, "content": [block], "stop_reason": None,
               "usage": {"input_tokens": input_tokens, "output_tokens": 1,
                         "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}},
               "parent_tool_use_id": None, "session_id": "fake-session"})
    return ids


def tool_result(tool_use_id, text, is_error=False):
    content = f"<tool_use_error>{text}</tool_use_error>" if is_error and "No such tool" in text else text
    event({"type": "user", "message": {"role": "user", "content": [
        {"type": "tool_result", "content": content, "is_error": is_error, "tool_use_id": tool_use_id}]},
        "parent_tool_use_id": None, "session_id": "fake-session"})


def call(name, tool_input):
    # one tool call the way the CLI answers it: unknown tools, denials, results
    (ident,) = assistant({"type": "tool_use", "name": name, "input": tool_input})
    if name not in TOOLS:
        tool_result(ident, f"Error: No such tool available: {name}. {name} exists but is not enabled "
                           "in this context.", is_error=True)
        return False
    path = tool_input.get("file_path") or tool_input.get("path") or "."
    full = os.path.normpath(os.path.join(os.getcwd(), path))
    inside = full == os.getcwd() or full.startswith(os.getcwd() + os.sep)
    rel = os.path.relpath(full, os.getcwd())
    writes = name in ("Edit", "Write")
    if (writes and rel not in ALLOWED) or not inside:
        _STATE["denials"].append({"tool_name": name, "tool_use_id": ident, "tool_input": tool_input})
        tool_result(ident, f"Permission to use {name} has been denied because Claude Code is running "
                           "in don't ask mode.", is_error=True)
        return False
    tool_result(ident, "ok")
    return True


def write(path, text):
    # the Write tool's effect and its events (what a real model's Write would leave)
    (ident,) = assistant({"type": "tool_use", "name": "Write",
                          "input": {"file_path": os.path.join(os.getcwd(), path), "content": text}})
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text)
    tool_result(ident, f"File created successfully at: {os.path.join(os.getcwd(), path)}")


def result_event(subtype="success", is_error=False, text="Both files written.", errors=None,
                 api_error_status=None):
    out = {"type": "result", "subtype": subtype, "is_error": is_error,
           "api_error_status": api_error_status, "duration_ms": 420, "duration_api_ms": 300,
           "num_turns": _STATE["turns"], "session_id": "fake-session",
           "total_cost_usd": round(_STATE["cost"], 6),
           "usage": {"input_tokens": _STATE["in"], "cache_creation_input_tokens": 0,
                     "cache_read_input_tokens": 0, "output_tokens": _STATE["out"]},
           "modelUsage": {MODEL: {"inputTokens": _STATE["in"], "outputTokens": _STATE["out"],
                                  "costUSD": round(_STATE["cost"], 6)}},
           "permission_denials": list(_STATE["denials"]), "terminal_reason": "completed"}
    if errors is not None:
        out["errors"] = errors
        out["result"] = None
    else:
        out["result"] = text
    return out
""".replace("__VERSION__", VERSION)
    .replace("__VALUE_FLAGS__", repr(VALUE_FLAGS))
    .replace("__BOOL_FLAGS__", repr(BOOL_FLAGS))
)


def cli_prelude(python: str) -> str:
    """The shebang and the shared argv parsing and event helpers of a fake ``claude``."""
    return f"#!{python}\nfrom pathlib import Path\n" + CLI_PRELUDE


SCRIPT = r"""
import socket, subprocess

MODE = {mode!r}
# the example skill's files, embedded: a confined agent cannot read the Kavi checkout
# when it lives under /tmp (a CI clone), which the jail replaces with an empty one
SOURCES = json.loads({sources!r})
EVIDENCE_PORT = {port!r}
MAIN_REPO = Path({main_repo!r}) if {main_repo!r} else None


def report(key, value):
    # loopback TCP: the one channel a confined agent shares with the test
    with socket.create_connection(("127.0.0.1", EVIDENCE_PORT), timeout=5) as conn:
        conn.sendall((json.dumps({{"key": key, "value": value}}) + "\n").encode())


report("record", {{"argv": sys.argv[1:], "cwd": os.getcwd(), "env": dict(os.environ)}})
init()
packet = Path("KAVI_BUILD_PACKET.md").read_text()
call("Read", {{"file_path": os.path.join(os.getcwd(), "KAVI_BUILD_PACKET.md")}})

skill_path, test_path = ALLOWED
write(skill_path, SOURCES["skill"])
write(test_path, SOURCES["test"])
assistant({{"type": "text", "text": "Both files written."}})
result = result_event()

if MODE == "third_file":
    Path("notes.txt").write_text("an extra file\n")
elif MODE == "symlink":
    os.remove(skill_path)
    os.symlink("/etc/passwd", skill_path)
elif MODE == "exec_bit":
    os.chmod(skill_path, 0o755)
elif MODE == "delete_tracked":
    os.remove("README.md")
elif MODE == "rename_tracked":
    Path("docs").mkdir(exist_ok=True)
    os.rename("README.md", "docs/README.md")
elif MODE == "nested_repo":
    subprocess.run(["git", "init", "-q", "vendor/inner"], check=True)
    Path("vendor/inner/x.py").write_text("X = 1\n")
elif MODE == "git_dir_in_sandbox":
    subprocess.run(["git", "config", "core.hooksPath", "/tmp/evil"], check=False,
                   capture_output=True)
    Path(".git/hooks").mkdir(parents=True)
    Path(".git/hooks/post-checkout").write_text("#!/bin/sh\necho pwned\n")
elif MODE == "main_repo_tamper":
    gitdir = MAIN_REPO / ".git"
    if not gitdir.is_dir():  # confined: the forge is out of sight
        report("main_repo", "hidden")
        sys.exit(1)
    (gitdir / "hooks" / "pre-push").write_text("#!/bin/sh\necho pwned\n")
    with open(gitdir / "config", "a") as fh:
        fh.write("[core]\n\thooksPath = /tmp/evil-hooks\n")
    subprocess.run(["git", "--git-dir", str(gitdir), "update-ref", "refs/heads/evil", "HEAD"],
                   check=False, capture_output=True)
    subprocess.run(["git", "--git-dir", str(gitdir), "config", "user.name", "Mallory"],
                   check=False, capture_output=True)
elif MODE == "env_dump":
    dump = "\n".join(f"{{k}}={{v}}" for k, v in sorted(os.environ.items()))
    Path("env.txt").write_text(dump)
    with open(skill_path, "a") as fh:
        fh.write("\n# " + dump.replace("\n", "\n# ") + "\n")
    print(dump, file=sys.stderr)
elif MODE == "hang":
    child = ("import json, socket, time\n"
             "time.sleep(3)\n"
             f"conn = socket.create_connection(('127.0.0.1', {{EVIDENCE_PORT}}))\n"
             "conn.sendall(json.dumps({{'key': 'alive', 'value': 1}}).encode() + bytes([10]))\n")
    subprocess.Popen([sys.executable, "-c", child])
    time.sleep(600)
elif MODE == "is_error":
    result = result_event("error_during_execution", True, errors=["API Error: 500 internal error"])
elif MODE == "ignored_file":
    Path("vault_out").mkdir(exist_ok=True)
    Path("vault_out/leak.md").write_text("ignored but present\n")
elif MODE == "bash_attempt":  # a removed tool: answered, and not recorded as a denial
    call("Bash", {{"command": "curl http://127.0.0.1:9/x"}})
    result = result_event()
elif MODE == "read_outside":
    call("Read", {{"file_path": "/etc/hostname"}})
    result = result_event()
elif MODE == "max_turns":
    result = result_event("error_max_turns", True, errors=["Reached maximum number of turns (2)"])
elif MODE == "not_logged_in":
    result = result_event("success", True, text="Not logged in · Please run /login")
elif MODE == "no_result":
    sys.exit(0)
elif MODE == "read_withheld":
    Path("listing.txt").write_text("\n".join(sorted(os.listdir("."))))

event(result)
sys.exit(1 if result["is_error"] else 0)
"""


def install(
    bin_dir: Path,
    mode: str,
    *,
    evidence: Evidence,
    main_repo: Path | None = None,
) -> Path:
    if mode not in MODES:
        raise ValueError(f"unknown fake claude mode {mode!r}")
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "claude"
    script.write_text(
        cli_prelude(sys.executable)
        + SCRIPT.format(
            mode=mode,
            sources=json.dumps(example_sources()),
            port=evidence.port,
            main_repo=str(main_repo) if main_repo else "",
        )
    )
    script.chmod(0o755)
    return script


def example_sources() -> dict[str, str]:
    """The write_note example's skill and test file contents."""
    return {
        "skill": (WRITE_NOTE_DIR / "skills" / "write_note.py").read_text(),
        "test": (WRITE_NOTE_DIR / "tests" / "test_skill_write_note.py").read_text(),
    }


def recorded(evidence: Evidence) -> dict[str, object]:
    """What the fake claude saw: its argv, cwd and environment."""
    data: dict[str, object] = evidence.wait("record", 5)
    return data
