"""Input that comes from outside (``--json``, ``--input-file``, stdin, ``--io-schema-json``): bounded.

* size: at most :data:`MAX_INPUT_BYTES`; a file or stream is read in chunks and given up
  on as soon as it is longer (``/dev/zero`` or an endless pipe cannot exhaust memory);
* kind: a directory, or a FIFO nobody writes to, is refused at once (opened without
  blocking); a terminal or a pipe is read as a stream;
* encoding: strict UTF-8 (a byte-order mark is allowed); no lone surrogates — neither
  from undecodable arguments nor from ``"\\ud800"`` escapes in the JSON text;
* structure: nesting at most :data:`MAX_DEPTH` deep; numbers finite and of bounded
  length; JSON only (no ``NaN``/``Infinity``).

Every refusal is a :class:`~kavi.errors.ValidationError` (exit 2) naming the source.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any, BinaryIO

from kavi.errors import ValidationError

MAX_INPUT_BYTES = 1 << 20  # 1 MiB
MAX_DEPTH = 32
CHUNK = 64 * 1024


def read_bounded_stream(stream: BinaryIO, *, source: str, limit: int = MAX_INPUT_BYTES) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = stream.read(min(CHUNK, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise _too_big(source, limit)
    return b"".join(chunks)


def read_input_file(path: Path, *, limit: int = MAX_INPUT_BYTES) -> bytes:
    """The bytes of ``--input-file`` (never blocks on a FIFO without writer, never reads
    more than ``limit`` + 1 bytes)."""
    source = f"--input-file {path}"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ValidationError(
            f"cannot read {source}: {exc.strerror}",
            remedy="pass a readable file with the input JSON, or '-' for stdin",
        ) from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise ValidationError(f"{source} is a directory", remedy="pass a file with the input JSON")
        if stat.S_ISREG(st.st_mode) and st.st_size > limit:
            raise _too_big(source, limit)
        if stat.S_ISFIFO(st.st_mode):
            os.set_blocking(fd, True)  # a writer may still come; without one, read() sees EOF
        with os.fdopen(fd, "rb", closefd=False) as fh:
            try:
                return read_bounded_stream(fh, source=source, limit=limit)
            except BlockingIOError:
                raise ValidationError(f"{source} has nothing to read yet (a device or socket)") from None
            except OSError as exc:
                raise ValidationError(f"cannot read {source}: {exc.strerror}") from None
    finally:
        os.close(fd)


def _too_big(source: str, limit: int) -> ValidationError:
    return ValidationError(
        f"{source} is larger than {limit // 1024} KiB",
        why="Kavi records every run's input in the ledger and the vault; it bounds what it accepts",
        remedy="pass a smaller input (large data belongs in files the skill reads)",
    )


def decode_utf8(data: bytes, *, source: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValidationError(
            f"{source} is not valid UTF-8 (byte {exc.start}: 0x{data[exc.start : exc.start + 1].hex()})",
            why="JSON input must be UTF-8 text",
            remedy="convert it first, e.g. `iconv -t UTF-8`",
        ) from None


def parse_json(text: str, *, source: str, max_depth: int = MAX_DEPTH) -> Any:
    """Parse JSON text within the bounds above."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_INPUT_BYTES:
        raise _too_big(source, MAX_INPUT_BYTES)
    _no_surrogates(text, source=source, what="the text")

    def bad_constant(name: str) -> Any:
        raise ValidationError(f"{source} contains {name}", why="only finite numbers are JSON")

    try:
        data = json.loads(text, parse_constant=bad_constant)
    except json.JSONDecodeError as exc:
        raise ValidationError(
            f"{source} is not valid JSON",
            why=f"{exc.msg} at line {exc.lineno} column {exc.colno}",
            remedy='pass a JSON object, e.g. --json \'{"title": "Hello"}\'',
        ) from None
    except RecursionError:
        raise _too_deep(source, max_depth) from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise ValidationError(f"{source} holds a value Kavi cannot take: {exc}") from None
    _check_value(data, source=source, max_depth=max_depth)
    return data


def _too_deep(source: str, max_depth: int) -> ValidationError:
    return ValidationError(
        f"{source} is nested more than {max_depth} levels deep",
        why="deeply nested input is refused before anything processes it",
        remedy="flatten the input",
    )


def _no_surrogates(text: str, *, source: str, what: str) -> None:
    for i, ch in enumerate(text):
        if "\ud800" <= ch <= "\udfff":
            raise ValidationError(
                f"{source}: {what} holds a lone surrogate (U+{ord(ch):04X}) at character {i}",
                why="that is not a Unicode character: it cannot be stored, signed or printed as UTF-8",
                remedy="pass valid Unicode text (escape pairs such as \\ud83d\\ude00 are fine)",
            )


def _check_value(data: Any, *, source: str, max_depth: int) -> None:
    """Depth and strings of a parsed value, without recursion."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > max_depth:
                raise _too_deep(source, max_depth)
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(key, str):
                    _no_surrogates(
                        key, source=source, what=f"the key {key.encode('utf-8', 'replace')[:40]!r}"
                    )
                stack.append((item, depth + 1))
        elif isinstance(value, str):
            _no_surrogates(value, source=source, what="a string")
