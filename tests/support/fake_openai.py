"""A real loopback HTTP server speaking the OpenAI chat-completions API, for tests.

It runs the stdlib ``http.server`` in a background thread on ``127.0.0.1`` (port 0,
so the OS picks a free port) and answers:

* ``GET  {prefix}/models``            — the model list (or a scripted reply);
* ``POST {prefix}/chat/completions``  — the next scripted reply from a FIFO queue,
  else :attr:`FakeOpenAIServer.default` (repeated), else HTTP 500 saying that no
  reply was scripted.

Every request is recorded (method, path, headers, body) so tests can assert on what
the client sent. Usage::

    with FakeOpenAIServer() as server:
        server.answer_files({"skills/x.py": "X = 1\\n"})
        backend = OpenAIBackend(OpenAIBackendConfig(base_url=server.base_url))
        ...
        assert server.last_chat.json()["model"] == "fake-model"

As a pytest fixture::

    @pytest.fixture
    def openai_server() -> Iterator[FakeOpenAIServer]:
        with FakeOpenAIServer() as server:
            yield server
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal

__all__ = [
    "FakeOpenAIServer",
    "RecordedRequest",
    "Reply",
    "chat_completion",
    "fenced_answer",
    "files_json",
    "unused_port",
]

FenceStyle = Literal["info", "path=", "before", "heading", "bold", "comment"]


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it. Header names are lower-case."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class Reply:
    """A scripted HTTP reply; ``delay`` seconds pass before anything is sent."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, obj: Any, *, status: int = 200, delay: float = 0.0) -> Reply:
        return cls(status=status, body=json.dumps(obj).encode("utf-8"), delay=delay)


# --- answer builders ----------------------------------------------------------------


def chat_completion(
    content: str | None,
    *,
    finish_reason: str | None = "stop",
    model: str = "fake-model",
    usage: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """A ``chat.completion`` response object carrying ``content``."""
    if usage is None:
        n = len(content or "") // 4
        usage = {"prompt_tokens": 100, "completion_tokens": n, "total_tokens": 100 + n}
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish_reason,
            }
        ],
        "usage": dict(usage),
    }


def files_json(files: Mapping[str, str] | Iterable[tuple[str, str]]) -> str:
    """The structured answer ``{"files": [{"path", "content"}, ...]}`` as text."""
    items = files.items() if isinstance(files, Mapping) else files
    return json.dumps({"files": [{"path": p, "content": c} for p, c in items]})


def fenced_answer(
    files: Mapping[str, str] | Iterable[tuple[str, str]],
    *,
    style: FenceStyle = "info",
    prose: bool = True,
) -> str:
    """A markdown answer with one fenced block per file, the path given per ``style``.

    ``info``: ```` ```python path ````; ``path=``: ```` ```python path=... ````;
    ``before``: ``path:`` on the line before; ``heading``: ``# File: path`` before;
    ``bold``: ``**path**`` before; ``comment``: ``# path`` as the block's first line.
    """
    items = files.items() if isinstance(files, Mapping) else files
    parts = ["Here are the files you asked for."] if prose else []
    for path, content in items:
        body = content if content.endswith("\n") else content + "\n"
        if style == "info":
            parts.append(f"```python {path}\n{body}```")
        elif style == "path=":
            parts.append(f"```python path={path}\n{body}```")
        elif style == "before":
            parts.append(f"{path}:\n```python\n{body}```")
        elif style == "heading":
            parts.append(f"# File: {path}\n```python\n{body}```")
        elif style == "bold":
            parts.append(f"**{path}**\n\n```python\n{body}```")
        else:
            parts.append(f"```python\n# {path}\n{body}```")
    if prose:
        parts.append("Let me know if you need anything else.")
    return "\n\n".join(parts) + "\n"


