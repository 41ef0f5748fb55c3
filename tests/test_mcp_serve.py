"""``git kavi serve mcp`` with the official MCP Python client over stdio, on a real forge.

Every test starts the real server (``python -m kavi serve mcp``) in its own copy of a
forge holding one promoted skill per side-effect class (``support/mcp_forge.py``) and
talks to it with ``mcp.client.session.ClientSession`` — the SDK's client, handshake,
notifications and elicitation included.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from support.forge import git, kavi, kavi_json
from support.mcp_forge import CLASSES, build_template, connect, copy_template, set_rule

pytestmark = pytest.mark.slow

EXPECTED_HINTS = {
    "READ_ONLY": {"readOnlyHint": True, "destructiveHint": False, "idempotentHint": True, "openWorldHint": False},
    "FILE_WRITE": {
        "readOnlyHint": False,
        "destructiveHint": True,
        "idempotentHint": False,
        "openWorldHint": False,
    },
    "NETWORK": {"readOnlyHint": False, "destructiveHint": False, "idempotentHint": False, "openWorldHint": True},
    "MONEY": {"readOnlyHint": False, "destructiveHint": True, "idempotentHint": False, "openWorldHint": True},
    "MESSAGING": {"readOnlyHint": False, "destructiveHint": True, "idempotentHint": False, "openWorldHint": True},
}
NOTE = {"path": "Inbox/AI/from-mcp.md", "title": "From MCP", "body": "written through MCP"}


@pytest.fixture(scope="session")
def mcp_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_template(tmp_path_factory.mktemp("mcp-forge"))


@pytest.fixture
def forge(mcp_template: Path, tmp_path: Path) -> Path:
    return copy_template(mcp_template, tmp_path)


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
    async def main() -> dict[str, Any]:
        async with connect(forge) as c:
            return await c.tools()

    tools = run(main)
    assert set(tools) == set(CLASSES)
    for name, effect in CLASSES.items():
        tool = tools[name]
        assert hints(tool) == EXPECTED_HINTS[effect], name
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
