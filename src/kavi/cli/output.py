"""How commands talk: text for people, exactly one JSON object with ``--format json``.

Each command calls :func:`use` with its ``--format`` first; the top-level error
handler then knows whether to print an error as text or as JSON.
"""

from __future__ import annotations

import json
import sys
from enum import Enum
from typing import Any


class Format(str, Enum):
    text = "text"
    json = "json"


_current = [Format.text]


def use(fmt: Format) -> None:
    _current[0] = fmt


def current() -> Format:
    return _current[0]


def is_json() -> bool:
    return _current[0] is Format.json


def emit(payload: dict[str, Any], text: str) -> None:
    """Print the command's result: ``payload`` as JSON, or ``text``."""
    end_live()
    data = json.dumps(payload, indent=2, sort_keys=False, default=str) if is_json() else text.rstrip("\n")
    try:
        sys.stdout.write(data + "\n")
        sys.stdout.flush()
    except OSError as exc:
        from kavi.errors import output_error

        raise output_error(exc) from exc


def progress(message: str) -> None:
    """Progress lines go to stderr, and only in text mode."""
    if not is_json():
        end_live()
        sys.stderr.write(f"» {message}\n")
        sys.stderr.flush()


_live_shown = [False]


def live(message: str) -> None:
    """What a long step is doing right now (a backend's turn, tool, tokens): nothing with
    ``--format json``; on a terminal one line rewritten in place; otherwise a line each."""
    if is_json():
        return
    err = sys.stderr
    if err.isatty():
        import shutil

        width = max(20, shutil.get_terminal_size().columns - 3)
        err.write("\r\x1b[2K  " + message[:width])
        _live_shown[0] = True
    else:
        err.write(f"  {message}\n")
    err.flush()


def end_live() -> None:
    """Close the live line (if one is on screen) so the next output starts on its own."""
    if _live_shown[0]:
        _live_shown[0] = False
        sys.stderr.write("\n")
        sys.stderr.flush()


def table(rows: list[list[str]], headers: list[str]) -> str:
    if not rows:
        return ""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*headers), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*r) for r in rows]
    return "\n".join(line.rstrip() for line in lines)
