"""Make sure a forge has a ledger before a command uses it.

On a fresh clone the ledger does not exist yet: if ``refs/kavi/ledger`` is present it
is rebuilt from there (every signature checked, see :mod:`kavi.forge.importer`);
otherwise an empty ledger is created. A ledger that existed and was deleted (its mark
remains, :mod:`kavi.ledger.mark`) is rebuilt only if the mirror holds all its events;
otherwise the command stops and says which events would be lost. On a read-only file
system the ledger is rebuilt into a private temporary file for this command only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kavi.forge.context import Forge


def ensure_ledger(forge: Forge) -> None:
    path = forge.location.ledger_path
    if path.exists():
        return
    from kavi.ledger.store import writable

    existing = path.parent if path.parent.exists() else forge.location.common_dir
    if not writable(existing):
        _private_copy(forge)
        return
    from kavi.forge.lock import forge_lock

    with forge_lock(forge.kavi_dir, "ledger import (automatic, first use)", wait=60):
        if path.exists():
            return
        from kavi.gitstore.mirror import LEDGER_REF
        from kavi.ledger.mark import read_mark

        if forge.repo.ref_target(LEDGER_REF) is not None or read_mark(forge.location.ledger_mark) is not None:
            from kavi.forge.importer import import_ledger

            import_ledger(forge)  # refuses if the mark shows events the mirror lacks
            return
        from kavi.forge.ledger_rescue import move_stray_wal
        from kavi.ledger.store import Ledger

        move_stray_wal(path)
        Ledger.open(path, create=True, mark=forge.location.ledger_mark).close()


def _private_copy(forge: Forge) -> None:
    """A read-only clone without a ledger: rebuild it from the mirror into a temporary file."""
    import tempfile
    from pathlib import Path

    from kavi.errors import ReadOnlyError
    from kavi.forge.importer import import_ledger
    from kavi.gitstore.mirror import LEDGER_REF
    from kavi.ledger.store import Ledger

    if forge.repo.ref_target(LEDGER_REF) is None:
        raise ReadOnlyError(
            f"this clone has no ledger and no refs/kavi/ledger to read one from, and {forge.kavi_dir} "
            "is on a read-only file system",
            remedy="fetch refs/kavi/ledger, or run `git kavi init` in a writable clone",
        )
    target = Path(tempfile.mkdtemp(prefix="kavi-ledger-ro-")) / "ledger.db"
    import_ledger(forge, into=target)
    forge.use_ledger(Ledger.open(target))
