"""The one journal of a multi-step forge change (promote, revoke, ledger sync, republish).

A change that moves several refs, the ledger and the checkout is written down *before*
its first visible step, as ``<git-common-dir>/kavi/journal.json`` (written to a
temporary file, fsync'd, renamed, directory fsync'd), and removed after its last step.
The forge lock (:mod:`kavi.forge.lock`) guarantees one journal at a time.

A journal is a list of steps, applied in order:

* :class:`RefStep` — a compare-and-swap of one ref from ``old`` (the value read before;
  ``None``: absent) to ``new``, an object prepared and signed *before* the journal was
  written (merge or revocation commit, tag);
* :class:`LedgerStep` — one SQLite transaction writing a record (promotion,
  revocation) and its events; recognised by the record's id;
* :class:`NotesStep` — the signed notes commit prepared beforehand (re-made on top of
  the notes ref, with a trusted key, if something else moved it meanwhile);
* :class:`MirrorStep` — every ledger event not yet on ``refs/kavi/ledger`` signed onto it
  (one compare-and-swap, then one transaction recording the commits; a crash in between
  is recognised by the events' hashes and adopted, see :mod:`kavi.forge.sync`);
* :class:`CheckoutStep` — the working tree and index moved from the old to the new
  commit, last, path by path (:mod:`kavi.gitstore.checkout`).

Whether a step is done is read from the world (refs, ledger, files), never from the
journal alone, so every prefix of the sequence is recognisable: :func:`states` names
each step ``done``, ``todo``, ``partial`` or ``blocked``. :func:`recover` (``git kavi
doctor --repair``, and promote/revoke/sync before they start) rolls back a journal
none of whose steps happened — nothing visible changed, the journal is simply removed
— and otherwise finishes it. Finishing needs a signing key only for a mirror step or
re-made notes, and only a key the committed ``.kavi/allowed_signers`` trusts: without
one, the mirror is left for ``git kavi ledger sync`` and the journal still finishes.

New kinds of change (e.g. republishing a promotion onto a new remote tip) build a
:class:`Journal` from these steps (a new ledger record kind registers in
:data:`kavi.forge.ledger_steps.RECORDERS`) and call :func:`run`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kavi.clock import now_iso
from kavi.errors import StateError
from kavi.forge.context import Forge
from kavi.sshsig import SshSigner

JOURNAL_FILE = "journal.json"
FAILPOINT_ENV = "KAVI_FAILPOINT"  # testing only: "after-<label>" kills the process there

Op = Literal["promote", "revoke", "sync", "republish"]


def failpoint(name: str) -> None:
    """Simulate a crash (``kill -9``) at a named point; used by the crash-safety tests."""
    if os.environ.get(FAILPOINT_ENV) == name:
        os._exit(137)


class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str


class RefStep(_Step):
    kind: Literal["ref"] = "ref"
    ref: str
    old: str | None
    new: str
    branch: bool = False  # a commit on top of ``new`` still means done


class LedgerStep(_Step):
    kind: Literal["ledger"] = "ledger"
    record: str  # a key of kavi.forge.ledger_steps.RECORDERS
    payload: dict[str, Any]


class NotesStep(_Step):
    kind: Literal["notes"] = "notes"
    ref: str
    old: str | None
    new: str
    notes: dict[str, str]  # annotated object → note text
    message: str  # without the record trailers (added for whichever trusted key signs)


class MirrorStep(_Step):
    kind: Literal["mirror"] = "mirror"
    old: str | None  # refs/kavi/ledger when the journal was written


class CheckoutStep(_Step):
    kind: Literal["checkout"] = "checkout"
    branch: str
    old: str
    new: str


Step = Annotated[RefStep | LedgerStep | NotesStep | MirrorStep | CheckoutStep, Field(discriminator="kind")]


class Journal(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    version: Literal[1] = 1
    id: str
    op: Op
    subject: str
    command: str
    pid: int
    started_at: str
    signer: str  # principal that approved and signed
    signer_key: str  # its key's fingerprint
    steps: list[Step]

    @classmethod
    def new(cls, *, op: Op, subject: str, signer: SshSigner, principal: str, steps: list[Any]) -> Journal:
        import sys

        return cls(
            id=str(uuid.uuid4()),
            op=op,
            subject=subject,
            command=" ".join(sys.argv[1:])[:300] or op,
            pid=os.getpid(),
            started_at=now_iso(),
            signer=principal,
            signer_key=signer.fingerprint,
            steps=steps,
        )

    def describe(self) -> str:
        return f"{self.op} of {self.subject} (journal {self.id[:8]}, started {self.started_at[:19]})"


# -- the file --------------------------------------------------------------------------


def journal_path(forge: Forge) -> Path:
    return forge.kavi_dir / JOURNAL_FILE


class UnreadableJournal(Exception):
    """The journal file exists but is not a journal this Kavi can read."""


def load(forge: Forge) -> Journal | None:
    path = journal_path(forge)
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        return Journal.model_validate_json(text)
    except ValueError as exc:
        raise UnreadableJournal(str(exc).splitlines()[0]) from None


def write(forge: Forge, journal: Journal) -> None:
    from kavi.artifacts.vault import atomic_write, fsync_dir

    path = journal_path(forge)
    atomic_write(path, journal.model_dump_json(indent=2).encode())
    fsync_dir(path.parent)


def clear(forge: Forge) -> None:
    journal_path(forge).unlink(missing_ok=True)


def set_aside(forge: Forge) -> Path:
    """Move an unreadable journal out of the way (kept for inspection, never deleted)."""
    path = journal_path(forge)
    aside = path.with_name(f"{path.name}.unreadable-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    os.replace(path, aside)
    return aside


# -- the state of each step, read from the world --------------------------------------------


@dataclass(frozen=True)
class StepState:
    label: str
    status: Literal["done", "todo", "partial", "blocked"]
    detail: str = ""
    visible: bool = True  # whether this step changed anything yet


def states(forge: Forge, journal: Journal) -> list[StepState]:
    return [_state(forge, step) for step in journal.steps]


def _state(forge: Forge, step: Any) -> StepState:
    repo = forge.repo
    label = step.label
    if isinstance(step, RefStep):
        current = repo.ref_target(step.ref)
        if current == step.new or (
            step.branch
            and current is not None
            and repo.has_object(step.new)
            and repo.is_ancestor(step.new, current)
        ):
            return StepState(label, "done")
        if current == step.old:
            return StepState(label, "todo", visible=False)
        return StepState(
            label,
            "blocked",
            f"{step.ref} is at {(current or 'nothing')[:12]}, neither {(step.old or 'nothing')[:12]} "
            f"(before) nor {step.new[:12]} (after): something else moved it",
        )
    if isinstance(step, LedgerStep):
        from kavi.forge.ledger_steps import RECORDERS

        if step.record not in RECORDERS:
            return StepState(label, "blocked", f"unknown ledger record kind {step.record!r}")
        done, _ = RECORDERS[step.record]
        if done(forge, step.payload):
            return StepState(label, "done")
        return StepState(label, "todo", visible=False)
    if isinstance(step, NotesStep):
        from kavi.gitstore.objects import notes_present

        current = repo.ref_target(step.ref)
        if current == step.new or (current is not None and notes_present(repo, current, step.notes)):
            return StepState(label, "done")
        if current == step.old:
            return StepState(label, "todo", visible=False)
        return StepState(label, "partial", f"{step.ref} moved since; the notes must be re-made on top of it")
    if isinstance(step, MirrorStep):
        from kavi.forge.sync import mirror_state

        ms = mirror_state(forge)
        moved = ms.tip != step.old or bool(ms.adoptable)
        if ms.problem or ms.foreign:  # not this change's to solve: its mirroring waits (see _apply)
            why = ms.problem or f"refs/kavi/ledger holds {ms.foreign} event(s) this ledger does not have"
            return StepState(label, "partial" if moved else "todo", why, moved)
        if not ms.unmirrored and not ms.adoptable and not ms.behind:
            return StepState(label, "done", visible=moved)
        return StepState(label, "partial" if moved else "todo", f"{ms.unmirrored} event(s) to mirror", moved)
    if isinstance(step, CheckoutStep):
        from kavi.gitstore.checkout import pending_paths

        if repo.is_bare or repo.head_branch() != step.branch:
            return StepState(label, "done", "the branch is not checked out here", visible=False)
        old_tree, new_tree = repo.commit_tree(step.old), repo.commit_tree(step.new)
        left, at_old = pending_paths(repo, old_tree, new_tree)
        if not left:
            return StepState(label, "done")
        return StepState(label, "todo" if at_old else "partial", f"{len(left)} path(s) to update", not at_old)
    return StepState(label, "blocked", "unknown step")


# -- applying ---------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What :func:`run` or :func:`recover` did."""

    action: Literal["finished", "rolled back", "blocked", "nothing"]
    applied: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    blocked: str = ""
    mirrored: int = 0


