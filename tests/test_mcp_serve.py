"""``git kavi serve mcp`` with the official MCP Python client over stdio, on a real forge.

Every test starts the real server (``python -m kavi serve mcp``) in its own copy of a
forge holding one promoted skill per side-effect class (``support/mcp_forge.py``) and
talks to it with ``mcp.client.session.ClientSession`` — the SDK's client, handshake,
notifications and elicitation included.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
from pathlib import Path
from typing import Any

import anyio
import pytest

from support.forge import git, kavi, kavi_json
from support.mcp_forge import CLASSES, LATER, connect, set_rule
from test_hints import at_terminal

pytestmark = pytest.mark.slow

EXPECTED_HINTS = {
    "READ_ONLY": {
        "readOnlyHint": True,
        "destructiveHint": False,
        "idempotentHint": True,
        "openWorldHint": False,
    },
    "FILE_WRITE": {
        "readOnlyHint": False,
        "destructiveHint": True,
        "idempotentHint": False,
        "openWorldHint": False,
    },
    "NETWORK": {
        "readOnlyHint": False,
        "destructiveHint": False,
        "idempotentHint": False,
        "openWorldHint": True,
    },
    "MONEY": {"readOnlyHint": False, "destructiveHint": True, "idempotentHint": False, "openWorldHint": True},
    "MESSAGING": {
        "readOnlyHint": False,
        "destructiveHint": True,
        "idempotentHint": False,
        "openWorldHint": True,
    },
}
NOTE = {"path": "Inbox/AI/from-mcp.md", "title": "From MCP", "body": "written through MCP"}


@pytest.fixture
def forge(mcp_forge: Path) -> Path:
    return mcp_forge


def run(fn: Any) -> Any:
    return anyio.run(fn)


def runs(repo: Path) -> list[dict[str, Any]]:
    import sqlite3

    con = sqlite3.connect(repo / ".git/kavi/ledger.db")
    con.row_factory = sqlite3.Row
    rows = [dict(r) for r in con.execute("SELECT * FROM runs ORDER BY started_at, rowid")]
    con.close()
    return rows


def hints(tool: Any) -> dict[str, Any]:
    data = tool.annotations.model_dump(by_alias=True, exclude_none=True)
    return {k: v for k, v in data.items() if k.endswith("Hint")}


def test_lists_one_tool_per_trusted_skill_with_schemas_and_annotations_of_its_class(forge: Path) -> None:
    async def main() -> tuple[dict[str, Any], dict[str, Any], list[str]]:
        async with connect(forge) as c:
            before = await c.tools()
            kavi_json("promote-skill", LATER, "--yes", cwd=forge)  # while the client is connected
            await c.wait_for_list_changed()
            return before, await c.tools(), c.notifications

    before, tools, notes = run(main)
    assert set(before) == set(CLASSES) - {LATER}
    assert set(tools) == set(CLASSES)
    assert notes.count("notifications/tools/list_changed") == 1
    for name, effect in CLASSES.items():
        tool = tools[name]
        assert hints(tool) == EXPECTED_HINTS[effect], name
        assert tool.title == f"{name} v1 ({effect})"
        assert f"side-effect class {effect}" in tool.description
        assert "promoted by ada@example.com (key SHA256:" in tool.description
        assert tool.meta["dev.kavi/sideEffect"] == effect
        assert tool.meta["dev.kavi/sha256"][:16] in tool.description
        assert tool.input_schema["type"] == "object" and tool.output_schema["type"] == "object"
        assert tool.input_schema["additionalProperties"] is False
    shout = tools["shout"]
    assert shout.input_schema["required"] == ["text"]
    assert shout.input_schema["properties"]["text"]["type"] == "string"
    assert {"type": "integer"} in shout.input_schema["properties"]["times"]["anyOf"]
    assert shout.output_schema["properties"] == {"loud": {"title": "Loud", "type": "string"}}
    assert tools["pay"].meta["dev.kavi/approval"] == "each call"
    assert "requires the user's approval" in tools["pay"].description
    assert tools["write_note"].meta["dev.kavi/approval"] == "none"


def test_a_call_runs_the_skill_confined_and_is_recorded_with_the_clients_name(forge: Path) -> None:
    async def main() -> Any:
        async with connect(forge, client=("acme-agent", "7.0")) as c:
            return await c.call("write_note", NOTE)

    result = run(main)
    assert result.is_error is False, result.content[0].text
    assert result.structured_content["written_path"] == "Inbox/AI/from-mcp.md"
    assert json.loads(result.content[0].text) == result.structured_content
    assert (forge / "vault_out/Inbox/AI/from-mcp.md").read_text() == "# From MCP\n\nwritten through MCP\n"
    [row] = runs(forge)
    assert row["status"] == "SUCCEEDED" and row["skill_name"] == "write_note"
    assert row["caller"] == "mcp (stdio) client acme-agent 7.0"
    assert row["id"] == result.meta["dev.kavi/runId"]
    record = (forge / result.meta["dev.kavi/record"]).read_text()
    assert "caller: mcp (stdio) client acme-agent 7.0" in record
    assert row["confinement"].startswith(("namespaces", "none: "))


def test_concurrent_calls_are_served_one_at_a_time_and_all_recorded(forge: Path) -> None:
    async def main() -> list[Any]:
        results: list[Any] = []
        async with connect(forge) as c:

            async def one(i: int) -> None:
                results.append(await c.call("shout", {"text": f"n{i}", "times": 2}))

            async with anyio.create_task_group() as tg:
                for i in range(3):
                    tg.start_soon(one, i)
        return results

    results = run(main)
    assert sorted(r.structured_content["loud"] for r in results) == ["N0N0", "N1N1", "N2N2"]
    rows = runs(forge)
    assert [r["status"] for r in rows] == ["SUCCEEDED"] * 3
    spans = sorted((r["started_at"], r["finished_at"]) for r in rows)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))  # never overlapping


def test_a_tampered_skill_is_refused_at_call_time_then_withdrawn_from_the_list(forge: Path) -> None:
    path = forge / "skills/shout.py"

    async def main() -> tuple[Any, dict[str, Any], dict[str, Any], Any, int]:
        async with connect(forge) as c:
            await c.tools()
            path.write_text(path.read_text().replace(".upper()", ".lower()"))
            refused = await c.call("shout", {"text": "hi"})
            await c.wait_for_list_changed()
            after = await c.tools()
            # the remedy it printed, exactly as printed
            remedy = refused.content[0].text.split("fix: restore the approved bytes: `", 1)[1].split("`")[0]
            assert remedy == "git checkout kavi/shout/v1 -- skills/shout.py"
            git(*remedy.split()[1:], cwd=forge)
            await c.wait_for_list_changed(2)
            return (
                refused,
                after,
                await c.tools(),
                await c.call("shout", {"text": "hi"}),
                len(c.notifications),
            )

    refused, after, restored, again, _ = run(main)
    assert refused.is_error is True
    text = refused.content[0].text
    assert text.startswith("error[KAVI-TRUST]: skills/shout.py does not match what was promoted (v1")
    assert "\n  why: sha256 is " in text
    assert refused.meta["dev.kavi/error"]["code"] == "KAVI-TRUST"
    assert "shout" not in after and set(after) == set(CLASSES) - {LATER, "shout"}
    assert "shout" in restored and again.structured_content == {"loud": "HI"}
    first = runs(forge)[0]
    assert first["status"] == "REFUSED" and first["caller"] == "mcp (stdio) client kavi-tests 1.2.3"
    check = kavi_json("serve", "mcp", "--check", cwd=forge)
    assert [w["name"] for w in check["withheld"]] == []


def test_revocation_and_policy_changes_change_the_list(forge: Path) -> None:
    async def main() -> tuple[dict[str, Any], Any, dict[str, Any], list[str]]:
        async with connect(forge) as c:
            await c.tools()
            assert kavi("revoke-skill", "shout", "--reason", "replaced", "--yes", cwd=forge).code == 0
            await c.wait_for_list_changed()
            revoked = await c.tools()
            call = await c.call("shout", {"text": "hi"})
            set_rule(forge, "NETWORK", "DENY", "policy: no more network")
            await c.wait_for_list_changed(2)
            return revoked, call, await c.tools(), c.notifications

    revoked, call, denied, _ = run(main)
    assert "shout" not in revoked and "lookup_rate" in revoked
    assert call.is_error and call.content[0].text.startswith(
        "error[KAVI-TRUST]: skill 'shout' was revoked (replaced)"
    )
    assert "lookup_rate" not in denied and "write_note" in denied
    check = kavi_json("serve", "mcp", "--check", cwd=forge)
    assert {w["name"]: w["reason"] for w in check["withheld"]} == {
        "lookup_rate": "the runtime policy denies it: network access is off in this policy"
    }
    text = kavi("serve", "mcp", "--check", cwd=forge).stdout
    assert "lookup_rate: the runtime policy denies it" in text
    assert "shout  v" not in text and "write_note  v1  FILE_WRITE  readOnlyHint=false" in text


def test_invalid_arguments_and_unknown_tools_are_tool_errors_naming_the_fields(forge: Path) -> None:
    async def main() -> list[Any]:
        async with connect(forge) as c:
            return [
                await c.call("shout", {"txt": "x"}),
                await c.call("shout", {"text": ["not", "a", "string"]}),
                await c.call("no_such_skill", {}),
                await c.call("write_note", {**NOTE, "path": "../../outside.md"}),
                await c.call("shout", {"text": "still serving"}),
            ]

    missing, wrong, unknown, outside, fine = run(main)
    text = missing.content[0].text
    assert missing.is_error and text.startswith("error[KAVI-INVALID]: invalid input for shout")
    assert "text: Field required" in text and "txt: Extra inputs are not permitted" in text
    assert 'fix: the input fields are: {"text": "str", "times": "int | None"}' in text
    assert wrong.is_error and "text: Input should be a valid string" in wrong.content[0].text
    assert unknown.is_error and unknown.content[0].text.startswith("error[KAVI-NOT-FOUND]: no skill named")
    assert outside.is_error and not (forge.parent / "outside.md").exists()
    assert fine.structured_content == {"loud": "STILL SERVING"}


def _accept(code: str | None = None) -> Any:
    import mcp_types as types

    async def answer(request: Any) -> Any:
        shown = request.requested_schema["properties"]["code"]["default"]
        return types.ElicitResult(action="accept", content={"approve": True, "code": code or shown})

    return answer


def test_require_approval_asks_the_clients_user_with_the_exact_arguments(forge: Path) -> None:
    import mcp_types as types

    async def decline(request: Any) -> Any:
        return types.ElicitResult(action="decline")

    async def main(answer: Any) -> tuple[Any, list[Any]]:
        async with connect(forge, answer=answer) as c:
            return await c.call("pay", {"amount": 5, "to": "bob"}), c.elicitations

    paid, asked = run(lambda: main(_accept()))
    assert paid.is_error is False, paid.content[0].text
    assert paid.structured_content == {"receipt": "paid 5 to bob"}
    [request] = asked
    assert "approve ONE run of pay v1 (MONEY)" in request.message
    assert '"amount": 5' in request.message and '"to": "bob"' in request.message
    code = request.requested_schema["properties"]["code"]["default"]
    assert f"Approval code: {code}" in request.message
    [row] = runs(forge)
    assert row["status"] == "SUCCEEDED" and row["caller"] == "mcp (stdio) client kavi-tests 1.2.3"

    declined, _ = run(lambda: main(decline))
    assert declined.is_error and declined.content[0].text.startswith(
        "error[KAVI-APPROVAL]: the client's user declined this run of pay"
    )
    forged, _ = run(lambda: main(_accept(code="0" * 12)))
    assert forged.is_error and "the approval does not match this call of pay" in forged.content[0].text
    assert len(runs(forge)) == 1  # declined and mismatched approvals ran nothing

    async def bad_call() -> tuple[Any, list[Any]]:
        async with connect(forge, answer=_accept()) as c:
            return await c.call("pay", {"amount": "five", "to": "bob"}), c.elicitations

    bad, nobody_asked = run(bad_call)
    assert bad.is_error and "amount: Input should be a valid integer" in bad.content[0].text
    assert nobody_asked == []


def test_require_approval_without_elicitation_is_refused_and_says_how_to_approve(forge: Path) -> None:
    async def main() -> Any:
        async with connect(forge) as c:  # this client declares no elicitation capability
            return await c.call("pay", {"amount": 5, "to": "bob"})

    refused = run(main)
    text = refused.content[0].text
    assert refused.is_error and text.startswith(
        "error[KAVI-POLICY]: runtime policy requires approval for MONEY skills"
    )
    assert "why: this MCP client cannot ask its user" in text
    command = text.split("or run it at a terminal: ", 1)[1].strip()
    assert command == 'git kavi run-skill pay --approve --json \'{"amount":5,"to":"bob"}\''
    [row] = runs(forge)
    assert row["status"] == "REFUSED" and row["caller"] == "mcp (stdio) client kavi-tests 1.2.3"
    import shlex

    code, out = at_terminal(shlex.split(command), forge)
    assert code == 0, out
    assert '"receipt": "paid 5 to bob"' in out


def _rpc(proc: Any, message: dict[str, Any] | str) -> None:
    line = message if isinstance(message, str) else json.dumps(message)
    proc.stdin.write(line + "\n")
    proc.stdin.flush()


def _reply(proc: Any, request_id: int) -> dict[str, Any]:
    while True:
        line = proc.stdout.readline()
        assert line, "the server closed stdout"
        message = json.loads(line)  # every line on stdout is protocol
        if message.get("id") == request_id:
            return dict(message)


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _wait_dead(pids: list[int]) -> None:
    import time

    deadline = time.monotonic() + 10
    for pid in pids:
        while time.monotonic() < deadline:
            try:
                if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                    break
            except OSError:
                break
            time.sleep(0.01)


def test_bad_requests_never_end_the_server_and_stdout_is_only_protocol(forge: Path) -> None:
    """A raw JSON-RPC peer (the one place a test writes the protocol by hand: to send what
    no SDK would)."""
    import subprocess

    from support.mcp_forge import server_command

    proc = subprocess.Popen(
        server_command(),
        cwd=forge,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _rpc(proc, "this is not json")
        _rpc(proc, {"jsonrpc": "2.0", "id": 1, "method": "tools/list"})  # before initialize
        early = _reply(proc, 1)
        assert "error" in early
        init = {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "raw\x1b[31m-peer", "version": "0"},
        }
        _rpc(proc, {"jsonrpc": "2.0", "id": 2, "method": "initialize", "params": init})
        assert _reply(proc, 2)["result"]["capabilities"]["tools"]["listChanged"] is True
        _rpc(proc, {"jsonrpc": "2.0", "method": "notifications/initialized"})
        bad = {"name": "shout", "arguments": "not an object"}
        _rpc(proc, {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": bad})
        assert "error" in _reply(proc, 3)
        _rpc(proc, {"jsonrpc": "2.0", "id": 4, "method": "no/such/method"})
        assert _reply(proc, 4)["error"]["code"] == -32601
        call = {"name": "shout", "arguments": {"text": "ok"}}
        _rpc(proc, {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": call})
        assert _reply(proc, 5)["result"]["structuredContent"] == {"loud": "OK"}
        # the worker kept warm for the next call dies while it waits: the call still runs
        children = _children(proc.pid)
        for child in children:
            os.kill(child, signal.SIGKILL)
        _wait_dead(children)
        _rpc(proc, {"jsonrpc": "2.0", "id": 6, "method": "tools/call", "params": call})
        assert _reply(proc, 6)["result"]["structuredContent"] == {"loud": "OK"}
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        code = proc.wait(timeout=60)
        rest = proc.stdout.read() if proc.stdout else ""
        err = proc.stderr.read() if proc.stderr else ""
    assert code == 0, err
    for line in rest.splitlines():
        json.loads(line)
    assert "Traceback" not in err
    first, second = runs(forge)
    assert first["caller"] == "mcp (stdio) client raw\\x1b[31m-peer 0"  # the client's name, made harmless
    assert second["status"] == "SUCCEEDED" and second["confinement"] == first["confinement"]


def test_streamable_http_on_loopback(forge: Path) -> None:
    import subprocess

    from support.mcp_forge import server_command

    proc = subprocess.Popen(
        server_command("--http", "--port", "0"), cwd=forge, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()
        assert first.startswith("kavi serve mcp: listening on http://127.0.0.1:"), first
        url = first.split("listening on ", 1)[1].split(" ", 1)[0]

        async def main() -> tuple[set[str], Any]:
            import mcp_types as types
            from mcp.client.session import ClientSession
            from mcp.client.streamable_http import streamable_http_client

            async with (
                streamable_http_client(url) as (read, write),
                ClientSession(read, write, client_info=types.Implementation(name="web", version="9")) as s,
            ):
                await s.initialize()
                listed = {t.name for t in (await s.list_tools()).tools}
                return listed, await s.call_tool("shout", {"text": "web"})

        listed, result = run(main)
        import httpx

        rebound = httpx.post(
            url, headers={"Host": "evil.example", "Content-Type": "application/json"}, json={}
        )
        assert rebound.status_code in (403, 421), rebound.status_code  # DNS rebinding refused
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert "shout" in listed and result.structured_content == {"loud": "WEB"}
    [row] = runs(forge)
    assert row["caller"] == "mcp (streamable-http) client web 9"


def test_serve_mcp_refuses_bad_usage_before_speaking_the_protocol(tmp_path: Path, forge: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    git("init", "-q", cwd=plain)
    res = kavi("serve", "mcp", "--check", "--format", "json", cwd=plain)
    assert res.code == 2 and res.json["code"] == "KAVI-NOT-A-FORGE"
    res = kavi("serve", "mcp", "--format", "json", cwd=forge)
    assert res.code == 2 and "--format json applies to --check only" in res.json["message"]
    assert res.json["remedy"] == "git kavi serve mcp --check --format json"
    assert kavi(*res.json["remedy"].split()[2:], cwd=forge).code == 0
    res = kavi("serve", "mcp", "--poll", "0", cwd=forge)
    assert res.code == 2 and "--poll must be between" in res.stderr


def test_the_2026_protocol_era_lists_calls_listens_and_asks_through_input_required(forge: Path) -> None:
    """The SDK's high-level ``Client`` discovers 2026-07-28 (no handshake: client info and
    capabilities ride each request; no server-initiated requests): list changes arrive on
    ``subscriptions/listen``, and an approval rides an ``InputRequiredResult``."""
    import os
    import sys

    import mcp_types as types
    from mcp.client.client import Client
    from mcp.client.stdio import StdioServerParameters

    server = StdioServerParameters(
        command=sys.executable,
        args=["-m", "kavi", "serve", "mcp", "--poll", "0.2"],
        cwd=str(forge),
        env=dict(os.environ),
    )
    asked: list[Any] = []

    async def answer(context: Any, request: Any) -> Any:
        asked.append(request)
        code = request.requested_schema["properties"]["code"]["default"]
        return types.ElicitResult(action="accept", content={"approve": True, "code": code})

    async def main() -> tuple[str, set[str], Any, Any, set[str]]:
        async with Client(
            server, elicitation_callback=answer, client_info=types.Implementation(name="modern", version="2")
        ) as client:
            version = client.session.protocol_version
            listed = {t.name for t in (await client.list_tools()).tools}
            paid = await client.call_tool("pay", {"amount": 3, "to": "eve"})
            async with client.listen(tools_list_changed=True) as sub:
                assert kavi("revoke-skill", "shout", "--reason", "gone", "--yes", cwd=forge).code == 0
                with anyio.fail_after(15):
                    event = await sub.__anext__()
            after = {t.name for t in (await client.list_tools()).tools}
            return version, listed, paid, event, after

    version, listed, paid, event, after = run(main)
    assert version == "2026-07-28"
    assert "pay" in listed and "shout" in listed
    assert paid.is_error is False, paid.content[0].text
    assert paid.structured_content == {"receipt": "paid 3 to eve"}
    assert len(asked) == 1 and '"to": "eve"' in asked[0].message
    assert type(event).__name__ == "ToolsListChanged"
    assert "shout" not in after
    [row] = runs(forge)
    assert row["caller"] == "mcp (stdio) client modern 2"
