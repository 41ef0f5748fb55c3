"""build-skill --backend openai end to end, against a loopback OpenAI-compatible server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from support.fake_openai import FakeOpenAIServer, unused_port
from support.forge import WRITE_NOTE_DIR, edit_config, git, kavi, make_forge, propose_write_note


def _point_config_at(repo: Path, base_url: str) -> None:
    def change(config: dict[str, Any]) -> None:
        settings = {"base_url": base_url, "model": "fake-model", "timeout_seconds": 5}
        config["backends"]["openai"].update(settings)

    edit_config(repo, change, "point the openai backend at the test server")


def _files() -> dict[str, str]:
    return {
        "skills/write_note.py": (WRITE_NOTE_DIR / "skills/write_note.py").read_text(),
        "tests/test_skill_write_note.py": (WRITE_NOTE_DIR / "tests/test_skill_write_note.py").read_text(),
    }


def test_openai_backend_builds_through_the_gate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_forge(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-sentinel-0042")
    with FakeOpenAIServer() as server:
        _point_config_at(repo, server.base_url)
        server.answer_files(_files())
        res = kavi(
            "build-skill", propose_write_note(repo), "--backend", "openai", "--format", "json", cwd=repo
        )
        assert res.code == 0, res.output
        assert res.json["status"] == "SUCCEEDED"
        assert server.last_chat.headers["authorization"] == "Bearer sk-test-sentinel-0042"
        packet = server.last_chat.json()["messages"][-1]["content"]
        assert "skills/write_note.py" in packet
    log = (repo / res.json["log_artifact"]).read_text()
    assert "sk-test-sentinel-0042" not in log


def test_openai_extra_file_is_caught_by_the_gate(tmp_path: Path) -> None:
    repo = make_forge(tmp_path)
    with FakeOpenAIServer() as server:
        _point_config_at(repo, server.base_url)
        server.answer_files({**_files(), "conftest.py": "import os\n"})
        res = kavi(
            "build-skill", propose_write_note(repo), "--backend", "openai", "--format", "json", cwd=repo
        )
    assert res.code == 1
    assert [(v["path"], v["rule"]) for v in res.json["violations"]] == [("conftest.py", "outside-allowlist")]


def test_openai_server_down_fails_the_build_cleanly(tmp_path: Path) -> None:
    repo = make_forge(tmp_path)
    _point_config_at(repo, f"http://127.0.0.1:{unused_port()}/v1")
    res = kavi("build-skill", propose_write_note(repo), "--backend", "openai", "--format", "json", cwd=repo)
    assert res.code == 1
    assert "unreachable" in res.json["summary"]
    assert git("worktree", "list", cwd=repo).count("\n") == 0
