"""``git kavi promote-skill --republish``: publish again after losing a race.

Two clones promoted (or recorded ledger events) from the same state; the other pushed
first. This clone's push is refused for good: its merge is not on the remote's
first-parent line, and its ledger events repeat sequence numbers the remote already
has (the ledger is hash-chained). Republishing:

1. :func:`prepare` (writes nothing): fetches the remote's target branch, ledger, notes
   and Kavi tags into ``refs/kavi-upstream/<remote>/…``; judges them with the trust rule;
   finds this clone's lost promotions (every local commit of the target branch above
   what the remote has must be one) and the ledger events only this clone has; checks
   that those events apply after the remote's and that each lost promotion merges
   cleanly onto the remote's tip — and says what changed there;
2. :func:`reset_to_upstream` (with an approval for exactly that plan): the ledger
   becomes the remote's events plus this clone's own, re-sequenced after them (the lost
   promotions' events dropped), and the target branch, notes and Kavi tags become the
   remote's;
3. the caller promotes each lost build again (:func:`replan` → :func:`kavi.forge.promote.promote`),
   re-signing merge, tag, notes and every not-yet-mirrored event onto the new tips;
4. :func:`finish` records again the runs made with a lost promotion (now naming its
   replacement) and mirrors them.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kavi.errors import ConflictError, GitError, StateError, TrustError
from kavi.forge.context import Forge
from kavi.hashing import canonical_json, sha256_hex
from kavi.ledger.models import Event, Promotion
from kavi.ledger.reducer import EventKind

if TYPE_CHECKING:
    from kavi.cli.approval import Approval
    from kavi.forge.promote import PromotionPlan
    from kavi.gitstore.mirror import MirrorEntry
    from kavi.sshsig import SshSigner

UPSTREAM = "refs/kavi-upstream"


@dataclass
class RepublishPlan:
    remote: str
    branch: str
    local_tip: str
    upstream_tip: str
    upstream_ledger: str | None
    upstream_notes: str | None
    base: str  # the newest commit of the local target branch the remote also has
    lost: list[Promotion]
    remote_entries: list[MirrorEntry]  # the remote's ledger, oldest first
    common: int  # events both ledgers share
    kept: list[Event]  # this clone's own events, to be re-sequenced after the remote's
    dropped: list[Event]  # the lost promotions' events (promoting again records new ones)
    deferred_runs: list[Event]  # runs made with a lost promotion (recorded again after it)
    new_commits: list[tuple[str, str]]  # (commit, subject) the remote's branch gained since base
    versions: dict[str, int]  # lost promotion id -> the version it will get
    upstream_tags: dict[str, str] = field(default_factory=dict)  # tag ref -> object
    fingerprint: str = ""
    private: dict[str, dict[str, Any]] = field(default_factory=dict)  # event id -> its sealed data
    elsewhere: list[str] = field(default_factory=list)  # artifacts known here by their digest only

    @property
    def digest(self) -> str:
        return sha256_hex(
            canonical_json(
                {
                    "republish": self.upstream_tip,
                    "ledger": self.upstream_ledger,
                    "base": self.base,
                    "lost": [p.id for p in self.lost],
                    "kept": [e.id for e in self.kept],
                    "versions": self.versions,
                    "key": self.fingerprint,
                }
            ).encode()
        )


def _git(forge: Forge, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args], cwd=forge.workdir, capture_output=True, text=True, timeout=600, check=False
    )


def _fetch(forge: Forge, remote: str, branch: str) -> None:
    """The remote's target branch, ledger, notes and Kavi tags, into a private namespace."""
    listed = _git(forge, "ls-remote", remote)
    if listed.returncode != 0:
        raise GitError(
            f"cannot reach remote {remote!r}",
            why=listed.stderr.strip() or f"git ls-remote exited {listed.returncode}",
            remedy="check `git remote -v` and your access, then run it again",
        )
    present = {line.split("\t", 1)[1] for line in listed.stdout.splitlines() if "\t" in line}
    wanted = [f"refs/heads/{branch}", "refs/kavi/ledger", "refs/notes/kavi"]
    specs = [f"+{r}:{UPSTREAM}/{remote}/{r[len('refs/') :]}" for r in wanted if r in present]
    if any(r.startswith("refs/tags/kavi/") for r in present):
        specs.append(f"+refs/tags/kavi/*:{UPSTREAM}/{remote}/tags/kavi/*")
    stale = forge.repo.refs(f"{UPSTREAM}/{remote}/")
    for ref in stale:
        forge.repo.delete_ref(ref)
    # --refmap=: only into the private namespace — Kavi's fetch refspecs would otherwise also
    # move this clone's own refs/kavi/ledger and notes (refused: they are not fast-forwards)
    done = _git(forge, "fetch", "--no-tags", "--refmap=", "-q", remote, *specs)
    if done.returncode != 0:
        raise GitError(f"fetching from {remote} failed", why=done.stderr.strip(), remedy="run it again")


