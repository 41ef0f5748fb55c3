"""The research advisor: an OpenAI-compatible server asked what to do about a failure.

Optional — ``research.advisor`` in ``.kavi/config.yaml`` — and bounded on every side:

* the input is a text Kavi composed (the proposal, the classified facts, excerpts of the
  failing files, the human's hint), cut to ``max_input_chars``, secrets redacted before
  it leaves the machine;
* one health check (``GET /models`` within the connect timeout), then one completion
  with a deadline of ``timeout_seconds`` for the whole exchange, an answer of at most
  1 MB, asked for as JSON matching :data:`ADVICE_SCHEMA` (``response_format``; a server
  that rejects it is asked once more without);
* anything else — down, slow, an error status, an answer that is not that JSON —
  degrades to deterministic findings only, with a one-line notice.

The answer is data: shown in the research note and quoted, marked as advice, in the
next build packet. Nothing in it is run, and it cannot change the proposal (see
:mod:`kavi.forge.widening`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kavi.config import AdvisorConfig
from kavi.ledger.models import Advice, AdviceStatus

if TYPE_CHECKING:
    import httpx

MAX_ANSWER_BYTES = 1_000_000
MAX_STEPS = 12
MAX_DIAGNOSIS_CHARS = 2_000
MAX_STEP_CHARS = 800
MAX_LIST_ITEMS = 32
_SCHEMA_REJECTED = frozenset({400, 422})

_STRINGS = {"type": "array", "items": {"type": "string"}}
ADVICE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "diagnosis": {"type": "string"},
        "steps": _STRINGS,
        "side_effect_class": {"type": "string"},
        "secrets": _STRINGS,
        "files": _STRINGS,
        "io_schema_changes": _STRINGS,
    },
    "required": ["diagnosis", "steps", "side_effect_class", "secrets", "files", "io_schema_changes"],
    "additionalProperties": False,
}

SYSTEM_PROMPT = """You advise Kavi, a governed skill forge, after a build attempt of a skill failed.
The user message holds the skill's proposal, the failures Kavi's gates found (file:line, rule,
message), the failing files and maybe a hint from a human. Explain the cause and say exactly
what the next attempt must change to pass the gates.

Answer with one JSON object and nothing else:
{"diagnosis": "<the cause, in one or two sentences>",
 "steps": ["<one concrete change per item, naming file:line>", ...],
 "side_effect_class": "<the side-effect class the skill needs>",
 "secrets": ["<secret names the skill needs>"],
 "files": ["<files the next attempt must change>"],
 "io_schema_changes": ["<changes to the I/O schema the skill needs, e.g. 'input.url: str'>"]}

