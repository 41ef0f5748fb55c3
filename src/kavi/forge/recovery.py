"""Finishing what an interrupted command left: the key it may use, and the journal.

Used by ``git kavi doctor --repair`` and, before they start, by ``promote-skill``,
``revoke-skill`` and ``ledger sync`` (all under the forge lock). Anything that must
be signed is signed only with a key the committed ``.kavi/allowed_signers`` on the
target branch trusts; without one, the step that needs it is left and the reason
said (it never signs with another key).
"""

from __future__ import annotations

from kavi.errors import StateError
from kavi.forge import journal
from kavi.forge.context import Forge
from kavi.sshsig import SshSigner


def trusted_signer(forge: Forge) -> tuple[SshSigner | None, str]:
    """The user's signing key (under the principal the forge gives it) if the target
    branch trusts it, else None and why not — the same rule as every signing command
    (:func:`kavi.signing.trusted_principal`), as a reason instead of an error."""
    from kavi.errors import SigningError
    from kavi.signing import trusted_principal, user_signer_or_none, with_principal

    signer = user_signer_or_none(forge.repo)
    branch = forge.committed_config.target_branch
    if signer is None:
        return None, (
            "no SSH signing key is configured; set one listed in .kavi/allowed_signers "
            "(`git config user.signingkey ~/.ssh/<key>.pub`, gpg.format ssh)"
        )
    try:
        principal = trusted_principal(signer, forge.allowed_signers(), branch=branch)
    except SigningError as exc:
        return None, f"{exc.message} — Kavi never signs with a key the forge does not trust"
    return with_principal(signer, principal), ""


def finish_interrupted(
    forge: Forge, signer: SshSigner | None = None
) -> tuple[journal.Journal, journal.Outcome] | None:
    """Finish (or roll back) an interrupted journal; None if there is none.

    ``signer`` is a key already known to be trusted (the running command's); without one,
    a trusted key is looked up only if a step needs it.
    """
    try:
        found = journal.load(forge)
    except journal.UnreadableJournal as exc:
        raise StateError(
            f"the journal {journal.journal_path(forge)} cannot be read: {exc}",
            remedy="run `git kavi doctor --repair` (it sets the file aside and checks every ref and "
            "the ledger against each other)",
        ) from None
    if found is None:
        return None

    def key() -> SshSigner | None:
        return signer if signer is not None else trusted_signer(forge)[0]

    outcome = journal.recover(forge, found, key)
    if outcome.action == "blocked":
        raise StateError(
            f"an interrupted {found.describe()} cannot be finished: {outcome.blocked}",
            why="something else changed the forge since it was interrupted",
            remedy="run `git kavi doctor` to see the details",
        )
    return found, outcome


def describe(found: journal.Journal, outcome: journal.Outcome) -> str:
    text = f"{outcome.action} an interrupted {found.op} of {found.subject}"
    if outcome.applied:
        text += f" (steps: {', '.join(outcome.applied)})"
    return text + "".join(f"; {n}" for n in outcome.notes)
