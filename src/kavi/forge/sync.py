"""Mirroring the ledger into ``refs/kavi/ledger`` (signed), shared by promote, revoke and ``ledger sync``.

What an event carries is decided when it is recorded (:mod:`kavi.ledger.privacy`: private
fields are sealed, only their digests are in the event); which artifacts' bytes enter the
mirror's tree is decided here, by the policy's ``mirror.artifacts`` at the governing commit.
"""

from __future__ import annotations

from kavi.errors import TrustError
from kavi.forge.context import Forge
from kavi.ledger.models import Artifact, Event
from kavi.ledger.reducer import EventKind
from kavi.sshsig import SshSigner


def mirror_pending(forge: Forge, signer: SshSigner) -> int:
    """Mirror every event not yet mirrored; return how many were mirrored."""
    from kavi.artifacts.vault import read_verified
    from kavi.gitstore.mirror import LEDGER_REF, mirror_events, walk_chain

    ledger = forge.ledger
    pending = ledger.unmirrored_events()
    if not pending:
        return 0
    repo = forge.repo
    tip = repo.ref_target(LEDGER_REF)
    last_mirrored = max(ledger.mirror_commits(), default=0)
    if tip is not None and last_mirrored:
        known = ledger.mirror_commits()[last_mirrored]
        if tip != known:
            raise TrustError(
                f"{LEDGER_REF} is at {tip[:12]}, but this ledger last mirrored event "
                f"#{last_mirrored} as {known[:12]}",
                why="the mirror ref was moved or rewritten outside Kavi (or by another clone)",
                remedy="run `git kavi doctor` to see the difference; fetch and `git kavi ledger import` "
                "if another clone extended it",
            )
    elif tip is not None and not last_mirrored:
        entries = walk_chain(repo, tip)
        raise TrustError(
            f"{LEDGER_REF} already holds {len(entries)} event(s) this ledger never mirrored",
            remedy="import it first: `git kavi ledger import`",
        )
    from kavi.forge.identity import record_signer
    from kavi.ledger.privacy import artifact_travels

    forge_id, governance, signer = record_signer(forge, signer)
    travelling = list(forge.policy.mirror.artifacts)

    def artifact_bytes(event: Event) -> tuple[str, bytes] | None:
        if event.kind != EventKind.ARTIFACT_RECORDED:
            return None
        artifact = Artifact.model_validate(event.payload)
        if not artifact_travels(artifact.kind.value, travelling):
            return None  # its record (digests) travels in the event; the bytes stay here
        data = read_verified(forge.workdir, artifact)
        if data is None:
            raise TrustError(
                f"artifact {artifact.path} is missing or does not match its recorded BLAKE3",
                why="the vault file was edited or deleted after it was recorded",
                remedy="restore it (e.g. from another clone's refs/kavi/ledger) before mirroring",
            )
        return artifact.blake3, data

    def on_commit(event: Event, commit: str) -> None:
        with ledger.transaction(forge.actor):
            ledger.set_mirror_commit(event.seq, commit)

    mirror_events(
        repo,
        pending,
        artifact_bytes=artifact_bytes,
        signer=signer,
        forge_id=forge_id,
        governance=governance,
        on_commit=on_commit,
    )
    return len(pending)
