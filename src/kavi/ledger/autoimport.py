"""Make sure a forge has a ledger before a command uses it.

On a fresh clone the ledger does not exist yet: if ``refs/kavi/ledger`` is present it
is rebuilt from there (every signature checked, see :mod:`kavi.forge.importer`);
otherwise an empty ledger is created.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kavi.forge.context import Forge


def ensure_ledger(forge: Forge) -> None:
    if forge.location.ledger_path.exists():
        return
    from kavi.gitstore.mirror import LEDGER_REF

    if forge.repo.ref_target(LEDGER_REF) is not None:
        from kavi.forge.importer import import_ledger

        import_ledger(forge)
        return
    from kavi.ledger.store import Ledger

    Ledger.open(forge.location.ledger_path, create=True).close()