SignerFor = Callable[[], SshSigner | None]


def run(forge: Forge, journal: Journal, signer: SshSigner | SignerFor | None) -> Outcome:
    """Write the journal, apply every step, remove it. The caller holds the forge lock.

    ``signer``: the approving user's key (promote, revoke, sync), or a callable that finds
    a trusted key only when a step needs one (doctor).
    """
    if load(forge) is not None:
        raise StateError(
            "an earlier change did not finish (its journal is still there)",
            remedy="run `git kavi doctor --repair`, then the command again",
        )
    write(forge, journal)
    try:
        return _apply_all(forge, journal, signer)
    except BaseException:
        # nothing visible happened (e.g. git's lock file was in the way of the first step):
        # leave no journal behind; otherwise it stays for doctor --repair to finish
        try:
            if not any(s.visible for s in states(forge, journal)):
                clear(forge)
        except Exception:
            pass
        raise


def _apply_all(forge: Forge, journal: Journal, signer: SshSigner | SignerFor | None) -> Outcome:
    outcome = Outcome("finished")
    for step in journal.steps:
        state = _state(forge, step)
        if state.status == "done":
            continue
        if state.status == "blocked":
            outcome.action = "blocked"
            outcome.blocked = f"step {state.label}: {state.detail}"
            return outcome
        _apply(forge, step, signer, outcome)
        outcome.applied.append(step.label)
        failpoint(f"after-{step.label}")
    clear(forge)
    return outcome