def prepare(forge: Forge, remote: str, signer: SshSigner) -> RepublishPlan:
    from kavi.forge import journal
    from kavi.forge.trust import forge_identity
    from kavi.gitstore.mirror import walk_chain

    if journal.journal_path(forge).exists():
        raise StateError(
            "an earlier promotion, revocation or ledger sync did not finish",
            remedy="run `git kavi doctor --repair` first, then republish",
        )
    repo = forge.repo
    branch = forge.committed_config.target_branch
    local_tip = repo.branch_tip(branch)
    if local_tip is None:
        raise GitError(f"target branch {branch} does not exist")
    _fetch(forge, remote, branch)
    ns = f"{UPSTREAM}/{remote}"
    upstream_tip = repo.ref_target(f"{ns}/heads/{branch}")
    if upstream_tip is None:
        raise GitError(f"{remote} has no {branch}", remedy=f"push it first: git push {remote} {branch}")
    tags = {f"refs/{r[len(ns) + 1 :]}": oid for r, oid in repo.refs(f"{ns}/tags/").items()}
    forge_id = forge_identity(forge)
    base, lost = _lost_promotions(forge, branch, local_tip, upstream_tip)
    _judge_upstream(forge, upstream_tip, base, tags)
    upstream_ledger = repo.ref_target(f"{ns}/kavi/ledger")
    entries = walk_chain(repo, upstream_ledger) if upstream_ledger else []
    _judge_upstream_records(forge, entries, upstream_tip, forge_id)
    local = forge.ledger.events()
    common = 0
    for mine, theirs in zip(local, entries, strict=False):
        if theirs.event is None or mine.hash != theirs.event.hash:
            break
        common += 1
    dropped_ids = {e.id for p in lost for e in _promotion_events(local, p)}
    lost_ids = {p.id for p in lost}
    deferred = [
        e
        for e in local[common:]
        if e.kind == EventKind.RUN_RECORDED and e.payload.get("promotion_id") in lost_ids
    ]
    deferred_ids = {e.id for e in deferred}
    kept = [e for e in local[common:] if e.id not in dropped_ids and e.id not in deferred_ids]
    plan = RepublishPlan(
        remote=remote,
        branch=branch,
        local_tip=local_tip,
        upstream_tip=upstream_tip,
        upstream_ledger=upstream_ledger,
        upstream_notes=repo.ref_target(f"{ns}/notes/kavi"),
        base=base,
        lost=lost,
        remote_entries=entries,
        common=common,
        kept=kept,
        dropped=[e for e in local[common:] if e.id in dropped_ids],
        deferred_runs=deferred,
        new_commits=_new_commits(forge, upstream_tip, base),
        versions={},
        upstream_tags=tags,
        fingerprint=signer.fingerprint,
        private=forge.ledger.private_data(),
        elsewhere=forge.ledger.elsewhere(),
    )
    if not lost and not kept and common == len(local) and upstream_tip == local_tip:
        raise StateError(
            f"nothing to republish: {remote} already has everything this clone has",
            remedy=f"push: git push {remote} {branch} refs/kavi/ledger",
        )
    if repo.is_ancestor(upstream_tip, local_tip) and common == len(entries):
        raise StateError(
            f"{remote} has nothing this clone lacks: no race was lost",
            remedy=f"push as usual: git push {remote} {branch} 'refs/tags/kavi/*:refs/tags/kavi/*' "
            "refs/notes/kavi refs/kavi/ledger",
        )
    _dry_run(forge, plan)
    return plan


