"""What fake agents report back to the test, over loopback TCP.

A confined agent sees an empty private ``/tmp``, a read-only filesystem and a hidden
home: it cannot leave proof of what it managed (a stolen value, a reached socket, a
daemon still alive) in any file the test can read. The network is the one thing it
shares with the test, so a fake agent calls ``report(key, value)`` and the test reads
``Evidence.get(key)``.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any


class Evidence:
    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.2)
        self.port: int = self._server.getsockname()[1]
        self._items: list[tuple[str, Any]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except OSError:
                continue
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        """Lines of ``{"key": k, "value": v}`` (a report) or ``{"get": k}`` (answered with
        the latest value, so two agents in two jails can wait for each other)."""
        with conn, conn.makefile("rw", encoding="utf-8") as lines:
            for line in lines:
                try:
                    item = json.loads(line)
                except ValueError:
                    continue
                if "get" in item:
                    lines.write(json.dumps(self.get(str(item["get"]))) + "\n")
                    lines.flush()
                    continue
                with self._lock:
                    self._items.append((str(item.get("key")), item.get("value")))

    def all(self, key: str) -> list[Any]:
        with self._lock:
            return [v for k, v in self._items if k == key]

    def get(self, key: str, default: Any = None) -> Any:
        found = self.all(key)
        return found[-1] if found else default

    def wait(self, key: str, limit: float) -> Any:
        """The value of ``key`` once reported, or None after ``limit`` seconds."""
        end = time.monotonic() + limit
        while time.monotonic() < end:
            value = self.get(key)
            if value is not None:
                return value
            time.sleep(0.05)
        return self.get(key)

    def close(self) -> None:
        self._stop.set()
        self._server.close()
        self._thread.join(timeout=2)
