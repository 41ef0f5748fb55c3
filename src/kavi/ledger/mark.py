"""The ledger's mark: how a deleted ledger is told apart from one that never existed.

``<git-common-dir>/kavi-ledger.mark`` holds the sequence number and hash of the ledger's
last event. It is rewritten inside every write transaction that appends events, just
before the commit (so it is never behind the ledger; after a crash it may be one step
ahead, which errs on the side of caution). A fresh clone has no mark: its ledger is
rebuilt from ``refs/kavi/ledger``. A clone *with* a mark but no ledger file lost its
ledger: if the mirror holds the marked event, rebuilding loses nothing; otherwise the
events after the mirror's end are gone with the file, and Kavi says so instead of
quietly starting again (:mod:`kavi.ledger.autoimport`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Mark:
    seq: int
    hash: str


def read_mark(path: Path) -> Mark | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Mark(int(data["seq"]), str(data["hash"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_mark(path: Path, seq: int, event_hash: str) -> None:
    """Replace the mark (temporary file + rename; no fsync: it guards against deletion,
    not power loss, and sits on every ledger write)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps({"seq": seq, "hash": event_hash}) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