def _judge_upstream(forge: Forge, tip: str, base: str, tags: dict[str, str]) -> None:
    """What the remote's branch gained since ``base`` must be sanctioned, as our own history is."""
    from kavi.forge.trust import load_pin
    from kavi.gitstore.govstate import GovReader
    from kavi.gitstore.protected import Layout
    from kavi.gitstore.trustchain import Judge, Scope

    repo = forge.repo
    pin = load_pin(forge)
    if pin is None:
        raise TrustError("this clone has pinned no trust root", remedy="git kavi trust show")
    governing = forge.governing_commit
    if governing is None or not repo.is_ancestor(base, governing):
        raise TrustError(
            "this clone's own history is not sanctioned below its lost promotions",
            remedy="see `git kavi trust show`",
        )
    commits = repo.walk_new_commits(tip, [base])
    line: set[str] = set()
    current: str | None = tip
    new = set(commits)
    while current in new:
        line.add(current)
        parents = repo.commit_meta(current)[1]
        current = parents[0] if parents else None

    def tag_of(ref: str) -> str | None:
        return tags.get(ref) or repo.ref_target(ref)

    judge = Judge(
        repo,
        pin,
        gov=GovReader(repo, default=Layout(target_branch=forge.config.target_branch)),
        tag_of=tag_of,
    )
    problem = judge.judge(Scope("refs/heads/" + forge.committed_config.target_branch), commits, line)
    if problem is not None:
        raise TrustError(
            f"the remote's {problem.ref} carries history Kavi does not trust: {problem.why}",
            why=f"commit {problem.commit} breaks rule {problem.rule}",
            remedy="do not republish onto it; tell the forge's maintainers",
            details={"commit": problem.commit, "rule": problem.rule},
        )


def _judge_upstream_records(forge: Forge, entries: list[MirrorEntry], tip: str, forge_id: str) -> None:
    from kavi.gitstore.govstate import GovReader
    from kavi.gitstore.mirror import check_chain
    from kavi.gitstore.record_rules import LineIndex, RecordJudge
    from kavi.gitstore.trust import SigCache

    repo = forge.repo
    judge = RecordJudge(
        repo,
        gov=GovReader(repo),
        sigs=SigCache(repo),
        forge_id=forge_id,
        line=LineIndex(repo, tip, forge_id),
        branch=forge.committed_config.target_branch,
    )
    judge.prefetch({e.commit: e.message for e in entries})

    def signature(entry: MirrorEntry) -> str | None:
        found = judge.problem(entry.commit, entry.message)
        return None if found is None else found[1]

    problem = next(iter(check_chain(repo, entries, verify_signature=signature)), None)
    if problem is not None:
        raise TrustError(
            f"the remote's refs/kavi/ledger is not trustworthy: {problem}",
            remedy="do not republish onto it; tell the forge's maintainers",
            details={"commit": problem.commit},
        )


def _lost_promotions(
    forge: Forge, branch: str, local_tip: str, upstream_tip: str
) -> tuple[str, list[Promotion]]:
    """Walk the local first-parent line down to what the remote has; everything above it
    must be this clone's own promotion merges."""
    repo = forge.repo
    by_merge = {p.merge_commit: p for p in forge.ledger.promotions()}
    lost: list[Promotion] = []
    current = local_tip
    while not repo.is_ancestor(current, upstream_tip):
        promotion = by_merge.get(current)
        if promotion is None:
            subject = (repo.commit(current).message.splitlines() or [""])[0]
            raise ConflictError(
                f'{branch} has commit {current[:12]} ("{subject[:50]}") that the remote does not '
                "have and that is not a Kavi promotion",
                why="republishing replays promotions only; other work must be rebased by you",
                remedy=f"put that work on another branch, `git reset --hard` {branch} to the promotion "
                "below it, republish, then rebase your work onto the result",
            )
        lost.append(promotion)
        current = repo.commit_meta(current)[1][0]
    lost.reverse()
    return current, lost


def _promotion_events(events: list[Event], p: Promotion) -> list[Event]:
    """The events one promotion recorded (one transaction: record artifact, promotion,
    older versions SUPERSEDED, the proposal TRUSTED)."""
    out = []
    for e in events:
        payload = e.payload
        if (
            (e.kind == EventKind.PROMOTION_RECORDED and payload.get("id") == p.id)
            or (e.kind == EventKind.ARTIFACT_RECORDED and payload.get("id") == p.record_artifact_id)
            or (
                e.kind == EventKind.STATUS_CHANGED
                and payload.get("reason") in (f"promoted as {p.tag_name}", f"superseded by {p.tag_name}")
            )
        ):
            out.append(e)
    return out


def _new_commits(forge: Forge, tip: str, base: str) -> list[tuple[str, str]]:
    repo = forge.repo
    out = []
    for commit in reversed(repo.first_parent_chain(tip, base)):
        out.append((commit, (repo.commit(commit).message.splitlines() or [""])[0]))
    return out


