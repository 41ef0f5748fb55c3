"""The contract harness: Kavi's claude backend running the REAL Claude Code CLI.

The CLI is installed from the npm registry at the version pinned in
``tests/clients/package.json`` (+ lockfile) by ``npm ci --prefix tests/clients`` (the
README's test command does that where npm exists). Where it is not installed the
contract tests are skipped with a reason that ``pytest -ra`` prints. The only stand-in
is the model: :class:`support.fake_anthropic.FakeAnthropicServer` on loopback, reached
through ``ANTHROPIC_BASE_URL`` — a variable the backend passes through as a non-secret
setting (``env_passthrough``), exactly as a user's gateway would be.

:class:`Contract` is one forge (copied from a per-session template) with a proposal,
the real CLI first on ``PATH``, a credential, the fake model, and a loopback
:class:`support.evidence.Evidence` listener for canaries (hooks, MCP servers, shell
commands or fetches that must never run report there: the one channel a confined
process shares with the test).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest

from support.evidence import Evidence
from support.fake_anthropic import FakeAnthropicServer, ModelRequest, Text, ToolUse, Turn
from support.fake_claude import example_sources
from support.forge import git, kavi

CLIENTS = Path(__file__).resolve().parents[1] / "clients"
PINNED: str = json.loads((CLIENTS / "package.json").read_text())["dependencies"]["@anthropic-ai/claude-code"]
CLAUDE_BIN = CLIENTS / "node_modules" / ".bin" / "claude"
CREDENTIAL = "sk-ant-api03-contract-credential-5f1e9a"
SKILL = "skills/write_note.py"
TEST = "tests/test_skill_write_note.py"


@lru_cache(maxsize=1)
def installed_version() -> str | None:
    if not CLAUDE_BIN.exists():
        return None
    proc = subprocess.run(
        [str(CLAUDE_BIN), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    return proc.stdout.split()[0] if proc.returncode == 0 and proc.stdout.split() else None


def require_real_claude() -> Path:
    """The pinned CLI, or a visible skip saying how to install it."""
    version = installed_version()
    if version is None:
        how = "npm ci --prefix tests/clients" if shutil.which("npm") else "npm is not installed"
        pytest.skip(
            f"contract suite skipped: the real Claude Code CLI {PINNED} is not installed "
            f"(tests/clients; {how})"
        )
    if version != PINNED:
        pytest.fail(f"tests/clients holds Claude Code {version}, the lockfile pins {PINNED}: run npm ci")
    return CLAUDE_BIN


def write_both(request: ModelRequest) -> list[ToolUse]:
    """What a good model does: Write both allowed files (absolute paths, as the tool wants)."""
    sources = example_sources()
    return [
        ToolUse("Write", {"file_path": f"{request.cwd}/{SKILL}", "content": sources["skill"]}),
        ToolUse("Write", {"file_path": f"{request.cwd}/{TEST}", "content": sources["test"]}),
    ]


def good_turns() -> list[Turn]:
    return [Turn(write_both), Turn([Text("Both files written.")])]


def report_command(port: int, key: str) -> str:
    """A shell command that reports ``key`` (with its environment) to the evidence listener."""
    code = (
        "import json,os,socket;"
        f"c=socket.create_connection(('127.0.0.1',{port}),timeout=5);"
        f"c.sendall((json.dumps({{'key':'{key}','value':sorted(os.environ)}})+chr(10)).encode())"
    )
    return f'python3 -c "{code}"'


@dataclass
class Contract:
    repo: Path
    proposal: str
    model: FakeAnthropicServer
    canary: Evidence
    tmp: Path
    confine: str

    # -- the forge -------------------------------------------------------------------

    def commit(self, files: dict[str, str], message: str = "an ordinary, unsigned commit") -> None:
        """Commit ``files`` on the target branch the way anyone with push access could."""
        for rel, text in files.items():
            path = self.repo / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            git("add", "-f", rel, cwd=self.repo)
        git("commit", "-q", "-m", message, cwd=self.repo)

    def configure(self, edit: Callable[[dict[str, Any]], None]) -> None:
        """Change ``.kavi/config.yaml`` (committed: Kavi reads the committed governance)."""
        import yaml

        path = self.repo / ".kavi/config.yaml"
        data = yaml.safe_load(path.read_text())
        edit(data)
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        git("commit", "-q", "-am", "configure the claude backend", cwd=self.repo)

    # -- running -----------------------------------------------------------------------

    def build(self, *extra: str, fmt: str = "json") -> tuple[int, dict[str, Any], str]:
        res = kavi(
            "build-skill", self.proposal, "--backend", "claude", *extra, "--format", fmt, cwd=self.repo
        )
        data = res.json if fmt == "json" and res.stdout.strip().startswith("{") else {}
        return res.code, data, res.stderr if fmt == "json" else res.stdout + res.stderr

    # -- what happened ---------------------------------------------------------------

    def everything_written(self) -> str:
        """The vault, the ledger and every ref's objects: where a leaked secret would show."""
        parts = [p.read_text(errors="replace") for p in (self.repo / "vault_out").rglob("*") if p.is_file()]
        con = sqlite3.connect(self.repo / ".git/kavi/ledger.db")
        parts.append("\n".join(con.iterdump()))
        con.close()
        for ref in git("for-each-ref", "--format=%(refname)", "refs/heads/skill", cwd=self.repo).split():
            parts.append(git("grep", "-I", "-h", "", ref, cwd=self.repo, check=False))
        return "\n".join(parts)

    def sent_to_model(self) -> str:
        return "\n".join(r.messages_text for r in self.model.requests)

    def attempts(self, build: dict[str, Any]) -> set[tuple[str, str]]:
        return {(a["tool"], a["outcome"]) for a in build.get("tool_attempts", [])}

    def builds(self) -> list[dict[str, Any]]:
        data: dict[str, Any] = kavi("show", self.proposal, "--format", "json", cwd=self.repo).json
        return list(data["builds"])


