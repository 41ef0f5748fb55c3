"""The ledger and its mirror ``refs/kavi/ledger``: how they stand, bringing them together, mirroring.

Mirroring moves the ref first (one compare-and-swap) and records the commits in the
ledger after (one transaction), so a crash can leave the ref *ahead* of what the
ledger recorded — but never unrecognisably: each of those commits carries one of the
ledger's own events, byte for byte (same hash). :func:`mirror_state` says how the two
stand, in either direction:

* ``adoptable`` — the ref carries this ledger's own events the ledger has not recorded
  as mirrored (a crash between the two steps): recorded after checking signatures;
* ``behind`` — the ledger recorded commits the ref no longer points at (the ref was
  reset or lost, the commits still exist): the ref fast-forwards to them;
* ``lost`` — the ledger recorded commits that no longer exist: they are forgotten and
  their events mirrored again;
* ``foreign`` — the ref carries events this ledger does not have (another clone, or a
  ledger restored from a backup): ``git kavi ledger import`` takes them, checking
  every signature;
* ``problem`` — the two disagree about an event (a divergence): nothing is repaired
  automatically.

:func:`reconcile` repairs the first three (no signing key needed); :func:`mirror_pending`
reconciles, then mirrors every event not yet mirrored.

What an event carries is decided when it is recorded (:mod:`kavi.ledger.privacy`: private
fields are sealed, only their digests are in the event); which artifacts' bytes enter the
mirror's tree is decided here, by the policy's ``mirror.artifacts`` at the governing commit.
Mirror commits are judged by the same record rule as the server hook's
(:func:`kavi.forge.trust.record_judge`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kavi.errors import TrustError
from kavi.forge.context import Forge
from kavi.ledger.models import Artifact, Event
from kavi.ledger.reducer import EventKind
from kavi.sshsig import SshSigner


@dataclass
class MirrorState:
    tip: str | None  # refs/kavi/ledger
    known_seq: int  # the last event the ledger recorded as mirrored
    known: str | None  # and its commit
    unmirrored: int
    adoptable: list[tuple[int, str]] = field(default_factory=list)
    foreign: int = 0
    behind: bool = False
    lost_after: int | None = None  # forget the ledger's mirror commits after this seq
    problem: str = ""

    @property
    def in_sync(self) -> bool:
        return not (self.adoptable or self.foreign or self.behind or self.problem) and self.lost_after is None


def mirror_state(forge: Forge) -> MirrorState:
    from kavi.gitstore.mirror import LEDGER_REF

    ledger = forge.ledger
    repo = forge.repo
    mirrors = ledger.mirror_commits()
    known_seq = max(mirrors, default=0)
    known = mirrors.get(known_seq)
    tip = repo.ref_target(LEDGER_REF)
    state = MirrorState(tip, known_seq, known, len(ledger.unmirrored_events()))
    if tip == known:
        return state
    if known is not None and not repo.has_object(known):
        _lost(forge, state, mirrors)
        return state
    if tip is None:
        state.behind = True
        return state
    if known is None or repo.is_ancestor(known, tip):
        _ahead(forge, state)
    elif repo.is_ancestor(tip, known):
        state.behind = True
    else:
        state.problem = (
            f"{LEDGER_REF} ({tip[:12]}) and the ledger's last mirrored event #{known_seq} "
            f"({known[:12]}) are on different histories"
        )
    return state


def _ahead(forge: Forge, state: MirrorState) -> None:
    """The ref has commits after the ledger's last recorded one: ours (adopt) or foreign."""
    from kavi.gitstore.mirror import LEDGER_REF, walk_chain

    ledger = forge.ledger
    ours = {e.seq: e for e in ledger.events(after_seq=state.known_seq)}
    for entry in walk_chain(forge.repo, state.tip or "", state.known):
        ev = entry.event
        if ev is None:
            state.problem = f"{LEDGER_REF} commit {entry.commit[:12]} carries no readable ledger event"
            return
        mine = ours.get(ev.seq)
        if mine is None:
            state.foreign += 1
        elif state.foreign:
            state.problem = f"{LEDGER_REF} is not contiguous at event #{ev.seq}"
            return
        elif mine.hash == ev.hash:
            state.adoptable.append((ev.seq, entry.commit))
        else:
            state.problem = (
                f"the ledger and {LEDGER_REF} diverged at event #{ev.seq}: commit {entry.commit[:12]} "
                "holds another event than this ledger"
            )
            return