def _dry_run(forge: Forge, plan: RepublishPlan) -> None:
    """Everything phase 2 will do must work: the events apply, the builds merge, the
    checkout can move — decided before anything is written."""
    from kavi.ledger.rebuild import apply_all

    try:
        apply_all(":memory:", _ledger_events(plan))
    except Exception as exc:  # the reducer's refusal, named
        raise ConflictError(
            f"this clone's ledger events do not apply after {plan.remote}'s: {exc}",
            why="both clones changed the same proposal",
            remedy="import the remote's ledger in a fresh clone and redo your steps there",
        ) from None
    repo = forge.repo
    for p in plan.lost:
        build = repo.commit_meta(p.merge_commit)[1][1]
        merged, conflicts = repo.merge_commits(plan.upstream_tip, build)
        if merged is None:
            raise ConflictError(
                f"{p.skill_name}'s build no longer merges onto {plan.remote}'s {plan.branch}",
                why="conflicting paths: " + ", ".join(conflicts),
                remedy=f"rebuild it on the new tip: git kavi build-skill {p.proposal_id[:8]}",
            )
    plan.versions = _versions(plan)
    if repo.head_branch() == plan.branch and not repo.is_bare:
        from kavi.gitstore import checkout as co

        old_tree, new_tree = repo.commit_tree(plan.local_tip), repo.commit_tree(plan.upstream_tip)
        in_way = co.conflicts(repo, old_tree, [d.path for d in repo.diff_raw(old_tree, new_tree)], new_tree)
        if in_way:
            raise ConflictError(
                "local changes are in the way: " + ", ".join(in_way),
                remedy="commit, stash or move them away, then republish",
            )


def _versions(plan: RepublishPlan) -> dict[str, int]:
    """The version each lost promotion gets: after every promotion of its skill the
    remote (or this clone, kept) has, on a tag name nobody took."""
    latest: dict[str, int] = {}
    events = [e.event for e in plan.remote_entries if e.event is not None] + plan.kept
    for e in events:
        if e.kind == EventKind.PROMOTION_RECORDED:
            name, version = str(e.payload.get("skill_name")), int(str(e.payload.get("version", 0)))
            latest[name] = max(latest.get(name, 0), version)
    taken = {r[len("refs/tags/") :] for r in plan.upstream_tags}
    out: dict[str, int] = {}
    for p in plan.lost:
        version = latest.get(p.skill_name, 0) + 1
        while f"kavi/{p.skill_name}/v{version}" in taken:
            version += 1
        latest[p.skill_name] = out[p.id] = version
    return out


def _ledger_events(plan: RepublishPlan) -> list[tuple[Event, str | None]]:
    from kavi.ledger.rebuild import resequence

    remote = [(e.event, e.commit) for e in plan.remote_entries if e.event is not None]
    last = remote[-1][0] if remote else None
    return [*remote, *((e, None) for e in resequence(plan.kept, last))]


def describe(plan: RepublishPlan) -> str:
    lines = [f"{plan.remote}/{plan.branch} moved on since your work ({plan.base[:12]}):"]
    lines += [f"  + {c[:12]} {s[:70]}" for c, s in plan.new_commits[-20:]]
    if len(plan.new_commits) > 20:
        lines.append(f"  … and {len(plan.new_commits) - 20} earlier commit(s)")
    remote_events = len(plan.remote_entries) - plan.common
    lines.append(
        f"its ledger has {remote_events} event(s) yours does not "
        f"(#{plan.common + 1}–#{len(plan.remote_entries)})"
    )
    if plan.kept:
        start = len(plan.remote_entries) + 1
        lines.append(f"your {len(plan.kept)} own event(s) will follow them from #{start}, signed again")
    for p in plan.lost:
        lines.append(
            f"your promotion of {p.skill_name} v{p.version} ({p.merge_commit[:12]}) never reached "
            f"{plan.remote}: it will be merged again onto {plan.upstream_tip[:12]} "
            f"as v{plan.versions.get(p.id, p.version)} and signed again"
        )
    if plan.deferred_runs:
        lines.append(
            f"{len(plan.deferred_runs)} run(s) of those promotions will be recorded against the new ones"
        )
    lines.append(f"your {plan.branch}, refs/notes/kavi and Kavi tags become {plan.remote}'s first")
    return "\n".join(lines)