def open_contract(
    template: tuple[Path, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    confine: str,
    *,
    need_jail: bool = False,
) -> Contract:
    """``confine`` is the policy's ``sandbox.confine``; with ``need_jail`` the case is about
    the jail and is skipped where the machine has none."""
    from kavi.backends import jail

    require_real_claude()
    if need_jail and not jail.available():
        pytest.skip("the namespace jail is unavailable on this machine")
    root, proposal = template
    repo = tmp_path / "forge"
    shutil.copytree(root / "forge", repo, symlinks=True)
    if confine == "off":
        policy = repo / ".kavi/policy.yaml"
        policy.write_text(policy.read_text().replace("confine: auto", "confine: 'off'"))
        git("commit", "-q", "-am", "builds without the namespace jail", cwd=repo)
    model = FakeAnthropicServer().start()
    canary = Evidence()
    monkeypatch.setenv("PATH", f"{CLAUDE_BIN.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("ANTHROPIC_API_KEY", CREDENTIAL)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", model.base_url)
    return Contract(repo, proposal, model, canary, tmp_path, confine)


def close_contract(contract: Contract) -> None:
    contract.model.close()
    contract.canary.close()


class Listener:
    """A loopback TCP listener that records the first line of every connection (a proxy
    nobody should use: ``CONNECT api.anthropic.com:443`` would show up here)."""

    def __init__(self) -> None:
        import socket
        import threading

        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.2)
        self.port: int = self._server.getsockname()[1]
        self.lines: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    first = conn.recv(512).split(b"\r\n", 1)[0]
                except OSError:
                    first = b"(nothing read)"
                self.lines.append(first.decode("latin-1"))

    def close(self) -> None:
        self._stop.set()
        self._server.close()
        self._thread.join(timeout=2)
