"""The research advisor against a loopback OpenAI-compatible server: good answers, and
every way it can fail — each degrading to deterministic findings with a one-line notice."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from kavi.config import AdvisorConfig
from kavi.forge.advisor import ADVICE_SCHEMA, ask_advisor
from kavi.ledger.models import AdviceStatus
from support.fake_openai import FakeOpenAIServer, Reply, unused_port

GOOD = {
    "diagnosis": "The helper _heading has no annotations.",
    "steps": ["In skills/write_note.py:10 write def _heading(title: str) -> str:"],
    "side_effect_class": "FILE_WRITE",
    "secrets": [],
    "files": ["skills/write_note.py"],
    "io_schema_changes": [],
}


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as s:
        yield s


def _config(server: FakeOpenAIServer, **extra: object) -> AdvisorConfig:
    settings: dict[str, object] = {"base_url": server.base_url, "model": "fake-model", "timeout_seconds": 3}
    settings.update(extra)
    return AdvisorConfig.model_validate(settings)


def test_a_good_answer_becomes_advice(server: FakeOpenAIServer) -> None:
    server.answer(json.dumps(GOOD))
    config = _config(server, api_key_env="ADVISOR_KEY")
    out = ask_advisor(config, "the prompt", env={"ADVISOR_KEY": "sk-adv-1"})
    assert out.status is AdviceStatus.OK and out.advice is not None
    assert out.advice.steps == GOOD["steps"] and out.advice.model == "fake-model"
    assert out.notice == "advisor: fake-model answered"
    sent = server.last_chat.json()
    assert sent["response_format"]["json_schema"]["schema"] == ADVICE_SCHEMA
    assert sent["messages"][-1]["content"] == "the prompt"
    assert server.last_chat.headers["authorization"] == "Bearer sk-adv-1"
    assert server.requests[0].path == "/v1/models"  # health check first


def test_the_input_is_bounded(server: FakeOpenAIServer) -> None:
    server.answer(json.dumps(GOOD))
    ask_advisor(_config(server, max_input_chars=2000), "x" * 50_000, env={})
    assert len(server.last_chat.json()["messages"][-1]["content"]) == 2000


def test_a_fenced_answer_and_a_server_without_json_schema_still_work(server: FakeOpenAIServer) -> None:
    server.reject_response_format = True
    server.answer(f"Here you go:\n```json\n{json.dumps(GOOD)}\n```\n")
    out = ask_advisor(_config(server), "p", env={})
    assert out.status is AdviceStatus.OK
    assert "response_format" not in server.last_chat.json()


def test_a_server_that_is_down_degrades_with_one_line() -> None:
    config = AdvisorConfig(base_url=f"http://127.0.0.1:{unused_port()}/v1", timeout_seconds=3)
    out = ask_advisor(config, "p", env={})
    assert out.status is AdviceStatus.UNAVAILABLE and out.advice is None
    assert out.notice.startswith("advisor: unavailable at http://127.0.0.1:")
    assert out.notice.endswith("deterministic findings only") and "\n" not in out.notice


def test_an_unhealthy_server_degrades(server: FakeOpenAIServer) -> None:
    server.models_reply = Reply.json({"error": {"message": "loading"}}, status=503)
    out = ask_advisor(_config(server), "p", env={})
    assert out.status is AdviceStatus.UNAVAILABLE and "HTTP 503" in out.notice
    assert server.chat_requests == []


def test_a_slow_server_times_out(server: FakeOpenAIServer) -> None:
    server.answer(json.dumps(GOOD), delay=5)
    start = time.monotonic()
    out = ask_advisor(_config(server, timeout_seconds=1), "p", env={})
    assert time.monotonic() - start < 4
    assert out.status is AdviceStatus.TIMEOUT and "too slow" in out.notice


def test_a_slow_health_check_times_out(server: FakeOpenAIServer) -> None:
    server.models_reply = Reply.json({"data": []}, delay=5)
    out = ask_advisor(_config(server, timeout_seconds=3, connect_timeout_seconds=0.5), "p", env={})
    assert out.status is AdviceStatus.TIMEOUT


@pytest.mark.parametrize(
    ("reply", "why"),
    [
        (Reply(body=b"<html>not json</html>"), "not JSON"),
        (None, "not a JSON object"),  # prose instead of JSON
        (json.dumps({"diagnosis": "x"}), "lacks"),
        (json.dumps({**GOOD, "steps": "one big string"}), "not a list of strings"),
        (json.dumps([GOOD]), "not an object"),
    ],
)
def test_garbage_degrades(server: FakeOpenAIServer, reply: object, why: str) -> None:
    if isinstance(reply, Reply):
        server.queue(reply)
    elif reply is None:
        server.answer("You should add type annotations to the helper.")
    else:
        server.answer(str(reply))
    out = ask_advisor(_config(server), "p", env={})
    assert out.status is AdviceStatus.GARBAGE and why in out.notice, out.notice


def test_a_truncated_answer_is_garbage(server: FakeOpenAIServer) -> None:
    server.answer(json.dumps(GOOD)[:40], finish_reason="length")
    out = ask_advisor(_config(server), "p", env={})
    assert out.status is AdviceStatus.GARBAGE and "cut off" in out.notice


def test_an_error_status_degrades_without_leaking_the_key(server: FakeOpenAIServer) -> None:
    server.fail(500, "upstream exploded for key sk-adv-secret-9")
    out = ask_advisor(_config(server, api_key_env="K"), "p", env={"K": "sk-adv-secret-9"})
    assert out.status is AdviceStatus.UNAVAILABLE and "HTTP 500" in out.notice
    assert "sk-adv-secret-9" not in out.notice


def test_off_and_not_configured_say_so() -> None:
    off = ask_advisor(None, "p", env={}, enabled=False)
    assert off.status is AdviceStatus.OFF and "--no-advise" in off.notice
    none = ask_advisor(None, "p", env={})
    assert none.status is AdviceStatus.NOT_CONFIGURED and "research.advisor" in none.notice


def test_long_answers_are_cut_to_size(server: FakeOpenAIServer) -> None:
    server.answer(json.dumps({**GOOD, "diagnosis": "d" * 10_000, "steps": ["s" * 5000] * 50}))
    out = ask_advisor(_config(server), "p", env={})
    assert out.advice is not None
    assert len(out.advice.diagnosis) == 2000 and len(out.advice.steps) == 12
    assert all(len(s) == 800 for s in out.advice.steps)


def test_the_config_refuses_a_non_http_url() -> None:
    from kavi.config import parse_config
    from kavi.errors import ConfigError

    with pytest.raises(ConfigError):
        parse_config("research:\n  advisor:\n    base_url: file:///etc/passwd\n")