def reset_to_upstream(forge: Forge, plan: RepublishPlan, approval: Approval) -> None:
    """Phase 2: the ledger, the target branch, notes and tags become the remote's (plus
    this clone's own events, re-sequenced). Nothing here needs the lost promotions."""
    from kavi.cli.approval import require
    from kavi.forge.init import NOTES_REF
    from kavi.gitstore.mirror import LEDGER_REF
    from kavi.gitstore.repo import ZERO_OID
    from kavi.ledger.rebuild import write_ledger

    require(approval, plan.digest, "republishing")
    repo = forge.repo
    if repo.branch_tip(plan.branch) != plan.local_tip:
        raise ConflictError(f"{plan.branch} moved while you were deciding", remedy="run it again")
    forge.close()
    from kavi.forge.importer import digest_only

    elsewhere = [*plan.elsewhere, *digest_only(repo, plan.remote_entries, forge.workdir)]
    write_ledger(forge.location.ledger_path, _ledger_events(plan), private=plan.private, elsewhere=elsewhere)
    for p in plan.lost:
        ref = f"refs/tags/{p.tag_name}"
        if ref not in plan.upstream_tags:
            repo.delete_ref(ref)
    for ref, oid in plan.upstream_tags.items():
        current = repo.ref_target(ref)
        if current != oid:
            repo.delete_ref(ref)
            repo.set_ref(ref, oid, message="kavi: republish (the remote's tag)", old=ZERO_OID)
    for ref, theirs in ((LEDGER_REF, plan.upstream_ledger), (NOTES_REF, plan.upstream_notes)):
        if theirs is None:
            repo.delete_ref(ref)
        else:
            repo.set_ref(ref, theirs, message="kavi: republish (the remote's)")
    checkout = repo.head_branch() == plan.branch and not repo.is_bare
    old_tree, new_tree = repo.commit_tree(plan.local_tip), repo.commit_tree(plan.upstream_tip)
    if checkout:
        from kavi.gitstore import checkout as co

        in_way = co.conflicts(repo, old_tree, [d.path for d in repo.diff_raw(old_tree, new_tree)], new_tree)
        if in_way:
            raise ConflictError(
                "local changes are in the way: " + ", ".join(in_way),
                remedy="commit, stash or move them away, then republish again",
            )
    repo.set_ref(
        f"refs/heads/{plan.branch}", plan.upstream_tip, message="kavi: republish", old=plan.local_tip
    )
    if checkout:
        co.advance(repo, old_tree, new_tree)  # last: the working tree follows the branch
    for artifact_event in (e for e in plan.dropped if e.kind == EventKind.ARTIFACT_RECORDED):
        (forge.workdir / str(artifact_event.payload.get("path", ""))).unlink(missing_ok=True)
    for name in ("governing_commit", "committed_config", "policy"):
        forge.__dict__.pop(name, None)


def replan(forge: Forge, plan: RepublishPlan, lost: Promotion, signer: SshSigner) -> PromotionPlan:
    """The promotion of ``lost``'s build again, checked against what was approved."""
    from kavi.forge.promote import plan_promotion

    again = plan_promotion(forge, lost.proposal_id, signer)
    expected = plan.versions.get(lost.id)
    if (
        again.version != expected
        or again.build.id != lost.build_id
        or again.verification.id != lost.verification_id
    ):
        raise StateError(
            f"the promotion of {lost.skill_name} would now differ from what you approved",
            why=f"version {again.version} (approved {expected}), build {again.build.id[:8]}",
            remedy="run `git kavi promote-skill --republish` again",
        )
    return again


def finish(forge: Forge, plan: RepublishPlan, signer: SshSigner) -> int:
    """Record again the runs made with a lost promotion, naming its replacement; mirror.
    Returns how many events this clone has signed on top of the remote's ledger."""
    from kavi.forge.sync import mirror_pending
    from kavi.ledger.privacy import seal

    if plan.deferred_runs:
        by_proposal = {p.proposal_id: p for p in forge.ledger.promotions()}
        lost_proposal = {p.id: p.proposal_id for p in plan.lost}
        with forge.ledger.transaction(forge.actor) as txn:
            for run in plan.deferred_runs:
                replacement = by_proposal[lost_proposal[str(run.payload["promotion_id"])]]
                payload = {**run.payload, "promotion_id": replacement.id, "version": replacement.version}
                private = plan.private.get(run.id)
                if "sealed" not in payload:  # recorded before runs were sealed, never published
                    payload, private = seal(run.kind, payload)
                txn.record(run.kind, run.subject_id, payload, private=private)
    mirror_pending(forge, signer)
    return len(forge.ledger.events()) - len(plan.remote_entries)