def _lost(forge: Forge, state: MirrorState, mirrors: dict[int, str]) -> None:
    """The ledger recorded mirror commits that no longer exist: keep what the ref still has."""
    repo = forge.repo
    chain = set(repo.first_parent_chain(state.tip, None)) if state.tip else set()
    keep = max((seq for seq, commit in mirrors.items() if commit in chain), default=0)
    if state.tip is not None and mirrors.get(keep) != state.tip:
        state.problem = (
            f"the ledger's mirror commits after event #{keep} are gone and refs/kavi/ledger "
            f"({state.tip[:12]}) holds other commits"
        )
        return
    state.lost_after = keep


def reconcile(forge: Forge, state: MirrorState | None = None) -> MirrorState:
    """Bring ledger and ref together where that is safe (see the module docstring).

    Raises :class:`TrustError` for a divergence, foreign events or a badly signed
    commit; returns the state it started from.
    """
    from kavi.forge.trust import record_judge
    from kavi.gitstore.mirror import LEDGER_REF, walk_chain
    from kavi.gitstore.repo import ZERO_OID

    ledger = forge.ledger
    repo = forge.repo
    ms = state or mirror_state(forge)
    if ms.problem:
        raise TrustError(
            ms.problem,
            why="the ledger and its mirror disagree about an event; Kavi repairs neither side",
            remedy="run `git kavi doctor` to see both sides; restore the side you trust "
            "(a backup of .git/kavi/ledger.db, or the mirror from a trusted remote)",
        )
    if ms.foreign:
        raise TrustError(
            f"{LEDGER_REF} holds {ms.foreign} event(s) this ledger does not have",
            why="another clone (or a newer copy of this ledger) published them",
            remedy="take them first: `git kavi ledger import`",
        )
    if ms.adoptable:
        judge = record_judge(forge)
        by_commit = {e.commit: e for e in walk_chain(repo, ms.tip or "", ms.known)}
        judge.prefetch({commit: by_commit[commit].message for _seq, commit in ms.adoptable})
        for seq, commit in ms.adoptable:
            found = judge.problem(commit, by_commit[commit].message)
            if found is not None:
                raise TrustError(
                    f"{LEDGER_REF} commit {commit[:12]} (event #{seq}): {found[1]}",
                    why="it carries this ledger's event, but a fresh clone would refuse its signature",
                    remedy=f"investigate with `git log -1 {commit}`; move {LEDGER_REF} back to the last "
                    "commit you trust and run `git kavi ledger sync` with a trusted key",
                )
        with ledger.transaction(forge.actor):
            for seq, commit in ms.adoptable:
                ledger.set_mirror_commit(seq, commit)
    if ms.behind and ms.known is not None:
        repo.set_ref(LEDGER_REF, ms.known, message="kavi: restore the ledger mirror", old=ms.tip or ZERO_OID)
    if ms.lost_after is not None:
        with ledger.transaction(forge.actor):
            ledger.forget_mirror_commits(after_seq=ms.lost_after)
    return ms


def mirror_pending(forge: Forge, signer: SshSigner) -> int:
    """Reconcile, then mirror every event not yet mirrored; return how many were mirrored."""
    from kavi.artifacts.vault import read_verified
    from kavi.gitstore.mirror import mirror_events

    reconcile(forge)
    ledger = forge.ledger
    pending = ledger.unmirrored_events()
    if not pending:
        return 0
    repo = forge.repo
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

    def record(made: list[tuple[Event, str]]) -> None:
        with ledger.transaction(forge.actor):
            for event, commit in made:
                ledger.set_mirror_commit(event.seq, commit)

    mirror_events(
        repo,
        pending,
        artifact_bytes=artifact_bytes,
        signer=signer,
        forge_id=forge_id,
        governance=governance,
        on_commits=record,
    )
    return len(pending)
