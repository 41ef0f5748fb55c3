"""What every signed record Kavi writes carries: the forge, the governance, the signer.

Ledger-mirror commits, notes commits and tags name this forge (``Kavi-Forge``: its root
commit); record commits also name the governing commit whose ``allowed_signers`` judges
them and the principal that file gives the signing key (never ``user.email``). The hook
and every clone check all three (:mod:`kavi.gitstore.record_rules`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kavi.forge.context import Forge
    from kavi.sshsig import SshSigner


def record_signer(forge: Forge, signer: SshSigner) -> tuple[str, str, SshSigner]:
    """(forge id, governing commit, ``signer`` under the principal ``allowed_signers`` gives
    its key at that commit). Refuses an untrusted key or a forge without a root."""
    from kavi.forge.trust import forge_identity, trust_state
    from kavi.signing import trusted_principal, with_principal

    forge_id = forge_identity(forge)
    state = trust_state(forge)
    governance = state.governing or forge_id
    principal = trusted_principal(signer, forge.allowed_signers(governance), branch=state.branch)
    return forge_id, governance, with_principal(signer, principal)


def record_block(forge: Forge, signer: SshSigner) -> str:
    """The ``Kavi-Forge`` / ``Kavi-Governance`` / ``Kavi-Signer`` trailers of a record commit."""
    from kavi.gitstore.record_rules import record_trailers

    forge_id, governance, signed_as = record_signer(forge, signer)
    return record_trailers(forge_id, governance, signed_as.principal)