def _signer(signer: SshSigner | SignerFor | None) -> SshSigner | None:
    return signer() if callable(signer) else signer


def _apply(forge: Forge, step: Any, signer: SshSigner | SignerFor | None, outcome: Outcome) -> None:
    repo = forge.repo
    if isinstance(step, RefStep):
        from kavi.gitstore.repo import ZERO_OID

        repo.set_ref(step.ref, step.new, message=f"kavi: {step.label}", old=step.old or ZERO_OID)
    elif isinstance(step, LedgerStep):
        from kavi.forge.ledger_steps import RECORDERS

        RECORDERS[step.record][1](forge, step.payload)
    elif isinstance(step, NotesStep):
        from kavi.gitstore.objects import add_notes
        from kavi.gitstore.repo import ZERO_OID

        if repo.ref_target(step.ref) == step.old:
            repo.set_ref(step.ref, step.new, message=f"kavi: {step.label}", old=step.old or ZERO_OID)
            return
        key = _signer(signer)
        if key is None:
            outcome.notes.append(f"notes not written: {step.ref} moved and no trusted key is configured")
            return
        from kavi.forge.identity import record_block

        message = step.message + record_block(forge, key)
        add_notes(repo, ref=step.ref, notes=step.notes, message=message, signer=key)
    elif isinstance(step, MirrorStep):
        from kavi.errors import TrustError
        from kavi.forge.sync import mirror_pending, reconcile

        key = _signer(signer)
        try:
            if key is None:
                reconcile(forge)  # adopting what already landed needs no key
                left = len(forge.ledger.unmirrored_events())
                if left:
                    outcome.notes.append(
                        f"{left} ledger event(s) not mirrored yet: no trusted signing key here; "
                        "run `git kavi ledger sync` with a key listed in .kavi/allowed_signers"
                    )
                return
            outcome.mirrored += mirror_pending(forge, key)
        except TrustError as exc:
            # the ledger and its mirror disagree for a reason older than this change (another
            # clone's events, a divergence): the change itself is complete; mirroring waits
            outcome.notes.append(f"the ledger was not mirrored: {exc.message} — {exc.remedy}")
    elif isinstance(step, CheckoutStep):
        from kavi.gitstore.checkout import advance

        if repo.is_bare or repo.head_branch() != step.branch:
            return
        done = advance(repo, repo.commit_tree(step.old), repo.commit_tree(step.new))
        if done.kept:
            outcome.notes.append(
                "kept your local changes to " + ", ".join(done.kept) + " (the commit has the new content: "
                "`git diff` shows your edits against it)"
            )


