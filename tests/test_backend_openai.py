"""The ``openai`` build backend against a real loopback OpenAI-compatible server."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kavi.backends.base import BackendRequest, BackendResult
from kavi.backends.openai import MAX_FILES, OpenAIBackend, parse_answer
from kavi.config import OpenAIBackendConfig
from support.fake_openai import FakeOpenAIServer, Reply, fenced_answer, unused_port

SKILL = "skills/write_note.py"
TEST = "tests/test_write_note.py"
ALLOWED = (SKILL, TEST)
SKILL_SRC = 'def write_note(text: str) -> str:\n    return text + "\\n"\n'
TEST_SRC = (
    "from skills.write_note import write_note\n\n\n"
    "def test_it() -> None:\n    assert write_note('a') == 'a\\n'\n"
)
FILES = {SKILL: SKILL_SRC, TEST: TEST_SRC}
PACKET = "# Build packet\nskill: write_note\nWrite a note.\n"


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(models=["fake-model", "other"]) as s:
        yield s


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    box = tmp_path / "sandbox"
    box.mkdir()
    return box


def backend_for(base_url: str, **overrides: Any) -> OpenAIBackend:
    settings: dict[str, Any] = {
        "base_url": base_url,
        "model": "fake-model",
        "api_key_env": "OPENAI_API_KEY",
        "timeout_seconds": 10.0,
        "connect_timeout_seconds": 1.0,
        "max_tokens": 1024,
        "temperature": 0.0,
    }
    settings.update(overrides)
    return OpenAIBackend(OpenAIBackendConfig(**settings))


def run(
    base_url: str,
    sandbox: Path,
    *,
    env: dict[str, str] | None = None,
    timeout: float = 10.0,
    **overrides: Any,
) -> BackendResult:
    request = BackendRequest(
        sandbox=sandbox,
        packet_text=PACKET,
        allowed_paths=ALLOWED,
        env={} if env is None else env,
        timeout_seconds=timeout,
    )
    return backend_for(base_url, **overrides).run(request)


def files_in(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): p.read_text(encoding="utf-8")
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# --- happy paths ----------------------------------------------------------------


def test_structured_answer_writes_both_files(server: FakeOpenAIServer, sandbox: Path) -> None:
    server.answer_files(FILES)
    result = run(server.base_url, sandbox)

    assert result.ok, result.reason
    assert files_in(sandbox) == FILES
    for rel in ALLOWED:
        assert stat.S_IMODE((sandbox / rel).stat().st_mode) == 0o644
    assert result.details["files_written"] == [SKILL, TEST]
    assert result.details["json_schema_used"] is True
    assert result.details["retried_without_response_format"] is False
    assert result.details["finish_reason"] == "stop"
    assert result.details["model"] == "fake-model"
    assert result.details["parse_mode"] == "json"
    assert result.details["usage"]["prompt_tokens"] == 100
    assert result.details["extra_paths"] == []
    assert f"wrote: {SKILL}" in result.transcript
    assert "finish_reason: stop" in result.transcript
    assert "HTTP 200" in result.transcript
    # the health check came first
    assert [(r.method, r.path) for r in server.requests] == [
        ("GET", "/v1/models"),
        ("POST", "/v1/chat/completions"),
    ]


@pytest.mark.parametrize("style", ["info", "path=", "before", "heading", "bold", "comment"])
def test_fenced_block_fallback(server: FakeOpenAIServer, sandbox: Path, style: Any) -> None:
    server.answer_fenced(FILES, style=style)
    result = run(server.base_url, sandbox)

    assert result.ok, result.reason
    written = files_in(sandbox)
    assert sorted(written) == sorted(ALLOWED)
    if style == "comment":  # the path comment stays part of the file
        assert written[SKILL] == f"# {SKILL}\n{SKILL_SRC}"
    else:
        assert written == FILES
    assert result.details["parse_mode"] == "fenced_blocks"


def test_json_inside_json_fence(server: FakeOpenAIServer, sandbox: Path) -> None:
    server.answer_files(FILES, json_fence=True)
    result = run(server.base_url, sandbox)

    assert result.ok, result.reason
    assert files_in(sandbox) == FILES
    assert result.details["parse_mode"] == "json_fence"


def test_existing_file_is_replaced_atomically(server: FakeOpenAIServer, sandbox: Path) -> None:
    (sandbox / "skills").mkdir()
    (sandbox / SKILL).write_text("old\n", encoding="utf-8")
    server.answer_files(FILES)
    result = run(server.base_url, sandbox)

    assert result.ok, result.reason
    assert files_in(sandbox) == FILES  # no temp files left behind


def test_extra_file_inside_sandbox_is_written_for_the_gate(server: FakeOpenAIServer, sandbox: Path) -> None:
    server.answer_files({**FILES, "skills/helper.py": "X = 1\n"})
    result = run(server.base_url, sandbox)

    assert result.ok, result.reason
    assert (sandbox / "skills/helper.py").read_text(encoding="utf-8") == "X = 1\n"
    assert result.details["extra_paths"] == ["skills/helper.py"]
    assert "not in the allowed paths" in result.transcript
    assert "skills/helper.py" in result.transcript


def test_retry_without_response_format_after_400(server: FakeOpenAIServer, sandbox: Path) -> None:
    server.reject_response_format = True
    server.answer_fenced(FILES, style="info")
    result = run(server.base_url, sandbox)

    assert result.ok, result.reason
    assert files_in(sandbox) == FILES
    first, second = (r.json() for r in server.chat_requests)
    assert first["response_format"]["type"] == "json_schema"
    assert "response_format" not in second
    assert second["messages"] == first["messages"]
    assert result.details["retried_without_response_format"] is True
    assert result.details["json_schema_used"] is False
    assert "retrying once without response_format" in result.transcript


def test_second_400_is_reported_not_retried_again(server: FakeOpenAIServer, sandbox: Path) -> None:
    server.fail(400, "bad schema").fail(400, "still bad")
    result = run(server.base_url, sandbox)

    assert not result.ok
    assert "HTTP 400" in result.reason
    assert "still bad" in result.reason
    assert len(server.chat_requests) == 2
    assert files_in(sandbox) == {}


# --- what is sent -----------------------------------------------------------------


def test_request_body_carries_model_limits_and_schema(server: FakeOpenAIServer, sandbox: Path) -> None:
    server.answer_files(FILES)
    result = run(server.base_url, sandbox, max_tokens=2048, temperature=0.3)
    assert result.ok, result.reason

    request = server.last_chat
    assert request.headers["content-type"] == "application/json"
    body = request.json()
    assert body["model"] == "fake-model"
    assert body["max_tokens"] == 2048
    assert body["temperature"] == 0.3
    rf = body["response_format"]
    assert rf["type"] == "json_schema"
    assert rf["json_schema"]["name"] == "kavi_files"
    assert rf["json_schema"]["strict"] is True
    schema = rf["json_schema"]["schema"]
    assert schema["required"] == ["files"]
    assert schema["properties"]["files"]["items"]["required"] == ["path", "content"]
    system, user = body["messages"]
    assert system["role"] == "system"
    assert SKILL in system["content"] and TEST in system["content"]
    assert "JSON" in system["content"]
    assert user == {"role": "user", "content": PACKET}


def test_api_key_sent_as_bearer_and_never_logged(
    server: FakeOpenAIServer, sandbox: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "sk-test-0123456789abcdef"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-os-environ-must-not-be-used")
    # even a server echoing the key in an error must not leak it into the transcript
    server.fail(500, f"upstream said: bad key {secret}")
    result = run(server.base_url, sandbox, env={"OPENAI_API_KEY": secret})

    assert not result.ok
    for request in server.requests:
        assert request.headers["authorization"] == f"Bearer {secret}"
    assert secret not in result.transcript
    assert secret not in result.reason
    assert secret not in json.dumps(result.details)
    assert "[redacted]" in result.reason


def test_no_authorization_header_without_key(server: FakeOpenAIServer, sandbox: Path) -> None:
    server.answer_files(FILES)
    result = run(server.base_url, sandbox, env={"OTHER": "x"})

    assert result.ok, result.reason
    assert all("authorization" not in r.headers for r in server.requests)
    assert "authorization: none" in result.transcript


def test_api_key_unfit_for_a_header_is_refused(server: FakeOpenAIServer, sandbox: Path) -> None:
    result = run(server.base_url, sandbox, env={"OPENAI_API_KEY": "sk-abc\r\nX-Evil: 1"})

    assert not result.ok
    assert "cannot go in an HTTP header" in result.reason
    assert server.requests == []
    assert "X-Evil" not in result.transcript


def test_custom_api_key_env_name(server: FakeOpenAIServer, sandbox: Path) -> None:
    server.answer_files(FILES)
    result = run(server.base_url, sandbox, env={"LOCAL_LLM_KEY": "k-123456"}, api_key_env="LOCAL_LLM_KEY")

    assert result.ok, result.reason
    assert server.last_chat.headers["authorization"] == "Bearer k-123456"


# --- failures -----------------------------------------------------------------------


def test_truncated_answer_writes_nothing(server: FakeOpenAIServer, sandbox: Path) -> None:
    server.answer(json.dumps({"files": [{"path": SKILL, "content": SKILL_SRC}]}), finish_reason="length")
    result = run(server.base_url, sandbox)

    assert not result.ok
    assert "truncated (finish_reason=length)" in result.reason
    assert "max_tokens" in result.reason
    assert result.details["finish_reason"] == "length"
    assert files_in(sandbox) == {}


def test_server_down_fails_fast(sandbox: Path) -> None:
    url = f"http://127.0.0.1:{unused_port()}/v1"
    started = time.monotonic()
    result = run(url, sandbox)

    assert time.monotonic() - started < 3
    assert not result.ok
    assert result.reason.startswith(f"openai backend unreachable at {url}: ")
    assert files_in(sandbox) == {}


def test_models_endpoint_error_is_unreachable(server: FakeOpenAIServer, sandbox: Path) -> None:
    server.models_reply = Reply.json({"error": {"message": "warming up"}}, status=503)
    result = run(server.base_url, sandbox)

    assert not result.ok
    assert "unreachable" in result.reason
    assert "HTTP 503" in result.reason
    assert server.chat_requests == []


def test_timeout_fails_fast(server: FakeOpenAIServer, sandbox: Path) -> None:
    server.answer_slow(5.0)
    started = time.monotonic()
    result = run(server.base_url, sandbox, timeout=0.5)

    assert time.monotonic() - started < 2.5
    assert not result.ok
    assert "timed out" in result.reason
    assert files_in(sandbox) == {}


def test_http_500_is_reported(server: FakeOpenAIServer, sandbox: Path) -> None:
    server.fail(500, "model crashed")
    result = run(server.base_url, sandbox)

    assert not result.ok
    assert "HTTP 500" in result.reason
    assert "model crashed" in result.reason
    assert len(server.chat_requests) == 1  # no retry on 5xx


def test_malformed_json_body(server: FakeOpenAIServer, sandbox: Path) -> None:
    server.answer_raw('{"choices": [')
    result = run(server.base_url, sandbox)

    assert not result.ok
    assert "malformed JSON" in result.reason
    assert '{"choices": [' in result.reason


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"object": "chat.completion"}, "no 'choices'"),
        ({"choices": []}, "empty or invalid 'choices'"),
        ({"choices": [{"index": 0}]}, "no choices[0].message"),
        ({"error": {"message": "quota"}}, "server error: quota"),
        ([1, 2], "not an object"),
    ],
)
def test_response_without_usable_choices(
    server: FakeOpenAIServer, sandbox: Path, body: Any, expected: str
) -> None:
    server.queue(Reply.json(body))
    result = run(server.base_url, sandbox)

    assert not result.ok
    assert expected in result.reason


def test_refusal_is_reported(server: FakeOpenAIServer, sandbox: Path) -> None:
    obj = {
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": None, "refusal": "I can't."},
                "finish_reason": "stop",
            }
        ]
    }
    server.queue(Reply.json(obj))
    result = run(server.base_url, sandbox)

    assert not result.ok
    assert "refused" in result.reason


def test_answer_without_files_quotes_it(server: FakeOpenAIServer, sandbox: Path) -> None:
    answer = "I think you should write a function.\n```python\nprint('no path')\n```\n" + "x" * 500
    server.answer(answer)
    result = run(server.base_url, sandbox)

    assert not result.ok
    assert "no files found" in result.reason
    assert repr(answer[:200]) in result.reason
    assert answer[:201] not in result.reason
    assert files_in(sandbox) == {}


@pytest.mark.parametrize(
    "bad",
    [
        "../evil.py",
        "/etc/x",
        "skills/../../evil.py",
        "skills\\evil.py",
        "skills/evil\x00.py",
        ".git/hooks/pre-commit",
        "",
    ],
)
def test_unsafe_path_writes_nothing(server: FakeOpenAIServer, sandbox: Path, bad: str) -> None:
    server.answer_files([(SKILL, SKILL_SRC), (bad, "import os\n"), (TEST, TEST_SRC)])
    result = run(server.base_url, sandbox)

    assert not result.ok
    assert "refused" in result.reason
    assert "nothing was written" in result.reason
    assert files_in(sandbox) == {}
    assert not (sandbox.parent / "evil.py").exists()


def test_writing_through_symlink_is_refused(server: FakeOpenAIServer, sandbox: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (sandbox / "skills").symlink_to(outside, target_is_directory=True)
    server.answer_files(FILES)
    result = run(server.base_url, sandbox)

    assert not result.ok
    assert "symlink" in result.reason
    assert list(outside.iterdir()) == []
    assert not (sandbox / TEST).exists()


def test_symlinked_file_is_refused(server: FakeOpenAIServer, sandbox: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim.py"
    victim.write_text("keep\n", encoding="utf-8")
    (sandbox / "skills").mkdir()
    (sandbox / SKILL).symlink_to(victim)
    server.answer_files(FILES)
    result = run(server.base_url, sandbox)

    assert not result.ok
    assert "symlink" in result.reason
    assert victim.read_text(encoding="utf-8") == "keep\n"


def test_too_many_files_refused(server: FakeOpenAIServer, sandbox: Path) -> None:
    server.answer_files({f"skills/f{i}.py": "" for i in range(MAX_FILES + 1)})
    result = run(server.base_url, sandbox)

    assert not result.ok
    assert f"at most {MAX_FILES}" in result.reason
    assert files_in(sandbox) == {}


def test_oversized_file_refused(server: FakeOpenAIServer, sandbox: Path) -> None:
    server.answer_files({SKILL: SKILL_SRC, TEST: "#" * (1024 * 1024 + 1)})
    result = run(server.base_url, sandbox)

    assert not result.ok
    assert "byte limit" in result.reason
    assert files_in(sandbox) == {}


# --- parsing rules ----------------------------------------------------------------


def test_parse_prefers_json_over_blocks() -> None:
    parsed = parse_answer(json.dumps({"files": [{"path": "a.py", "content": "A\n"}]}))
    assert parsed.mode == "json"
    assert parsed.files == [("a.py", "A\n")]


def test_parse_info_string_variants() -> None:
    text = '```python:skills/a.py\nA = 1\n```\n```py file="skills/b.py"\nB = 2\n```\n```\nno path here\n```\n'
    parsed = parse_answer(text)
    assert parsed.files == [("skills/a.py", "A = 1\n"), ("skills/b.py", "B = 2\n")]
    assert any("no path given" in n for n in parsed.notes)


def test_parse_path_on_line_before_with_backticks() -> None:
    text = "Here is `skills/a.py`:\n\n```python\nA = 1\n```\n"
    assert parse_answer(text).files == [("skills/a.py", "A = 1\n")]


def test_parse_ignores_unclosed_block() -> None:
    parsed = parse_answer("skills/a.py:\n```python\nA = 1\n")
    assert parsed.files == []
    assert parsed.error


def test_parse_keeps_nested_backticks_inside_longer_fence() -> None:
    inner = 'DOC = """\n```\nexample\n```\n"""\n'
    parsed = parse_answer(f"````python skills/a.py\n{inner}````\n")
    assert parsed.files == [("skills/a.py", inner)]


def test_parse_conflicting_duplicates_is_an_error() -> None:
    text = fenced_answer([("skills/a.py", "A = 1\n"), ("skills/a.py", "A = 2\n")])
    parsed = parse_answer(text)
    assert "twice" in parsed.error


def test_parse_json_embedded_in_prose_after_thinking() -> None:
    payload = json.dumps({"files": [{"path": "a.py", "content": "A = {1: 2}\n"}]})
    text = f"<think>The user wants {{files}}; ok.</think>\nSure! {payload}\nDone {{x}}."
    parsed = parse_answer(text)
    assert parsed.mode == "json"
    assert parsed.files == [("a.py", "A = {1: 2}\n")]


def test_parse_json_with_wrong_shape_falls_back_to_blocks() -> None:
    text = '{"answer": "see below"}'
    parsed = parse_answer(text)
    assert parsed.error
    assert "no 'files' key" in parsed.error


# --- module hygiene -------------------------------------------------------------------


def test_httpx_is_imported_lazily() -> None:
    code = "import sys, kavi.backends.openai; print('httpx' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "False"
