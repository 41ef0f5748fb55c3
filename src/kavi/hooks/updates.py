"""The ref updates git hands a hook on stdin, read exactly as git writes them.

git writes one update per line, its fields separated by single ASCII spaces, and a ref
name may hold any character but a few ASCII ones (``git check-ref-format``) — a no-break
space or a Unicode line separator included. Splitting on "whitespace" (``str.split``,
``str.splitlines``) would judge ``refs/tags/kavi/x/v9<NBSP>`` as another ref, or drop a
line it split into too many fields. So the bytes are split on ``\\n`` and on ``' '`` only,
every id must be a full hex object id and every ref name valid UTF-8; anything else is
:class:`UnreadableUpdate`, and the hook refuses the whole push (standard library only: the
hook's fast lane uses it before loading anything else).
"""

from __future__ import annotations

_HEX = frozenset("0123456789abcdef")


class UnreadableUpdate(ValueError):
    """A line of the hook's input that is not an update git would write."""


def _oid(field: str) -> bool:
    return len(field) in (40, 64) and set(field) <= _HEX


def read_updates(data: bytes, *, fields: int, oids: tuple[int, ...]) -> list[tuple[str, ...]]:
    """Each line of ``data`` as ``fields`` strings; the positions in ``oids`` must be object
    ids, every other field a ref name (never empty, UTF-8, no control character)."""
    out: list[tuple[str, ...]] = []
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for number, raw in enumerate(lines, 1):
        parts = raw.split(b" ")
        if len(parts) != fields:
            raise UnreadableUpdate(f"line {number} has {len(parts)} fields, not {fields}")
        try:
            texts = tuple(part.decode("utf-8") for part in parts)
        except UnicodeDecodeError:
            raise UnreadableUpdate(f"line {number} names a ref that is not UTF-8") from None
        for i, text in enumerate(texts):
            if i in oids and not _oid(text):
                raise UnreadableUpdate(f"line {number}: {text[:80]!r} is not an object id")
            if i not in oids and (not text or any(ord(c) < 0x20 or c == "\x7f" for c in text)):
                raise UnreadableUpdate(f"line {number}: not a ref name")
        out.append(texts)
    return out
