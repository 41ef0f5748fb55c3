"""End to end: the REAL Claude Code CLI calls a Kavi skill through ``git kavi serve mcp``.

The CLI (pinned in ``tests/clients``) is given ``--mcp-config`` naming ``git kavi serve
mcp`` (``--strict-mcp-config``: nothing else) and ``--allowedTools mcp__kavi__write_note``;
the only stand-in is the model, a loopback Anthropic Messages API that scripts the
``tool_use`` turn. The skill runs confined, and its run record names Claude Code as the
client (the ``clientInfo`` it sent in the MCP handshake).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from support.fake_anthropic import FakeAnthropicServer, Text, ToolUse, Turn
from support.real_claude import CREDENTIAL, PINNED, require_real_claude

pytestmark = [pytest.mark.claude_contract, pytest.mark.slow]

NOTE = {"path": "Inbox/AI/claude.md", "title": "From Claude", "body": "via MCP"}
QUIET = {  # what Kavi's claude backend sets too: no traffic but the model's API
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "DISABLE_AUTOUPDATER": "1",
}


def mcp_config(repo: Path) -> dict[str, object]:
    """The JSON the README tells other clients to use (``mcpServers``), for this forge
    (Claude Code starts servers in its own directory: ``--forge`` names the forge)."""
    keep = ("HOME", "PATH", "TMPDIR", "LANG", "GIT_CONFIG_NOSYSTEM")
    env = {k: v for k, v in os.environ.items() if k in keep or k.startswith(("GIT_AUTHOR", "GIT_COMMITTER"))}
    return {
        "mcpServers": {
            "kavi": {
                "command": sys.executable,
                "args": ["-m", "kavi", "serve", "mcp", "--forge", str(repo)],
                "env": env,
            }
        }
    }


def test_claude_code_calls_a_skill_through_kavi_and_the_record_names_it(mcp_forge: Path) -> None:
    from kavi.confine import jail

    claude = require_real_claude()
    repo = mcp_forge
    config = repo.parent / "mcp.json"
    config.write_text(json.dumps(mcp_config(repo)))
    # Claude Code may send its first request while the server is still starting (the init
    # event then says "pending") and offer no Kavi tool at all; under load that happens, so
    # such a run (nothing reaches Kavi) is repeated, at most twice
    for _attempt in range(3):
        proc, offered, results = _ask_claude(claude, config, repo)
        if any(t["name"] == "mcp__kavi__write_note" for t in offered):
            break
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    init = next(e for e in events if e.get("type") == "system" and e.get("subtype") == "init")
    assert init["mcp_servers"][0]["name"] == "kavi"  # (its status then: pending or connected)
    tool = next(t for t in offered if t["name"] == "mcp__kavi__write_note")
    assert "side-effect class FILE_WRITE" in tool["description"]
    assert sorted(tool["input_schema"]["required"]) == ["body", "path", "title"]
    [result] = results
    assert result.tool == "mcp__kavi__write_note" and not result.is_error, result.text
    assert "Inbox/AI/claude.md" in result.text
    assert (repo / "vault_out/Inbox/AI/claude.md").read_text() == "# From Claude\n\nvia MCP\n"
    import sqlite3

    con = sqlite3.connect(repo / ".git/kavi/ledger.db")
    [(status, caller, confinement)] = con.execute("SELECT status, caller, confinement FROM runs").fetchall()
    con.close()
    assert status == "SUCCEEDED"
    assert caller == f"mcp (stdio) client claude-code {PINNED}"
    if jail.available():
        assert confinement.startswith("namespaces (user, PID, mount, IPC)"), confinement
        assert "no network" in confinement


def _ask_claude(
    claude: Path, config: Path, repo: Path
) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]], list[Any]]:
    """One real Claude Code run against a scripted model: (the process, the tools its first
    request offered, the tool results it sent back)."""
    with FakeAnthropicServer() as model:
        model.script(
            Turn([ToolUse("mcp__kavi__write_note", NOTE)]),
            Turn([Text("The note is written.")]),
        )
        env = {**os.environ, **QUIET, "ANTHROPIC_API_KEY": CREDENTIAL, "ANTHROPIC_BASE_URL": model.base_url}
        # Claude Code connects --mcp-config servers in the background by default, and `-p`
        # may send its only turn before Kavi's server is up (no Kavi tool offered); this
        # documented switch makes it wait for the connection first
        env["MCP_CONNECTION_NONBLOCKING"] = "0"
        proc = subprocess.run(
            [
                str(claude),
                "-p",
                "Write a note through Kavi.",
                "--output-format",
                "stream-json",
                "--verbose",
                "--mcp-config",
                str(config),
                "--strict-mcp-config",
                "--allowedTools",
                "mcp__kavi__write_note",
                "--setting-sources",
                "",
                "--no-session-persistence",
                "--max-turns",
                "4",
                *os.environ.get("KAVI_TEST_CLAUDE_DEBUG", "").split(),
            ],
            cwd=repo.parent,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        offered = model.agent_requests[0].json()["tools"]
        results = model.tool_results()
    return proc, offered, results
