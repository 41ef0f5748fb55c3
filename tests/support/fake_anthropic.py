"""A real loopback HTTP server speaking the Anthropic Messages API: the model behind the
real Claude Code CLI in the contract tests (and nothing else is faked there).

It runs the stdlib ``http.server`` on ``127.0.0.1`` (port 0) and answers

* ``POST /v1/messages`` — a request carrying ``tools`` (the agent loop) gets the next
  scripted :class:`Turn`, else :attr:`FakeAnthropicServer.default`; a request without
  tools (the CLI's side queries: titles, summaries) gets a short text. ``"stream": true``
  is answered as server-sent events (``message_start``, ``content_block_*`` with
  ``text_delta``/``input_json_delta``, ``message_delta``, ``message_stop``), otherwise as
  one JSON message;
* ``POST /v1/messages/count_tokens`` — a count;
* anything else — 404 (recorded, so a test sees what the CLI tried to reach).

Every turn reports ``usage`` (input, output, cache-creation and cache-read tokens), so
the CLI's cost and token accounting are real numbers. Every request is recorded:
tests assert on the system prompt, the tools offered, the tool results the CLI sent
back ("No such tool available", permission refusals) and the headers (the API key).

A turn's blocks may depend on the request (the sandbox path is only known from the
system prompt): pass a callable ``request -> blocks`` instead of a list.

    with FakeAnthropicServer() as model:
        model.script(Turn([ToolUse("Read", {"file_path": "/etc/passwd"})]), Turn([Text("ok")]))
        ... run claude with ANTHROPIC_BASE_URL=model.base_url ...
        assert "/etc/passwd" in model.tool_results()[0].text
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

__all__ = [
    "FakeAnthropicServer",
    "ModelRequest",
    "Text",
    "ToolResult",
    "ToolUse",
    "Turn",
    "Usage",
]

DEFAULT_MODEL = "claude-sonnet-4-5-20250929"


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class ToolUse:
    name: str
    input: dict[str, Any]


Block = Text | ToolUse


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 1200
    output_tokens: int = 150
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
        }


@dataclass(frozen=True)
class ToolResult:
    """A ``tool_result`` block the CLI sent back to the model."""

    tool_use_id: str
    tool: str  # the name of the tool_use it answers ("" if unknown)
    text: str
    is_error: bool


@dataclass(frozen=True)
class ModelRequest:
    """One request as the server received it (header names lower-case)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None

    @property
    def is_agent_turn(self) -> bool:
        data = self.json()
        return self.path.endswith("/messages") and isinstance(data, dict) and bool(data.get("tools"))

    @property
    def system_text(self) -> str:
        system = (self.json() or {}).get("system")
        if isinstance(system, str):
            return system
        if isinstance(system, list):
            return "\n".join(str(b.get("text", "")) for b in system if isinstance(b, dict))
        return ""

    @property
    def messages_text(self) -> str:
        """Every text the request carries (system prompt and all messages), for searching."""
        return self.system_text + "\n" + json.dumps((self.json() or {}).get("messages", []))

    @property
    def tool_names(self) -> list[str]:
        return [str(t.get("name")) for t in (self.json() or {}).get("tools", []) if isinstance(t, dict)]

    @property
    def cwd(self) -> str:
        """The working directory the CLI told the model about (its system prompt or context)."""
        found = re.search(r"(?:Primary working directory|Working directory):\s*(\S+)", self.messages_text)
        if not found:
            raise AssertionError("the CLI did not tell the model its working directory")
        return found.group(1).replace("\\\\", "\\")


@dataclass
class Turn:
    """One answer of the model in the agent loop.

    ``blocks`` (or a function of the request returning them); the stop reason is
    ``tool_use`` when a block is a :class:`ToolUse`, else ``end_turn``."""

    blocks: Sequence[Block] | Callable[[ModelRequest], Sequence[Block]]
    usage: Usage = field(default_factory=Usage)
    status: int = 200
    error: tuple[str, str] | None = None  # (type, message) for an error reply
    # answer a streaming request with a stream that ends before ``message_start`` (the
    # CLI then asks again without streaming): this turn is only ever sent as plain JSON
    plain_only: bool = False

    @classmethod
    def fail(cls, status: int, kind: str, message: str) -> Turn:
        return cls([], status=status, error=(kind, message))


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the client went away (killed by a timeout): expected in tests