def unused_port() -> int:
    """A loopback TCP port with nothing listening on it (for "server down" tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# --- the server ---------------------------------------------------------------------


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # never wait for a handler stuck in a slow reply

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # client went away (e.g. it timed out): expected in tests, stay quiet


class FakeOpenAIServer:
    """Scriptable OpenAI-compatible server on a loopback port; a context manager."""

    def __init__(
        self,
        *,
        models: Iterable[str] = ("fake-model",),
        prefix: str = "/v1",
    ) -> None:
        self.models = list(models)
        self.prefix = prefix.rstrip("/")
        #: Reply for ``/chat/completions`` when the queue is empty (``None``: HTTP 500).
        self.default: Reply | None = None
        #: Override for ``GET /models`` (e.g. ``Reply.json({...}, status=503)``).
        self.models_reply: Reply | None = None
        #: Answer 400 to any chat request carrying ``response_format`` (not consuming
        #: the queue), like servers without structured-output support.
        self.reject_response_format = False
        #: A stand-in model: called with each chat request, its reply (if not None) is
        #: sent instead of the queue's (it can read the prompt, e.g. a build packet).
        self.responder: Callable[[RecordedRequest], Reply | None] | None = None
        self._queue: deque[Reply] = deque()
        self._requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> FakeOpenAIServer:
        if self._httpd is not None:
            return self
        self._stopping.clear()
        self._httpd = _HTTPServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-openai-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def close(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()  # wakes handlers sleeping in a slow reply
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- addresses ---------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("FakeOpenAIServer is not running")
        port: int = self._httpd.server_address[1]
        return port

    @property
    def base_url(self) -> str:
        """What goes in ``backends.openai.base_url``, e.g. ``http://127.0.0.1:5123/v1``."""
        return f"http://127.0.0.1:{self.port}{self.prefix}"

    # -- recorded traffic ----------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == f"{self.prefix}/chat/completions"]

    @property
    def last_chat(self) -> RecordedRequest:
        chats = self.chat_requests
        if not chats:
            raise AssertionError("the fake server received no chat completion request")
        return chats[-1]

    # -- scripting -----------------------------------------------------------------

    def queue(self, *replies: Reply) -> FakeOpenAIServer:
        """Append raw replies for the next ``/chat/completions`` requests."""
        with self._lock:
            self._queue.extend(replies)
        return self

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    def answer(
        self,
        content: str | None,
        *,
        finish_reason: str | None = "stop",
        usage: Mapping[str, int] | None = None,
        delay: float = 0.0,
    ) -> FakeOpenAIServer:
        """A successful completion whose message content is ``content``."""
        obj = chat_completion(content, finish_reason=finish_reason, model=self._model(), usage=usage)
        return self.queue(Reply.json(obj, delay=delay))

    def answer_files(
        self, files: Mapping[str, str] | Iterable[tuple[str, str]], *, json_fence: bool = False
    ) -> FakeOpenAIServer:
        """The structured JSON answer, bare or wrapped in a ```` ```json ```` fence."""
        text = files_json(files)
        if json_fence:
            text = f"Sure, here it is:\n\n```json\n{text}\n```\n"
        return self.answer(text)

    def answer_fenced(
        self,
        files: Mapping[str, str] | Iterable[tuple[str, str]],
        *,
        style: FenceStyle = "info",
    ) -> FakeOpenAIServer:
        """A markdown answer with fenced code blocks (no JSON)."""
        return self.answer(fenced_answer(files, style=style))

    def answer_truncated(self, content: str = '{"files": [{"path": "skills/') -> FakeOpenAIServer:
        """A completion cut off by the token limit (``finish_reason: "length"``)."""
        return self.answer(content, finish_reason="length")

    def answer_slow(self, seconds: float, content: str = "{}") -> FakeOpenAIServer:
        """A completion sent only after ``seconds`` (longer than a client timeout)."""
        return self.answer(content, delay=seconds)

    def fail(self, status: int = 500, message: str = "internal server error") -> FakeOpenAIServer:
        """An OpenAI-style error body with the given HTTP status."""
        body = {"error": {"message": message, "type": "server_error", "code": status}}
        return self.queue(Reply.json(body, status=status))

    def answer_raw(
        self,
        body: bytes | str,
        *,
        status: int = 200,
        content_type: str = "application/json",
    ) -> FakeOpenAIServer:
        """Exactly these bytes (e.g. malformed JSON)."""
        raw = body.encode("utf-8") if isinstance(body, str) else body
        return self.queue(Reply(status=status, body=raw, content_type=content_type))

    # -- internals -----------------------------------------------------------------

    def _model(self) -> str:
        return self.models[0] if self.models else "fake-model"

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _reply_for(self, request: RecordedRequest) -> Reply:
        if request.method == "GET" and request.path == f"{self.prefix}/models":
            if self.models_reply is not None:
                return self.models_reply
            data = [{"id": m, "object": "model", "owned_by": "fake"} for m in self.models]
            return Reply.json({"object": "list", "data": data})
        if request.method == "POST" and request.path == f"{self.prefix}/chat/completions":
            if self.reject_response_format:
                with contextlib.suppress(ValueError):
                    payload = request.json()
                    if isinstance(payload, dict) and "response_format" in payload:
                        return Reply.json(
                            {
                                "error": {
                                    "message": "response_format json_schema is not supported",
                                    "type": "invalid_request_error",
                                }
                            },
                            status=400,
                        )
            if self.responder is not None:
                made = self.responder(request)
                if made is not None:
                    return made
            with self._lock:
                if self._queue:
                    return self._queue.popleft()
            if self.default is not None:
                return self.default
            return Reply.json({"error": {"message": "fake server: no scripted reply left"}}, status=500)
        return Reply.json({"error": {"message": f"no route for {request.path}"}}, status=404)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 10  # idle keep-alive connections end on their own
            disable_nagle_algorithm = True
            wbufsize = -1  # headers and body leave in one write

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                recorded = RecordedRequest(
                    method=self.command,
                    path=self.path.split("?", 1)[0],
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
                fake._record(recorded)
                reply = fake._reply_for(recorded)
                if reply.delay and fake._stopping.wait(reply.delay):
                    self.close_connection = True
                    return
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.send_response(reply.status)
                    self.send_header("Content-Type", reply.content_type)
                    self.send_header("Content-Length", str(len(reply.body)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(reply.body)
                    self.wfile.flush()

            def do_GET(self) -> None:
                self._serve()

            def do_POST(self) -> None:
                self._serve()

        return Handler
