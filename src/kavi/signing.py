"""The user's signing key, as git knows it (``gpg.format=ssh`` + ``user.signingkey``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kavi.errors import SigningError
from kavi.sshsig import SshSigner, parse_allowed_signers, principals_for_key, signer_from_key

if TYPE_CHECKING:
    from kavi.gitstore.repo import GitRepo

SETUP_HELP = (
    "set up an SSH signing key for git:\n"
    "    ssh-keygen -t ed25519 -f ~/.ssh/id_ed25519        # if you have no key yet\n"
    "    git config --global gpg.format ssh\n"
    "    git config --global user.signingkey ~/.ssh/id_ed25519.pub\n"
    "  then make sure the key is listed in .kavi/allowed_signers on the target branch"
)


def user_signer(repo: GitRepo) -> SshSigner:
    """The configured SSH signer, or a :class:`SigningError` that says how to set one up."""
    fmt = (repo.config_get("gpg.format") or "openpgp").lower()
    key = repo.config_get("user.signingkey")
    if fmt != "ssh":
        raise SigningError(
            "no SSH signing key configured for git" + (" (gpg.format is openpgp)" if key else ""),
            why="Kavi signs promotions, tags, notes and ledger records with your git SSH key",
            remedy=SETUP_HELP,
        )
    if not key:
        raise SigningError(
            "gpg.format is ssh but user.signingkey is not set",
            why="Kavi needs to know which SSH key signs your promotions",
            remedy=SETUP_HELP,
        )
    email = repo.config_get("user.email") or "kavi-user"
    return signer_from_key(key, email)


def user_signer_or_none(repo: GitRepo) -> SshSigner | None:
    try:
        return user_signer(repo)
    except SigningError:
        return None


def with_principal(signer: SshSigner, principal: str) -> SshSigner:
    """``signer`` signing under ``principal`` (the one ``allowed_signers`` gives its key)."""
    from dataclasses import replace

    return replace(signer, principal=principal)


def trusted_principal(signer: SshSigner, allowed_signers: str, *, branch: str) -> str:
    """The principal ``allowed_signers`` gives ``signer``'s key; refuse an untrusted key."""
    principals = principals_for_key(allowed_signers, signer.public_key)
    if not principals and not parse_allowed_signers(allowed_signers):
        raise SigningError(
            f"this forge has no trust root yet: .kavi/allowed_signers on {branch} lists no key",
            why="the first key becomes the forge's trust root; it must sign its own addition",
            remedy="make your signing key the root: git kavi trust add",
        )
    if not principals:
        raise SigningError(
            f"your signing key {signer.fingerprint} is not in .kavi/allowed_signers on {branch}",
            why="only keys trusted by the target branch may promote or sign Kavi records",
            remedy=(
                "ask a trusted signer to add this line to .kavi/allowed_signers and commit it "
                f'signed:\n    {signer.principal} namespaces="git" {signer.public_key}'
            ),
        )
    return principals[0]