class FakeAnthropicServer:
    """Scriptable Anthropic Messages API on a loopback port; a context manager."""

    def __init__(self, *, model: str = DEFAULT_MODEL) -> None:
        self.model = model
        #: the answer when no scripted turn is left
        self.default = Turn([Text("Done.")])
        self._queue: deque[Turn] = deque()
        self._requests: list[ModelRequest] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> FakeAnthropicServer:
        if self._httpd is None:
            self._httpd = _HTTPServer(("127.0.0.1", 0), self._handler_class())
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="fake-anthropic",
                daemon=True,
            )
            self._thread.start()
        return self

    def close(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)

    def __enter__(self) -> FakeAnthropicServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def base_url(self) -> str:
        """What goes in ``ANTHROPIC_BASE_URL``."""
        if self._httpd is None:
            raise RuntimeError("FakeAnthropicServer is not running")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    # -- scripting -----------------------------------------------------------------

    def script(self, *turns: Turn) -> FakeAnthropicServer:
        with self._lock:
            self._queue.extend(turns)
        return self

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    # -- what was received ---------------------------------------------------------

    @property
    def requests(self) -> list[ModelRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def agent_requests(self) -> list[ModelRequest]:
        return [r for r in self.requests if r.is_agent_turn]

    def tool_results(self) -> list[ToolResult]:
        """Every tool result the CLI sent back, in order (from the last agent request,
        which carries the whole conversation)."""
        agent = self.agent_requests
        if not agent:
            return []
        messages = (agent[-1].json() or {}).get("messages", [])
        names: dict[str, str] = {}
        out: list[ToolResult] = []
        for message in messages:
            content = message.get("content") if isinstance(message, dict) else None
            if not isinstance(content, list):
                continue
            for block in content:
                if not isinstance(block, dict):
                    continue
                if block.get("type") == "tool_use":
                    names[str(block.get("id"))] = str(block.get("name"))
                elif block.get("type") == "tool_result":
                    body = block.get("content")
                    text = (
                        "\n".join(str(b.get("text", "")) for b in body if isinstance(b, dict))
                        if isinstance(body, list)
                        else str(body or "")
                    )
                    ident = str(block.get("tool_use_id"))
                    out.append(ToolResult(ident, names.get(ident, ""), text, bool(block.get("is_error"))))
        return out

    # -- answering -------------------------------------------------------------------

    def _next_turn(self, request: ModelRequest) -> Turn | None:
        """The turn answering ``request`` (None: break this stream, keep the turn)."""
        if not request.is_agent_turn:
            return Turn([Text("Kavi build")], usage=Usage(input_tokens=50, output_tokens=5))
        streaming = bool((request.json() or {}).get("stream"))
        with self._lock:
            turn = self._queue[0] if self._queue else self.default
            if turn.plain_only and streaming:
                return None
            if self._queue:
                self._queue.popleft()
            return turn

    def _message(self, turn: Turn, request: ModelRequest) -> dict[str, Any]:
        blocks = turn.blocks(request) if callable(turn.blocks) else turn.blocks
        content: list[dict[str, Any]] = []
        for block in blocks:
            if isinstance(block, Text):
                content.append({"type": "text", "text": block.text})
            else:
                ident = f"toolu_fake{next(self._ids):06d}"
                content.append({"type": "tool_use", "id": ident, "name": block.name, "input": block.input})
        data = request.json() or {}
        return {
            "id": f"msg_fake{next(self._ids):06d}",
            "type": "message",
            "role": "assistant",
            "model": str(data.get("model") or self.model),
            "content": content,
            "stop_reason": "tool_use" if any(isinstance(b, ToolUse) for b in blocks) else "end_turn",
            "stop_sequence": None,
            "usage": turn.usage.as_dict(),
        }

    @staticmethod
    def _events(message: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """``message`` as the stream of server-sent events the API produces."""
        usage = message["usage"]
        start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
        events: list[tuple[str, dict[str, Any]]] = [
            ("message_start", {"type": "message_start", "message": start}),
            ("ping", {"type": "ping"}),
        ]
        for index, block in enumerate(message["content"]):
            if block["type"] == "text":
                events.append(
                    (
                        "content_block_start",
                        {
                            "type": "content_block_start",
                            "index": index,
                            "content_block": {"type": "text", "text": ""},
                        },
                    )
                )
                text = block["text"]
                for piece in [text[i : i + 40] for i in range(0, len(text), 40)] or [""]:
                    delta = {"type": "text_delta", "text": piece}
                    events.append(
                        (
                            "content_block_delta",
                            {"type": "content_block_delta", "index": index, "delta": delta},
                        )
                    )
            else:
                head = {**block, "input": {}}
                events.append(
                    (
                        "content_block_start",
                        {"type": "content_block_start", "index": index, "content_block": head},
                    )
                )
                raw = json.dumps(block["input"])
                for piece in [raw[i : i + 60] for i in range(0, len(raw), 60)]:
                    delta = {"type": "input_json_delta", "partial_json": piece}
                    events.append(
                        (
                            "content_block_delta",
                            {"type": "content_block_delta", "index": index, "delta": delta},
                        )
                    )
            events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
        events.append(
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                    "usage": {"output_tokens": usage["output_tokens"]},
                },
            )
        )
        events.append(("message_stop", {"type": "message_stop"}))
        return events

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 30

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("request-id", f"req_fake{next(fake._ids):06d}")
                self.end_headers()
                self.wfile.write(body)

            def _error(self, status: int, kind: str, message: str) -> None:
                body = {"type": "error", "error": {"type": kind, "message": message}}
                self._send(status, json.dumps(body).encode())

            def do_GET(self) -> None:
                self._serve()

            def do_HEAD(self) -> None:
                self._serve()

            def do_POST(self) -> None:
                self._serve()

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = ModelRequest(
                    self.command,
                    self.path.split("?", 1)[0],
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                )
                with fake._lock:
                    fake._requests.append(request)
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    if self.command == "POST" and request.path.endswith("/messages/count_tokens"):
                        self._send(200, json.dumps({"input_tokens": max(1, len(body) // 4)}).encode())
                    elif self.command == "POST" and request.path.endswith("/messages"):
                        self._answer(request)
                    else:
                        self._error(404, "not_found_error", f"fake: no route for {request.path}")

            def _answer(self, request: ModelRequest) -> None:
                turn = fake._next_turn(request)
                if turn is None:  # a stream that ends before it began
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(b'event: ping\ndata: {"type": "ping"}\n\n')
                    self.close_connection = True
                    return
                if turn.error is not None:
                    self._error(turn.status, *turn.error)
                    return
                message = fake._message(turn, request)
                if not (request.json() or {}).get("stream"):
                    self._send(200, json.dumps(message).encode())
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()
                for name, data in fake._events(message):
                    self.wfile.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
                    self.wfile.flush()
                self.close_connection = True

        return Handler