@dataclass(frozen=True)
class SignedChange:
    """A signed change of the target branch (promotion, revocation, republishing), its
    commit and tag already made and signed; see :func:`perform_change`."""

    label: str  # what the branch step is called: "merge", "commit"
    branch: str
    old: str  # the branch tip the change was made on
    new: str  # the signed commit
    tag_ref: str
    tag: str  # the signed tag object
    record: str  # the ledger record kind (kavi.forge.ledger_steps.RECORDERS)
    payload: dict[str, Any]
    notes: dict[str, str]  # annotated object → note text
    notes_message: str
    checkout: bool  # the branch is checked out here


def perform_change(
    forge: Forge, change: SignedChange, *, op: Op, subject: str, signer: SshSigner, principal: str
) -> Outcome:
    """Sign the notes commit, then journal and apply: branch → tag → ledger → notes → mirror →
    checkout (last). The caller holds the forge lock."""
    from kavi.forge.identity import record_block
    from kavi.forge.init import NOTES_REF
    from kavi.gitstore.mirror import LEDGER_REF
    from kavi.gitstore.objects import notes_commit

    repo = forge.repo
    notes_old = repo.ref_target(NOTES_REF)
    notes_new = notes_commit(
        repo,
        parent=notes_old,
        notes=change.notes,
        message=change.notes_message + record_block(forge, signer),
        signer=signer,
    )
    steps: list[Any] = [
        RefStep(
            label=change.label, ref=f"refs/heads/{change.branch}", old=change.old, new=change.new, branch=True
        ),
        RefStep(label="tag", ref=change.tag_ref, old=None, new=change.tag),
        LedgerStep(label="ledger", record=change.record, payload=change.payload),
        NotesStep(
            label="notes",
            ref=NOTES_REF,
            old=notes_old,
            new=notes_new,
            notes=change.notes,
            message=change.notes_message,
        ),
        MirrorStep(label="mirror", old=repo.ref_target(LEDGER_REF)),
    ]
    if change.checkout:
        steps.append(CheckoutStep(label="checkout", branch=change.branch, old=change.old, new=change.new))
    return perform(forge, op=op, subject=subject, signer=signer, principal=principal, steps=steps)


def perform(
    forge: Forge, *, op: Op, subject: str, signer: SshSigner, principal: str, steps: list[Any]
) -> Outcome:
    """Journal ``steps`` and apply them (the caller holds the forge lock)."""
    entry = Journal.new(op=op, subject=subject, signer=signer, principal=principal, steps=steps)
    outcome = run(forge, entry, signer)
    if outcome.action == "blocked":
        raise StateError(
            f"the {op} of {subject} stopped: {outcome.blocked}",
            remedy="run `git kavi doctor` to see what moved",
        )
    return outcome


def recover(forge: Forge, journal: Journal, signer: SshSigner | SignerFor | None) -> Outcome:
    """Finish the journal, or roll it back if none of its steps happened."""
    found = states(forge, journal)
    if not any(s.visible for s in found):
        clear(forge)
        return Outcome("rolled back", notes=["nothing visible had happened"])
    return _apply_all(forge, journal, signer)
