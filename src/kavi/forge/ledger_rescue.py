"""A ledger file that is missing, empty, foreign or damaged: telling, setting aside, salvaging.

* :func:`damage` — why the ledger file cannot be trusted (cannot be opened as a Kavi
  ledger, or fails ``PRAGMA integrity_check``), or None;
* :func:`set_aside` — move it (and its ``-wal``/``-shm``) to ``ledger.db.damaged-<time>``,
  never deleting anything, and read what can still be read of its event journal
  (events whose hash chain holds), so a rebuild can keep events never mirrored;
* :func:`check_missing` — the ledger file is gone: if the mark
  (:mod:`kavi.ledger.mark`) says it held events the mirror does not have, refuse to
  start again silently (:class:`~kavi.errors.LedgerMissingError`);
* :func:`move_stray_wal` — a ``ledger.db-wal`` whose database is gone belongs to that
  database; SQLite would replay it into a new file of the same name.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from kavi.errors import LedgerDamagedError, LedgerMissingError
from kavi.forge.context import Forge
from kavi.ledger.models import Event

SIDE_FILES = ("-wal", "-shm")


def damage(forge: Forge) -> str | None:
    from kavi.ledger.store import Ledger

    try:
        ledger = Ledger.open(forge.location.ledger_path, mark=forge.location.ledger_mark)
    except LedgerDamagedError as exc:
        return exc.message
    try:
        problems = ledger.integrity()
    finally:
        ledger.close()
    return "SQLite integrity_check failed: " + "; ".join(problems[:3]) if problems else None


@dataclass
class SetAside:
    path: Path
    salvaged: list[Event] = field(default_factory=list)


def _stamp() -> str:
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"-{os.getpid()}"


def set_aside(path: Path) -> SetAside:
    aside = path.with_name(f"{path.name}.damaged-{_stamp()}")
    os.replace(path, aside)
    for suffix in SIDE_FILES:
        side = Path(f"{path}{suffix}")
        if side.exists():
            os.replace(side, Path(f"{aside}{suffix}"))
    return SetAside(aside, salvage(aside))


def salvage(path: Path) -> list[Event]:
    """The readable prefix of a damaged ledger's event journal (hashes and chain checked).

    Works on a private copy (with its write-ahead log, so committed transactions not yet
    folded back are seen); stops at the first row that cannot be read or does not chain.
    """
    from kavi.hashing import event_hash
    from kavi.ledger.store import event_from_row

    out: list[Event] = []
    work = Path(tempfile.mkdtemp(prefix="kavi-salvage-"))
    try:
        copy = work / "ledger.db"
        shutil.copyfile(path, copy)
        wal = Path(f"{path}-wal")
        if wal.exists():
            shutil.copyfile(wal, Path(f"{copy}-wal"))
        conn = sqlite3.connect(copy, isolation_level=None)
        conn.row_factory = sqlite3.Row
        try:
            prev = ""
            for row in conn.execute("SELECT * FROM events ORDER BY seq"):
                try:
                    event = event_from_row(row)
                except (ValueError, TypeError, KeyError):
                    break
                if event.seq != len(out) + 1 or event.prev_hash != prev:
                    break
                if event_hash(event.model_dump(mode="json")) != event.hash:
                    break
                out.append(event)
                prev = event.hash
        except sqlite3.DatabaseError:
            pass
        finally:
            conn.close()
    except (OSError, sqlite3.DatabaseError):
        pass
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def move_stray_wal(path: Path) -> list[Path]:
    """Set aside the ``-wal``/``-shm`` of a ledger file that no longer exists."""
    if path.exists():
        return []
    moved = []
    for suffix in SIDE_FILES:
        side = Path(f"{path}{suffix}")
        if side.exists():
            target = Path(f"{path}{suffix}.stray-{_stamp()}")
            os.replace(side, target)
            moved.append(target)
    return moved


@dataclass(frozen=True)
class Missing:
    marked: int  # the last event the ledger had (from its mark)
    mirrored: int  # the last event refs/kavi/ledger holds
    covered: bool  # the mirror holds exactly the marked event


def missing_state(forge: Forge) -> Missing | None:
    """For a ledger file that is gone: what it had, and whether the mirror has all of it.
    None when there is no mark (a fresh clone, or a forge whose ledger never had events)."""
    from kavi.gitstore.mirror import LEDGER_REF, parse_event
    from kavi.ledger.mark import read_mark

    mark = read_mark(forge.location.ledger_mark)
    if mark is None:
        return None
    repo = forge.repo
    tip = repo.ref_target(LEDGER_REF)
    mirrored = 0
    covered = False
    current = tip
    while current is not None:
        info = repo.commit(current)
        event = parse_event(info.message)
        if event is None:
            break
        mirrored = max(mirrored, event.seq)
        if event.seq <= mark.seq:
            covered = event.seq == mark.seq and event.hash == mark.hash
            break
        current = info.parents[0] if info.parents else None
    return Missing(mark.seq, mirrored, covered)


def check_missing(forge: Forge, *, accept_loss: bool) -> None:
    """Refuse to rebuild a deleted ledger that held events the mirror never got."""
    state = missing_state(forge)
    if state is None or state.covered or accept_loss:
        return
    path = forge.location.ledger_path
    lost = (
        f"events #{state.mirrored + 1}…#{state.marked}"
        if state.marked > state.mirrored
        else f"event #{state.marked} as this clone recorded it"
    )
    raise LedgerMissingError(
        f"the ledger {path} is gone, and {lost} were never mirrored",
        why=f"the file was deleted (its mark says it held {state.marked} events; refs/kavi/ledger "
        f"holds {state.mirrored}); starting again from the mirror would lose the rest",
        remedy=f"restore {path} from a backup (with its -wal file, if any) and run the command again; "
        "or rebuild it from the mirror and accept the loss: `git kavi ledger import --accept-loss`",
        details={"marked": state.marked, "mirrored": state.mirrored},
    )
