"""The ``openai`` build backend: any OpenAI-compatible chat-completions server.

Works with vLLM, Ollama, llama.cpp's server, LiteLLM or a local gateway. The model
never touches the file system: it answers with the files, and this backend writes
them into the sandbox itself after validating every path.

Flow of :meth:`OpenAIBackend.run`:

1. ``GET {base_url}/models`` with the short connect timeout; a server that is down,
   refuses the connection or does not answer 200 fails the run at once.
2. ``POST {base_url}/chat/completions`` asking for a JSON object
   ``{"files": [{"path": ..., "content": ...}]}`` via ``response_format``
   (``json_schema``, strict). A server that rejects ``response_format`` with
   400/422 is asked once more without it.
3. The answer is parsed as that JSON (bare, or wrapped in a ```` ```json ```` fence);
   failing that, fenced code blocks whose path is named in the fence's info string,
   on the line before the fence, or in a path comment on the block's first line.
4. All paths are validated before anything is written; then each file is written
   atomically (temp file + ``os.replace``) with mode ``0o644``.

Paths inside the sandbox that were not asked for are still written (and named in
the transcript): the gate that runs afterwards judges them, and this backend must
not hide a model's misbehaviour. Paths that would escape the sandbox are refused
and nothing is written at all.

The API key comes only from ``request.env`` (the scrubbed build environment), is
sent as ``Authorization: Bearer …`` and never appears in the transcript. ``httpx`` is
imported lazily, inside :meth:`OpenAIBackend.run`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from kavi.backends.base import BackendRequest, BackendResult
from kavi.config import OpenAIBackendConfig
from kavi.errors import BackendError
from kavi.ledger.models import BuildUsage

if TYPE_CHECKING:
    import httpx

__all__ = [
    "MAX_FILES",
    "MAX_FILE_BYTES",
    "RESPONSE_SCHEMA",
    "OpenAIBackend",
    "ParsedAnswer",
    "build_system_prompt",
    "content_text",
    "error_message",
    "json_values",
    "parse_answer",
    "probe_models",
]

MAX_FILES = 16
MAX_FILE_BYTES = 1024 * 1024
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
TRANSCRIPT_ANSWER_CHARS = 20_000
REASON_SNIPPET_CHARS = 200
ERROR_BODY_CHARS = 300

#: Status codes with which servers reject an unsupported ``response_format``.
_SCHEMA_REJECTED = frozenset({400, 422})

RESPONSE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "files": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "path": {"type": "string"},
                    "content": {"type": "string"},
                },
                "required": ["path", "content"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["files"],
    "additionalProperties": False,
}

RESPONSE_FORMAT: dict[str, Any] = {
    "type": "json_schema",
    "json_schema": {"name": "kavi_files", "strict": True, "schema": RESPONSE_SCHEMA},
}


def build_system_prompt(allowed_paths: tuple[str, ...]) -> str:
    """The rules the model must follow, naming the files it has to write."""
    listed = "\n".join(f"- {p}" for p in allowed_paths) or "- (none given)"
    return (
        "You are the code-writing backend of Kavi, a governed skill forge. The user "
        "message is a build packet describing one skill. Write exactly these files, "
        "and no others:\n"
        f"{listed}\n"
        "\n"
        "Rules:\n"
        "1. Answer with one JSON object and nothing else: "
        '{"files": [{"path": "<relative path>", "content": "<full file contents>"}]}\n'
        "2. One entry per file listed above, each with the complete file contents: "
        "never a diff, an excerpt, an ellipsis or a placeholder.\n"
        "3. Use the paths exactly as listed (relative POSIX paths). Do not create, "
        "modify, rename or delete any other file.\n"
        "4. No prose, explanations or markdown outside the JSON object."
    )


# --------------------------------------------------------------------------------
# Parsing the model's answer
# --------------------------------------------------------------------------------


@dataclass
class ParsedAnswer:
    """Files found in an answer, or why none were found."""

    files: list[tuple[str, str]] = field(default_factory=list)
    mode: str = ""  # "json", "json_fence", "fenced_blocks" or "" when nothing was found
    notes: list[str] = field(default_factory=list)
    error: str = ""


@dataclass
class _Block:
    info: str
    body: list[str]
    before: str | None
    closed: bool


_FENCE_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_PATH_KEY = re.compile(r"(?i)^(?:path|file|filename|name|title)=(?P<value>.+)$")
_LANG_PATH = re.compile(r"^[A-Za-z][\w+#.-]*:(?P<value>.+)$")
_PATH_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,10}$")
_NOT_IN_PATH = set(" \t\r\n`*'\"<>|!{}()[],;")
_LINE_MARKERS = re.compile(r"^(?:#{1,6}[ \t]*|//[ \t]*|[-+][ \t]+|\d+[.)][ \t]+)")
_LABEL = re.compile(r"(?i)^(?:file(?:[ \t]*name)?|path)[ \t]*:[ \t]*")
_BACKTICKED = re.compile(r"`([^`\s]+)`")
_FIRST_LINE_PATH = re.compile(
    r"(?i)^[ \t]*(?:#(?!!)|//)[ \t]*(?:(?:file(?:name)?|path)[ \t]*:[ \t]*)?(?P<value>\S+)[ \t]*$"
)
_END_CHARS = " \t*`'\":"
_THINK = re.compile(r"\A\s*<think>.*?</think>", re.DOTALL)
_FILES_OBJECT = re.compile(r'\{\s*"files"\s*:')


def _looks_like_path(token: str) -> bool:
    if not token or any(c in _NOT_IN_PATH for c in token):
        return False
    if token.startswith(("http:", "https:")):
        return False
    return "/" in token or "\\" in token or bool(_PATH_SUFFIX.search(token))


def _unquote(token: str) -> str:
    return token.strip().strip("'\"`")


def _path_from_info(info: str) -> str | None:
    tokens = info.split()
    for token in tokens:
        m = _PATH_KEY.match(token)
        if m:
            value = _unquote(m.group("value"))
            return value or None
    for token in tokens:
        candidate = _unquote(token)
        m = _LANG_PATH.match(candidate)
        if m and _looks_like_path(m.group("value")):
            return m.group("value")
        if _looks_like_path(candidate):
            return candidate
    return None


def _path_from_line(line: str | None) -> str | None:
    if line is None:
        return None
    s = _LINE_MARKERS.sub("", line.strip()).strip(_END_CHARS)
    s = _LABEL.sub("", s).strip(_END_CHARS)
    if _looks_like_path(s):
        return s
    ticked: list[str] = [t for t in _BACKTICKED.findall(line) if _looks_like_path(t)]
    if len(ticked) == 1:
        return ticked[0]
    return None


def _path_from_first_line(body: list[str]) -> str | None:
    if not body:
        return None
    m = _FIRST_LINE_PATH.match(body[0])
    if m and _looks_like_path(m.group("value")):
        return m.group("value")
    return None


def _fenced_blocks(text: str) -> list[_Block]:
    """Fenced code blocks (CommonMark-like: ``` or ~~~, closed by a fence at least as long)."""
    lines = text.splitlines()
    blocks: list[_Block] = []
    before: str | None = None
    i = 0
    while i < len(lines):
        m = _FENCE_OPEN.match(lines[i])
        if m and not (m.group("fence")[0] == "`" and "`" in m.group("info")):
            fence = m.group("fence")
            indent = m.group("indent")
            body: list[str] = []
            closed = False
            j = i + 1
            while j < len(lines):
                stripped = lines[j].strip()
                if stripped and set(stripped) == {fence[0]} and len(stripped) >= len(fence):
                    closed = True
                    break
                line = lines[j]
                if indent and line.startswith(indent):
                    line = line[len(indent) :]
                body.append(line)
                j += 1
            blocks.append(_Block(m.group("info").strip(), body, before, closed))
            before = None
            i = j + 1
            continue
        if lines[i].strip():
            before = lines[i]
        i += 1
    return blocks


def _files_from_json(obj: Any) -> tuple[list[tuple[str, str]] | None, str]:
    items: Any
    if isinstance(obj, dict) and "files" in obj:
        items = obj["files"]
    elif isinstance(obj, list):
        items = obj
    else:
        return None, "JSON answer has no 'files' key"
    if not isinstance(items, list):
        return None, "JSON answer: 'files' is not a list"
    files: list[tuple[str, str]] = []
    for n, item in enumerate(items):
        if not isinstance(item, dict):
            return None, f"JSON answer: files[{n}] is not an object"
        path, content = item.get("path"), item.get("content")
        if not isinstance(path, str):
            return None, f"JSON answer: files[{n}] has no string 'path'"
        if not isinstance(content, str):
            return None, f"JSON answer: files[{n}] ({path!r}) has no string 'content'"
        files.append((path, content))
    return files, ""


def _dedupe(files: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], str]:
    seen: dict[str, str] = {}
    out: list[tuple[str, str]] = []
    for path, content in files:
        if path in seen:
            if seen[path] != content:
                return [], f"the answer gives {path!r} twice with different contents"
            continue
        seen[path] = content
        out.append((path, content))
    return out, ""


def _json_candidates(stripped: str, blocks: list[_Block]) -> Iterator[tuple[str, Any]]:
    """Decoded JSON values that may carry the files, most likely first."""
    texts: list[tuple[str, str]] = [("json", stripped)]
    for block in blocks:
        lang = block.info.split()[0].lower() if block.info else ""
        body = "\n".join(block.body).strip()
        if block.closed and lang in ("", "json", "jsonc") and body.startswith(("{", "[")):
            texts.append(("json_fence", body))
    for mode, candidate in texts:
        try:
            yield mode, json.loads(candidate)
        except ValueError:
            continue
    # a {"files": ...} object embedded in prose
    decoder = json.JSONDecoder()
    for m in _FILES_OBJECT.finditer(stripped):
        try:
            obj, _end = decoder.raw_decode(stripped, m.start())
        except ValueError:
            continue
        yield "json", obj


def parse_answer(text: str) -> ParsedAnswer:
    """Find the files in a model answer.

    First the structured ``{"files": [{"path", "content"}]}`` JSON, bare or inside a
    fence; then fenced code blocks with a resolvable path. Blocks without a path are
    ignored. ``ParsedAnswer.error`` is set when nothing usable was found.
    """
    result = ParsedAnswer()
    answer = text
    think = _THINK.match(text)
    if think:  # reasoning models (Ollama qwen3, deepseek-r1) think aloud first
        result.notes.append(f"skipped a <think> section of {think.end()} chars")
        text = text[think.end() :]
    stripped = text.strip()
    blocks = _fenced_blocks(text)

    for mode, obj in _json_candidates(stripped, blocks):
        files, problem = _files_from_json(obj)
        if files is None:
            result.notes.append(problem)
            continue
        files, problem = _dedupe(files)
        result.mode = mode
        if problem:
            result.error = problem
        elif not files:
            result.error = "the JSON answer lists no files"
        result.files = files
        return result

    found: list[tuple[str, str]] = []
    for n, block in enumerate(blocks, start=1):
        path = (
            _path_from_info(block.info) or _path_from_line(block.before) or _path_from_first_line(block.body)
        )
        if path is None:
            result.notes.append(f"fenced block {n} ignored: no path given")
            continue
        if not block.closed:
            result.notes.append(f"fenced block {n} ({path}) ignored: fence never closed")
            continue
        content = "\n".join(block.body) + "\n" if block.body else ""
        found.append((path, content))
    if found:
        files, problem = _dedupe(found)
        result.mode = "fenced_blocks"
        result.files = files
        result.error = problem
        return result

    snippet = answer[:REASON_SNIPPET_CHARS]
    why = "; ".join(dict.fromkeys(n for n in result.notes if n.startswith("JSON")))
    result.error = (
        "no files found in the model answer (neither JSON "
        '{"files": [{"path", "content"}]} nor fenced code blocks with a path'
        + (f"; {why}" if why else "")
        + f"); answer starts with: {snippet!r}"
    )
    return result


# --------------------------------------------------------------------------------
# Validating and writing files
# --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Planned:
    rel: str
    target: Path
    data: bytes


def _plan_writes(sandbox: Path, files: list[tuple[str, str]]) -> tuple[list[_Planned], str | None]:
    """Validate every path and content; any problem refuses the whole answer."""
    if len(files) > MAX_FILES:
        return [], f"the answer has {len(files)} files; at most {MAX_FILES} are accepted"
    root = Path(os.path.realpath(sandbox))
    planned: list[_Planned] = []
    seen: set[str] = set()
    for raw, content in files:
        problem = _path_problem(raw)
        if problem:
            return [], f"refused path {raw!r}: {problem}"
        rel = PurePosixPath(raw)
        key = rel.as_posix()
        if key in seen:
            return [], f"refused path {raw!r}: the same file is given twice"
        seen.add(key)
        target = root
        for n, part in enumerate(rel.parts):
            target = target / part
            last = n == len(rel.parts) - 1
            if target.is_symlink():
                return [], f"refused path {raw!r}: {target.relative_to(root)} is a symlink"
            if not last and target.exists() and not target.is_dir():
                return [], f"refused path {raw!r}: {target.relative_to(root)} is not a directory"
            if last and target.is_dir():
                return [], f"refused path {raw!r}: it is an existing directory"
        real = os.path.realpath(target)
        if os.path.commonpath([real, str(root)]) != str(root):
            return [], f"refused path {raw!r}: it resolves outside the sandbox"
        try:
            data = content.encode("utf-8")
        except UnicodeEncodeError as exc:
            return [], f"refused file {raw!r}: content is not valid UTF-8 text ({exc.reason})"
        if len(data) > MAX_FILE_BYTES:
            return [], (f"refused file {raw!r}: {len(data)} bytes, more than the {MAX_FILE_BYTES}-byte limit")
        planned.append(_Planned(key, target, data))
    return planned, None


def _path_problem(raw: str) -> str | None:
    if not raw:
        return "empty path"
    if "\x00" in raw:
        return "contains a NUL byte"
    if "\\" in raw:
        return "contains a backslash (use relative POSIX paths)"
    if any(ord(c) < 32 or ord(c) == 127 for c in raw):
        return "contains a control character"
    if raw != raw.strip():
        return "has leading or trailing whitespace"
    if raw.startswith("/"):
        return "absolute path"
    if raw.endswith("/"):
        return "names a directory, not a file"
    parts = PurePosixPath(raw).parts
    if ".." in parts:
        return "contains a '..' component"
    if not parts:
        return "names the sandbox itself"
    if any(p.lower() == ".git" for p in parts):
        return "writes into .git"
    return None


def _write_atomic(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".kavi-tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# --------------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------------


@dataclass
class _Reply:
    status: int = 0
    body: bytes = b""
    seconds: float = 0.0
    error: str = ""  # transport-level failure (timeout, refused, ...); status is 0


def error_message(body: bytes) -> str:
    """The server's error message: ``{"error": {"message": ...}}`` or the raw body."""
    text = body.decode("utf-8", errors="replace")
    try:
        obj = json.loads(text)
    except ValueError:
        obj = None
    if isinstance(obj, dict):
        err = obj.get("error", obj.get("detail", obj.get("message")))
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            text = err["message"]
        elif isinstance(err, str):
            text = err
        elif err is not None:
            text = json.dumps(err)
    text = " ".join(text.split())
    if len(text) > ERROR_BODY_CHARS:
        text = text[:ERROR_BODY_CHARS] + "…"
    return text or "(empty body)"


def probe_models(
    client: httpx.Client, base: str, headers: dict[str, str], timeout: float
) -> tuple[bytes | None, str]:
    """The health check of an OpenAI-compatible server: ``GET {base}/models``.

    ``(body, "")`` on HTTP 200, else ``(None, why)`` — down, refused, slow or erroring."""
    import httpx

    url = f"{base}/models"
    try:
        resp = client.get(url, headers=headers, timeout=httpx.Timeout(timeout))
    except httpx.TimeoutException:
        return None, f"no answer from GET {url} within {_fmt_s(timeout)}"
    except httpx.ConnectError as exc:
        return None, f"connection failed ({exc or type(exc).__name__})"
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}"
    if resp.status_code != 200:
        return None, f"GET {url} returned HTTP {resp.status_code}: {error_message(resp.content)}"
    return resp.content, ""


def json_values(text: str) -> Iterator[Any]:
    """The JSON values a model answer may carry, most likely first: the whole answer
    (after a ``<think>`` section), a fenced ```` ```json ```` block, an object in prose."""
    think = _THINK.match(text)
    if think:
        text = text[think.end() :]
    for _mode, value in _json_candidates(text.strip(), _fenced_blocks(text)):
        yield value


def content_text(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}]
        texts = [p.get("text") for p in content if isinstance(p, dict)]
        if texts and all(isinstance(t, str) for t in texts):
            return "".join(t for t in texts if isinstance(t, str))
    return None


def _tokens(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**12 else None


def reported_usage(details: dict[str, Any], configured: str, elapsed: float, requests: int) -> BuildUsage:
    """The server's ``usage`` as Kavi records it: prompt/completion (and cached) tokens, a
    ``cost`` where a gateway reports one (LiteLLM, OpenRouter), the model that answered."""
    usage = details.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    cached = usage.get("prompt_tokens_details")
    cost = usage.get("cost")
    served = details.get("served_model")
    return BuildUsage(
        cost_usd=float(cost)
        if isinstance(cost, (int, float)) and not isinstance(cost, bool) and 0 <= cost < 10**9
        else None,
        turns=requests or None,
        input_tokens=_tokens(usage.get("prompt_tokens")),
        output_tokens=_tokens(usage.get("completion_tokens")),
        cache_read_tokens=_tokens(cached.get("cached_tokens")) if isinstance(cached, dict) else None,
        duration_s=elapsed,
        model=(served if isinstance(served, str) and served else configured)[:100],
    )


def _fmt_s(seconds: float) -> str:
    return f"{round(seconds, 3):g}s"


class OpenAIBackend:
    """Build backend for OpenAI-compatible ``/chat/completions`` servers."""

    name = "openai"

    def __init__(self, config: OpenAIBackendConfig) -> None:
        self._config = config

    # -- public ---------------------------------------------------------------

    def run(self, request: BackendRequest) -> BackendResult:
        try:
            import httpx
        except ImportError as exc:  # pragma: no cover - httpx is a dependency
            raise BackendError(
                "the openai backend needs httpx",
                why=str(exc),
                remedy="install Kavi with its dependencies (pip install kavi)",
            ) from exc
        cfg = self._config
        base = cfg.base_url.rstrip("/")
        if not base.startswith(("http://", "https://")):
            raise BackendError(
                f"openai backend: base_url {cfg.base_url!r} is not an http(s) URL",
                remedy="set backends.openai.base_url, e.g. http://localhost:8000/v1",
            )
        if not request.sandbox.is_dir():
            raise BackendError(f"openai backend: sandbox {request.sandbox} is not a directory")

        key = request.env.get(cfg.api_key_env) if cfg.api_key_env else None
        key = key or None
        run = _Run(cfg, base, request, key, time.monotonic() + request.timeout_seconds)
        if key is not None and not all(33 <= ord(c) < 127 for c in key):
            return _redact(
                run.fail(
                    f"the API key in ${cfg.api_key_env} contains characters that cannot go "
                    "in an HTTP header (whitespace, control or non-ASCII characters)"
                ),
                key,
            )
        try:
            with httpx.Client(follow_redirects=False, trust_env=False) as client:
                result = run.execute(client)
        except httpx.InvalidURL as exc:
            raise BackendError(
                f"openai backend: base_url {cfg.base_url!r} is not a valid URL",
                why=str(exc),
                remedy="set backends.openai.base_url, e.g. http://localhost:8000/v1",
            ) from exc
        return _redact(result, key)


def _redact(result: BackendResult, key: str | None) -> BackendResult:
    if key and len(key) >= 4:
        result.transcript = result.transcript.replace(key, "[redacted]")
        result.reason = result.reason.replace(key, "[redacted]")
    return result


class _Run:
    """State of one backend run (kept off the backend so it stays reusable)."""

    def __init__(
        self,
        cfg: OpenAIBackendConfig,
        base: str,
        request: BackendRequest,
        key: str | None,
        deadline: float,
    ) -> None:
        self.cfg = cfg
        self.base = base
        self.request = request
        self.key = key
        self.deadline = deadline
        self.started = time.monotonic()
        self.log: list[str] = []
        self.requests = 0  # chat requests sent (the model's turns)
        self.details: dict[str, Any] = {
            "model": cfg.model,
            "base_url": base,
            "json_schema_used": False,
            "retried_without_response_format": False,
            "finish_reason": None,
            "usage": None,
            "files_written": [],
        }

    # -- helpers ----------------------------------------------------------------

    def headers(self) -> dict[str, str]:
        h = {"Accept": "application/json", "User-Agent": "kavi-openai-backend"}
        if self.key:
            h["Authorization"] = f"Bearer {self.key}"
        return h

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def fail(self, reason: str) -> BackendResult:
        self.log.append(f"result: FAILED - {reason}")
        return self.finish(False, reason)

    def finish(self, ok: bool, reason: str) -> BackendResult:
        elapsed = round(time.monotonic() - self.started, 3)
        self.details["elapsed_seconds"] = elapsed
        return BackendResult(
            ok=ok,
            reason=reason,
            transcript="\n".join(self.log) + "\n",
            details=self.details,
            usage=reported_usage(self.details, self.cfg.model, elapsed, self.requests),
        )

    # -- steps ------------------------------------------------------------------

    def execute(self, client: httpx.Client) -> BackendResult:
        cfg, req = self.cfg, self.request
        self.log.append("kavi openai backend")
        self.log.append(f"  server: {self.base}")
        self.log.append(f"  model: {cfg.model}")
        self.log.append(f"  allowed paths: {', '.join(req.allowed_paths) or '(none)'}")
        auth = f"bearer token from ${cfg.api_key_env}" if self.key else "none"
        self.log.append(f"  authorization: {auth}")

        problem = self.health(client)
        if problem:
            return self.fail(f"openai backend unreachable at {self.base}: {problem}")

        system = build_system_prompt(req.allowed_paths)
        payload: dict[str, Any] = {
            "model": cfg.model,
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": req.packet_text},
            ],
            "temperature": cfg.temperature,
            "max_tokens": cfg.max_tokens,
            "response_format": RESPONSE_FORMAT,
        }
        url = f"{self.base}/chat/completions"
        self.details["json_schema_used"] = True
        reply = self.post(client, url, payload, attempt=1)
        if reply.status in _SCHEMA_REJECTED:
            self.log.append(
                f"  server rejected response_format json_schema (HTTP {reply.status}: "
                f"{error_message(reply.body)}); retrying once without response_format"
            )
            del payload["response_format"]
            self.details["json_schema_used"] = False
            self.details["retried_without_response_format"] = True
            reply = self.post(client, url, payload, attempt=2)
        self.details["http_status"] = reply.status or None
        if reply.error:
            return self.fail(reply.error)
        if not 200 <= reply.status < 300:
            return self.fail(
                f"openai backend: HTTP {reply.status} from POST {url}: {error_message(reply.body)}"
            )
        return self.handle_answer(url, reply)

    def health(self, client: httpx.Client) -> str | None:
        url = f"{self.base}/models"
        limit = max(0.01, min(self.cfg.connect_timeout_seconds, self.remaining()))
        t0 = time.monotonic()
        body, why = probe_models(client, self.base, self.headers(), limit)
        if body is None:
            self.log.append(f"health: {why}")
            return why
        self.log.append(f"health: GET {url} -> HTTP 200 in {_fmt_s(time.monotonic() - t0)}")
        self.note_models(body)
        return None

    def note_models(self, body: bytes) -> None:
        try:
            obj = json.loads(body)
        except ValueError:
            return
        data = obj.get("data") if isinstance(obj, dict) else None
        if not isinstance(data, list):
            return
        ids = [m["id"] for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)]
        if not ids:
            return
        shown = ", ".join(ids[:10]) + (f", … ({len(ids)} in all)" if len(ids) > 10 else "")
        self.log.append(f"  models served: {shown}")
        if self.cfg.model not in ids:
            self.log.append(
                f"  note: model {self.cfg.model!r} is not listed by the server "
                "(it may still resolve it as an alias)"
            )

    def post(self, client: httpx.Client, url: str, payload: dict[str, Any], *, attempt: int) -> _Reply:
        import httpx

        messages = payload["messages"]
        rf = "json_schema" if "response_format" in payload else "none"
        self.requests += 1
        self.log.append(f"request: POST {url} (attempt {attempt}, response_format={rf})")
        self.log.append(
            f"  messages: system {len(messages[0]['content'])} chars, "
            f"user {len(messages[1]['content'])} chars; "
            f"max_tokens={payload['max_tokens']}, temperature={payload['temperature']}"
        )
        remaining = self.remaining()
        if remaining <= 0:
            return _Reply(
                error=(
                    f"openai backend timed out: deadline of "
                    f"{_fmt_s(self.request.timeout_seconds)} passed before POST {url}"
                )
            )
        io = min(self.cfg.timeout_seconds, remaining)
        connect = min(self.cfg.connect_timeout_seconds, remaining)
        timeout = httpx.Timeout(connect=connect, read=io, write=io, pool=io)
        self.log.append(
            f"  timeouts: connect {_fmt_s(connect)}, read/write/pool {_fmt_s(io)}, "
            f"deadline {_fmt_s(self.request.timeout_seconds)}"
        )
        body = json.dumps(payload).encode("utf-8")
        headers = {**self.headers(), "Content-Type": "application/json"}
        t0 = time.monotonic()
        try:
            with client.stream("POST", url, content=body, headers=headers, timeout=timeout) as r:
                chunks: list[bytes] = []
                size = 0
                for chunk in r.iter_bytes():
                    size += len(chunk)
                    if size > MAX_RESPONSE_BYTES:
                        return _Reply(
                            error=(
                                f"openai backend: response from POST {url} is larger than "
                                f"{MAX_RESPONSE_BYTES} bytes"
                            )
                        )
                    chunks.append(chunk)
                    if time.monotonic() > self.deadline:
                        return _Reply(
                            error=(
                                f"openai backend timed out: the answer to POST {url} was "
                                f"still arriving after the deadline of "
                                f"{_fmt_s(self.request.timeout_seconds)}"
                            )
                        )
                reply = _Reply(r.status_code, b"".join(chunks), time.monotonic() - t0)
        except httpx.TimeoutException as exc:
            kind = {
                "ConnectTimeout": f"could not connect within {_fmt_s(connect)}",
                "ReadTimeout": f"no answer within {_fmt_s(io)} (read timeout)",
                "WriteTimeout": f"could not send the request within {_fmt_s(io)}",
                "PoolTimeout": f"no connection available within {_fmt_s(io)}",
            }.get(type(exc).__name__, str(exc))
            took = _fmt_s(time.monotonic() - t0)
            return _Reply(error=f"openai backend timed out after {took}: POST {url}: {kind}")
        except httpx.HTTPError as exc:
            return _Reply(error=f"openai backend: POST {url} failed: {type(exc).__name__}: {exc}")
        self.log.append(f"response: HTTP {reply.status} in {_fmt_s(reply.seconds)}, {len(reply.body)} bytes")
        return reply

    def handle_answer(self, url: str, reply: _Reply) -> BackendResult:
        where = f"POST {url} (HTTP {reply.status})"
        try:
            obj = json.loads(reply.body.decode("utf-8"))
        except UnicodeDecodeError:
            return self.fail(f"openai backend: response from {where} is not UTF-8")
        except json.JSONDecodeError as exc:
            start = reply.body[:REASON_SNIPPET_CHARS].decode("utf-8", errors="replace")
            return self.fail(
                f"openai backend: malformed JSON in response from {where}: "
                f"{exc.msg} at position {exc.pos}; body starts with {start!r}"
            )
        if not isinstance(obj, dict):
            return self.fail(
                f"openai backend: response from {where} is a JSON {type(obj).__name__}, not an object"
            )
        usage = obj.get("usage")
        self.details["usage"] = usage if isinstance(usage, dict) else None
        if isinstance(obj.get("model"), str):
            self.details["served_model"] = obj["model"]
        choices = obj.get("choices")
        if not isinstance(choices, list) or not choices:
            extra = f" (server error: {error_message(reply.body)})" if "error" in obj else ""
            what = "no 'choices'" if choices is None else "an empty or invalid 'choices'"
            return self.fail(f"openai backend: response from {where} has {what}{extra}")
        choice = choices[0]
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            return self.fail(f"openai backend: response from {where} has no choices[0].message")
        finish = choice.get("finish_reason") if isinstance(choice, dict) else None
        self.details["finish_reason"] = finish
        self.log.append(f"  finish_reason: {finish}")
        self.log.append(f"  usage: {json.dumps(self.details['usage'])}")
        content = content_text(message.get("content"))
        if content is None:
            refusal = message.get("refusal")
            if isinstance(refusal, str) and refusal:
                return self.fail(f"the model refused: {refusal[:REASON_SNIPPET_CHARS]!r}")
            return self.fail(
                f"openai backend: response from {where} has no text in choices[0].message.content"
            )
        self.log_answer(content)
        if finish == "length":
            return self.fail(
                "model answer truncated (finish_reason=length); raise max_tokens "
                f"(backends.openai.max_tokens, now {self.cfg.max_tokens}) or shorten the "
                "packet; nothing was written"
            )
        return self.write(content)

    def log_answer(self, content: str) -> None:
        shown = content[:TRANSCRIPT_ANSWER_CHARS]
        cut = len(content) - len(shown)
        self.log.append(f"--- answer ({len(content)} chars) ---")
        self.log.append(shown)
        if cut:
            self.log.append(f"[... {cut} more chars not shown ...]")
        self.log.append("--- end of answer ---")

    def write(self, content: str) -> BackendResult:
        parsed = parse_answer(content)
        self.details["parse_mode"] = parsed.mode or None
        for note in parsed.notes:
            self.log.append(f"parse note: {note}")
        if parsed.error:
            return self.fail(parsed.error)
        self.log.append(f"parse: {parsed.mode} ({len(parsed.files)} files)")
        planned, problem = _plan_writes(self.request.sandbox, parsed.files)
        if problem:
            return self.fail(f"{problem}; nothing was written")
        written: list[str] = []
        for item in planned:
            try:
                _write_atomic(item.target, item.data)
            except OSError as exc:
                self.details["files_written"] = written
                return self.fail(f"could not write {item.rel}: {exc}")
            written.append(item.rel)
            self.log.append(f"wrote: {item.rel} ({len(item.data)} bytes)")
        self.details["files_written"] = written
        allowed = set(self.request.allowed_paths)
        extra = [p for p in written if p not in allowed]
        missing = [p for p in self.request.allowed_paths if p not in written]
        self.details["extra_paths"] = extra
        self.details["missing_paths"] = missing
        if extra:
            self.log.append(
                "note: written although not in the allowed paths (the gate will judge): " + ", ".join(extra)
            )
        if missing:
            self.log.append("note: allowed paths the model did not write: " + ", ".join(missing))
        self.log.append(f"result: ok, {len(written)} files written")
        return self.finish(True, "")
