"""A forge serving one skill per side-effect class, and the official MCP Python client on it.

:func:`build_template` promotes (propose → build with the ``files`` backend → verify →
promote, all real) ``write_note`` (FILE_WRITE, the shipped example) and small skills
— ``shout`` (READ_ONLY), ``lookup_rate`` (NETWORK), ``pay`` (MONEY) — and leaves
``send_message`` (MESSAGING) VERIFIED for a test to promote while a client is connected,
on a forge whose committed, signed policy allows NETWORK and MESSAGING and wants the
user's approval for MONEY. Built once per session; each test gets a copy.

:func:`connect` starts ``git kavi serve mcp`` (the real console entry point, as a
client would: ``python -m kavi serve mcp``) in the forge over stdio and opens an
``mcp.client.session.ClientSession`` on it: the SDK's own client, handshake and all.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import yaml

from conftest import isolation
from support.forge import (
    WRITE_NOTE_DIR,
    git,
    kavi_json,
    make_forge,
    propose_write_note,
    ssh_key,
    use_signing_key,
)
from support.skills import promote, skill_source, skill_tests_source

SKILLS: dict[str, tuple[str, dict[str, dict[str, str]], str]] = {
    "shout": (
        "READ_ONLY",
        {"input": {"text": "str", "times": "int | None"}, "output": {"loud": "str"}},
        "        return ShoutOutput(loud=input.text.upper() * (input.times or 1))\n",
    ),
    "lookup_rate": (
        "NETWORK",
        {"input": {"currency": "str"}, "output": {"rate": "float"}},
        "        return LookupRateOutput(rate=1.25 if input.currency == 'EUR' else 1.0)\n",
    ),
    "pay": (
        "MONEY",
        {"input": {"amount": "int", "to": "str"}, "output": {"receipt": "str"}},
        "        return PayOutput(receipt=f'paid {input.amount} to {input.to}')\n",
    ),
    "send_message": (
        "MESSAGING",
        {"input": {"to": "str", "text": "str"}, "output": {"sent": "bool", "length": "int"}},
        "        return SendMessageOutput(sent=True, length=len(input.text))\n",
    ),
}
LATER = "send_message"  # left VERIFIED: a test promotes it while a client is connected
CLASSES = {"write_note": "FILE_WRITE", **{name: spec[0] for name, spec in SKILLS.items()}}


def set_rule(repo: Path, side_effect: str, decision: str, message: str) -> None:
    """Change one runtime rule's decision in a signed governance commit."""
    path = repo / ".kavi" / "policy.yaml"
    policy = yaml.safe_load(path.read_text())
    for rule in policy["runtime"]["rules"]:
        if rule["match"]["side_effect"] == side_effect:
            rule["decision"] = decision
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    git("commit", "-q", "-S", "-am", message, cwd=repo)


def build_template(root: Path) -> Path:
    with isolation(root):
        use_signing_key(ssh_key(root / "keys"))
        repo = make_forge(root)
        set_rule(repo, "NETWORK", "ALLOW", "policy: NETWORK allowed")
        set_rule(repo, "MESSAGING", "ALLOW", "policy: MESSAGING allowed")
        set_rule(repo, "MONEY", "REQUIRE_APPROVAL", "policy: MONEY needs a person's approval")
        pid = propose_write_note(repo)
        kavi_json("build-skill", pid, "--backend", "files", "--from", str(WRITE_NOTE_DIR), cwd=repo)
        assert kavi_json("verify-skill", pid, cwd=repo)["status"] == "PASSED"
        kavi_json("promote-skill", pid, "--yes", cwd=repo)
        for name, (effect, schema, body) in SKILLS.items():
            source = skill_source(name, effect, schema["input"], schema["output"], body)
            test = skill_tests_source(name)
            promote(repo, root, name, effect, schema, source, test, promote_it=name != LATER)
    return root


def copy_template(template: Path, tmp_path: Path) -> Path:
    shutil.copytree(template / "forge", tmp_path / "forge", symlinks=True)
    shutil.copytree(template / "keys", tmp_path / "keys")
    use_signing_key(tmp_path / "keys" / "id_ed25519")
    repo = tmp_path / "forge"
    git("config", "gpg.ssh.allowedSignersFile", str(repo / ".kavi/allowed_signers"), cwd=repo)
    return repo


def server_command(*extra: str) -> list[str]:
    return [sys.executable, "-m", "kavi", "serve", "mcp", *extra]


@dataclass
class Connected:
    session: Any
    notifications: list[str] = field(default_factory=list)
    elicitations: list[Any] = field(default_factory=list)
    stderr: Path | None = None

    async def tools(self) -> dict[str, Any]:
        result = await self.session.list_tools()
        return {tool.name: tool for tool in result.tools}

    async def call(self, name: str, arguments: dict[str, Any]) -> Any:
        return await self.session.call_tool(name, arguments)

    async def wait_for_list_changed(self, count: int = 1, timeout: float = 15) -> None:
        with anyio.fail_after(timeout):
            while self.notifications.count("notifications/tools/list_changed") < count:
                await anyio.sleep(0.05)


Answer = Callable[[Any], Awaitable[Any]]


@asynccontextmanager
async def connect(
    repo: Path,
    *,
    answer: Answer | None = None,
    client: tuple[str, str] = ("kavi-tests", "1.2.3"),
    extra: tuple[str, ...] = ("--poll", "0.2"),
) -> AsyncIterator[Connected]:
    """``git kavi serve mcp`` in ``repo`` with the SDK's client; ``answer``: the client's
    elicitation callback (None: the client declares no elicitation capability)."""
    import mcp_types as types
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    params = StdioServerParameters(
        command=sys.executable,
        args=server_command(*extra)[1:],
        cwd=str(repo),
        env=dict(os.environ),
    )
    log = repo.parent / "server-stderr.log"
    connected = Connected(session=None, stderr=log)

    async def on_message(message: Any) -> None:
        method = getattr(message, "method", None)
        if method is not None:
            connected.notifications.append(method)

    async def on_elicit(context: Any, request: Any) -> Any:
        connected.elicitations.append(request)
        assert answer is not None
        return await answer(request)

    with log.open("a") as errlog:
        async with (
            stdio_client(params, errlog=errlog) as (read, write),
            ClientSession(
                read,
                write,
                client_info=types.Implementation(name=client[0], version=client[1]),
                elicitation_callback=on_elicit if answer is not None else None,
                message_handler=on_message,
                read_timeout_seconds=120,
            ) as session,
        ):
            await session.initialize()
            connected.session = session
            yield connected