The proposal is fixed: the next attempt may only change the two files named in it, with the
side-effect class, secrets and I/O schema it declares. If the skill cannot pass without more,
say so in side_effect_class, secrets, files or io_schema_changes: a human then decides."""


@dataclass(frozen=True)
class AdvisorOutcome:
    status: AdviceStatus
    advice: Advice | None
    notice: str  # one line, shown to the user and kept in the research note


def ask_advisor(
    config: AdvisorConfig | None,
    prompt: str,
    *,
    env: Mapping[str, str],
    enabled: bool = True,
) -> AdvisorOutcome:
    """Ask for advice on ``prompt``; never raises for what the server does."""
    if not enabled:
        return AdvisorOutcome(
            AdviceStatus.OFF, None, "advisor: off (--no-advise); deterministic findings only"
        )
    if config is None:
        return AdvisorOutcome(
            AdviceStatus.NOT_CONFIGURED,
            None,
            "advisor: not configured (research.advisor in .kavi/config.yaml); deterministic findings only",
        )
    import httpx

    key = env.get(config.api_key_env) if config.api_key_env else None
    exchange = _Exchange(config, key or None)
    try:
        with httpx.Client(follow_redirects=False, trust_env=False) as client:
            return exchange.run(client, prompt)
    except httpx.HTTPError as exc:  # an invalid URL and the like: the advisor cannot be used
        return exchange.degrade(AdviceStatus.UNAVAILABLE, f"{type(exc).__name__}: {exc}")


class _Exchange:
    def __init__(self, config: AdvisorConfig, key: str | None) -> None:
        self.config = config
        self.key = key
        self.deadline = time.monotonic() + config.timeout_seconds

    def headers(self) -> dict[str, str]:
        h = {"Accept": "application/json", "User-Agent": "kavi-research-advisor"}
        if self.key and all(33 <= ord(c) < 127 for c in self.key):
            h["Authorization"] = f"Bearer {self.key}"
        return h

    def degrade(self, status: AdviceStatus, why: str) -> AdvisorOutcome:
        what = {
            AdviceStatus.UNAVAILABLE: f"unavailable at {self.config.base_url}",
            AdviceStatus.TIMEOUT: "too slow",
            AdviceStatus.GARBAGE: "answered something unusable",
        }.get(status, status.value)
        why = " ".join(why.split())[:300]
        if self.key and len(self.key) >= 4:
            why = why.replace(self.key, "[REDACTED]")
        return AdvisorOutcome(status, None, f"advisor: {what} ({why}); deterministic findings only")

    def run(self, client: httpx.Client, prompt: str) -> AdvisorOutcome:
        from kavi.backends.openai import probe_models

        base = self.config.base_url
        connect = min(self.config.connect_timeout_seconds, self.config.timeout_seconds)
        body, why = probe_models(client, base, self.headers(), connect)
        if body is None:
            status = AdviceStatus.TIMEOUT if why.startswith("no answer") else AdviceStatus.UNAVAILABLE
            return self.degrade(status, why)
        payload: dict[str, Any] = {
            "model": self.config.model,
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": prompt[: self.config.max_input_chars]},
            ],
            "temperature": 0,
            "max_tokens": self.config.max_tokens,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "kavi_advice", "strict": True, "schema": ADVICE_SCHEMA},
            },
        }
        code, raw, problem = self.post(client, payload)
        if code in _SCHEMA_REJECTED:
            del payload["response_format"]
            code, raw, problem = self.post(client, payload)
        if problem:
            kind = AdviceStatus.TIMEOUT if "timed out" in problem else AdviceStatus.UNAVAILABLE
            return self.degrade(kind, problem)
        if not 200 <= code < 300:
            from kavi.backends.openai import error_message

            return self.degrade(AdviceStatus.UNAVAILABLE, f"HTTP {code}: {error_message(raw)}")
        advice, problem = parse_advice(raw, self.config.model)
        if advice is None:
            return self.degrade(AdviceStatus.GARBAGE, problem)
        return AdvisorOutcome(AdviceStatus.OK, advice, f"advisor: {advice.model} answered")

    def post(self, client: httpx.Client, payload: dict[str, Any]) -> tuple[int, bytes, str]:
        """(status, body, "") or (0, b"", why) when the exchange itself failed."""
        import httpx

        url = f"{self.config.base_url}/chat/completions"
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            return 0, b"", f"timed out: {self.config.timeout_seconds:g}s passed before POST {url}"
        timeout = httpx.Timeout(remaining, connect=min(self.config.connect_timeout_seconds, remaining))
        headers = {**self.headers(), "Content-Type": "application/json"}
        try:
            with client.stream(
                "POST", url, content=json.dumps(payload), headers=headers, timeout=timeout
            ) as r:
                chunks: list[bytes] = []
                size = 0
                for chunk in r.iter_bytes():
                    size += len(chunk)
                    if size > MAX_ANSWER_BYTES:
                        return 0, b"", f"the answer is larger than {MAX_ANSWER_BYTES} bytes"
                    if time.monotonic() > self.deadline:
                        late = f"{self.config.timeout_seconds:g}s"
                        return 0, b"", f"timed out: the answer was still arriving after {late}"
                    chunks.append(chunk)
                return r.status_code, b"".join(chunks), ""
        except httpx.TimeoutException:
            return 0, b"", f"timed out: no answer from POST {url} within {self.config.timeout_seconds:g}s"
        except httpx.HTTPError as exc:
            return 0, b"", f"POST {url} failed: {type(exc).__name__}: {exc}"


def _strings(value: Any, what: str, *, limit: int, chars: int) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"'{what}' is not a list of strings")
    return [" ".join(v.split())[:chars] for v in value[:limit] if v.strip()]


def _answer(obj: Any, model: str) -> Advice:
    if not isinstance(obj, dict):
        raise ValueError(f"the answer is a JSON {type(obj).__name__}, not an object")
    missing = [k for k in ADVICE_SCHEMA["required"] if k not in obj]
    if missing:
        raise ValueError(f"the answer lacks {', '.join(missing)}")
    diagnosis, effect = obj["diagnosis"], obj["side_effect_class"]
    if not isinstance(diagnosis, str) or not isinstance(effect, str):
        raise ValueError("'diagnosis' and 'side_effect_class' must be strings")
    steps = _strings(obj["steps"], "steps", limit=MAX_STEPS, chars=MAX_STEP_CHARS)
    if not diagnosis.strip() and not steps:
        raise ValueError("the answer has neither a diagnosis nor steps")
    return Advice(
        model=model,
        diagnosis=" ".join(diagnosis.split())[:MAX_DIAGNOSIS_CHARS],
        steps=steps,
        side_effect_class=effect.strip()[:64],
        secrets=_strings(obj["secrets"], "secrets", limit=MAX_LIST_ITEMS, chars=200),
        files=_strings(obj["files"], "files", limit=MAX_LIST_ITEMS, chars=400),
        io_schema_changes=_strings(
            obj["io_schema_changes"], "io_schema_changes", limit=MAX_LIST_ITEMS, chars=400
        ),
    )


def parse_advice(body: bytes, model: str) -> tuple[Advice | None, str]:
    """The advice in a chat-completion response body, or (None, why it is unusable)."""
    from kavi.backends.openai import content_text, json_values

    try:
        obj = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        return None, f"the response is not JSON: {str(exc)[:120]}"
    choices = obj.get("choices") if isinstance(obj, dict) else None
    first = choices[0] if isinstance(choices, list) and choices else None
    message = first.get("message") if isinstance(first, dict) else None
    if not isinstance(message, dict):
        return None, "the response has no choices[0].message"
    if first.get("finish_reason") == "length":  # type: ignore[union-attr]
        return None, "the answer was cut off (finish_reason=length)"
    content = content_text(message.get("content"))
    if not content:
        return None, "the answer has no text"
    served = obj.get("model") if isinstance(obj.get("model"), str) else model
    problem = "the answer is not a JSON object"
    for value in json_values(content):
        try:
            return _answer(value, str(served)[:100]), ""
        except ValueError as exc:
            problem = str(exc)
    return None, f"{problem}; it starts with {content[:80]!r}"
