"""``git kavi doctor [--repair]``: find (and fix) what interrupted commands, crashes and full
disks leave behind, and any disagreement between ledger, git and vault.

Checks, in this order (``--repair`` runs them under the forge lock):

* the forge lock's record (:mod:`kavi.forge.doctor_files`) and git's lock files;
* the ledger file (:mod:`kavi.forge.doctor_ledger`): missing, empty, foreign,
  damaged, failing SQLite's integrity check, a stray write-ahead log;
* an interrupted promotion, revocation or ledger sync (:mod:`kavi.forge.journal`):
  every step named done or not; ``--repair`` finishes it, or rolls it back if nothing
  visible happened — signing only with a key the committed ``allowed_signers`` trusts;
* builds that never finished, leftover sandboxes, worktree metadata and verify
  sandboxes, temporary files and vault files no record refers to;
* promotions whose tag or notes are missing;
* the ledger's hash chain, the ledger against its mirror (either direction), vault
  artifacts;
* a ``registry.yaml`` that disagrees with the ledger.

Nothing is deleted from the ledger or from git history; files are set aside, not
deleted, when they may hold anything of value.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kavi.clock import now_iso
from kavi.forge.context import Forge
from kavi.ledger.models import Build, BuildStatus
from kavi.ledger.reducer import EventKind

if TYPE_CHECKING:
    from kavi.gitstore.tripwire import Snapshot


@dataclass
class Finding:
    check: str
    problem: str
    repair: str = ""
    repaired: bool = False
    warning: bool = False  # not a problem: something to do (e.g. `git kavi ledger sync`)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class DoctorReport:
    findings: list[Finding] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(f.repaired or f.warning for f in self.findings)


def check_journal(forge: Forge, report: DoctorReport, repair: bool) -> None:
    from kavi.forge import journal
    from kavi.forge.recovery import trusted_signer

    report.checked.append("interrupted promotion, revocation or ledger sync")
    try:
        found = journal.load(forge)
    except journal.UnreadableJournal as exc:
        finding = Finding(
            "interrupted change",
            f"{journal.journal_path(forge)} cannot be read ({exc})",
            "set it aside; the ledger, its mirror and the refs are checked against each other below",
        )
        report.findings.append(finding)
        if repair:
            aside = journal.set_aside(forge)
            finding.repair += f" (kept as {aside.name})"
            finding.repaired = True
        return
    if found is None:
        return
    states = journal.states(forge, found)
    done = [s.label for s in states if s.status == "done" and s.visible]
    left = [s for s in states if s.status != "done"]
    detail = "; ".join(f"{s.label}: {s.detail}" for s in left if s.detail)
    finding = Finding(
        "interrupted change",
        f"{found.describe()} stopped; done: {', '.join(done) or 'nothing visible'}; "
        f"missing: {', '.join(s.label for s in left) or 'nothing'}" + (f" ({detail})" if detail else ""),
    )
    report.findings.append(finding)
    blocked = [s for s in states if s.status == "blocked"]
    if not any(s.visible for s in states):
        finding.repair = "roll back: nothing visible happened; remove the journal (run the command again)"
    elif blocked:
        finding.repair = "cannot finish it automatically: " + blocked[0].detail
    else:
        finding.repair = "finish it: " + ", ".join(s.label for s in left)
        if any(s.label == "mirror" for s in left):
            signer, why = trusted_signer(forge)
            if signer is None:
                finding.repair += f" (the mirror step needs a trusted key: {why}; the rest does not)"
    if not repair or (blocked and any(s.visible for s in states)):
        return
    outcome = journal.recover(forge, found, lambda: trusted_signer(forge)[0])
    if outcome.action == "blocked":
        finding.repair += f" — stopped: {outcome.blocked}"
        return
    finding.repaired = True
    finding.repair = outcome.action + "".join(f"; {n}" for n in outcome.notes)


def check_builds(forge: Forge, report: DoctorReport, repair: bool) -> None:
    from kavi.forge.build import sandbox_base
    from kavi.gitstore.sandbox import prune_worktree, remove_tree

    report.checked.append("unfinished builds")
    ledger = forge.ledger
    repo = forge.repo
    for build in ledger.unfinished_builds():
        finding = Finding(
            "unfinished build",
            f"build {build.id[:8]} of proposal {build.proposal_id[:8]} started at {build.started_at[:19]} "
            "and never finished (interrupted)",
            "record it as FAILED (abandoned) and remove its sandbox",
        )
        report.findings.append(finding)
        _check_tripwire(forge, build.id, report, repair)
        if repair:
            prune_worktree(repo, f"kavi-{build.id[:12]}")
            remove_tree(sandbox_base(forge) / f"kavi-build-{build.id}")
            tip = repo.branch_tip(build.branch_name)
            commit = tip if tip and tip != build.base_commit else None
            if commit is None:
                repo.delete_ref(f"refs/heads/{build.branch_name}")
            _close_abandoned(forge, build, commit)
            finding.repaired = True
    running = {f"kavi-{b.id[:12]}" for b in ledger.unfinished_builds()}
    worktrees = repo.common_dir / "worktrees"
    if worktrees.exists():
        for wt in sorted(worktrees.iterdir()):
            if wt.name.startswith("kavi-") and wt.name not in running:
                finding = Finding(
                    "leftover worktree", f"worktree metadata {wt.name} has no running build", "prune it"
                )
                report.findings.append(finding)
                if repair:
                    prune_worktree(repo, wt.name)
                    finding.repaired = True


def _close_abandoned(forge: Forge, build: Build, commit: str | None) -> None:
    """Record an interrupted build as FAILED, with a BUILD_LOG saying so (every finished
    build has its log, so the audit trail has no hole where the interruption was)."""
    from kavi.ledger.models import ArtifactKind

    ledger = forge.ledger
    proposal = ledger.proposal(build.proposal_id)
    summary = "abandoned: the build process was interrupted (closed by git kavi doctor)"
    vault = forge.vault()
    with vault.pending(), ledger.transaction(forge.actor) as txn:
        log, _ = vault.write(
            ArtifactKind.BUILD_LOG,
            name=proposal.name,
            related_id=build.id,
            title=f"BUILD_LOG_{build.attempt_number} {proposal.name} — FAILED",
            body="\n".join(
                [
                    "- status: **FAILED**",
                    f"- branch: `{build.branch_name}`",
                    f"- base commit: `{build.base_commit}`",
                    f"- build commit: `{commit or '(none)'}`",
                    f"- summary: {summary}",
                    "",
                    "The process running this build stopped before it could record the outcome "
                    "(killed, or the machine went down); `git kavi doctor --repair` closed it.",
                ]
            ),
            meta={"proposal_id": proposal.id, "build_id": build.id, "status": "FAILED", "commit": commit},
            attempt=build.attempt_number,
        )
        txn.put(EventKind.ARTIFACT_RECORDED, log)
        txn.record(
            EventKind.BUILD_FINISHED,
            build.id,
            {
                "build_id": build.id,
                "status": BuildStatus.FAILED.value,
                "commit_id": commit,
                "summary": summary,
                "finished_at": now_iso(),
                "log_artifact_id": log.id,
            },
        )


def _check_tripwire(forge: Forge, build_id: str, report: DoctorReport, repair: bool) -> None:
    """An unconfined build interrupted while its backend ran left its tripwire snapshot:
    what the backend changed in the repository was never undone. The snapshot lived where
    the backend could write, so it is evidence, not a source: hooks that appeared or
    changed since are moved aside (never rewritten), config lines added since are shown
    for the user to remove, refs that moved are listed."""
    from kavi.gitstore import tripwire

    path = tripwire.saved_path(forge.repo, build_id)
    if not os.path.lexists(path):
        return
    before = tripwire.load(path)
    if before is None:
        report.findings.append(
            Finding(
                "interrupted build",
                f"build {build_id[:8]} ran its backend without confinement and was interrupted; its "
                f"tripwire snapshot {path} is unusable: check .git/config, .git/hooks and refs by hand",
            )
        )
        if repair:
            tripwire.discard(path)
        return
    after = tripwire.rescan(forge.repo, before)
    changes = tripwire.compare(before, after)
    if changes:
        common = forge.repo.common_dir
        executable = [r for r in after.files if _hook_like(r) and after.files[r] != before.files.get(r)]
        added = _added_config_lines(before, after)
        finding = Finding(
            "interrupted build",
            f"build {build_id[:8]} ran its backend without confinement and was interrupted; since its "
            f"snapshot: {'; '.join(changes[:10])}{' …' if len(changes) > 10 else ''}"
            + (f". Config lines added: {'; '.join(added[:10])}" if added else ""),
            "move aside the hooks that appeared or changed; review the config lines and refs listed "
            "(remove what you did not add yourself: `git config --edit`)",
        )
        report.findings.append(finding)
        if repair:
            for rel in executable:
                target = common / rel
                if os.path.lexists(target):
                    os.replace(target, target.with_name(f"{target.name}.kavi-quarantined-{build_id[:8]}"))
            finding.repaired = not added and all(
                r.startswith(("hooks/", "info/")) or "/hooks/" in r for r in _changed_files(before, after)
            )
    if repair:
        tripwire.discard(path)


def _hook_like(rel: str) -> bool:
    return rel.startswith("hooks/") or "/hooks/" in rel or rel.startswith("info/")


def _changed_files(before: Snapshot, after: Snapshot) -> list[str]:
    b, a = before.files, after.files
    return [r for r in set(b) | set(a) if b.get(r) != a.get(r)]


def _added_config_lines(before: Snapshot, after: Snapshot) -> list[str]:
    from kavi.textsafe import printable

    out: list[str] = []
    b, a = before.files, after.files
    for rel in sorted(a):
        name = rel.rsplit("/", 1)[-1]
        if not name.startswith("config") or a.get(rel) == b.get(rel):
            continue
        old = set((b.get(rel) or (0, b""))[1].decode("utf-8", "replace").splitlines())
        new = (a.get(rel) or (0, b""))[1].decode("utf-8", "replace").splitlines()
        out += [f".git/{rel}: {printable(line.strip())}" for line in new if line not in old and line.strip()]
    return out


def check_promotions(forge: Forge, report: DoctorReport, repair: bool) -> None:
    from kavi.forge.checks import note_problem, tag_problem
    from kavi.forge.identity import record_block
    from kavi.forge.init import NOTES_REF
    from kavi.forge.promote import promotion_notes, restore_tag
    from kavi.forge.recovery import trusted_signer
    from kavi.gitstore.objects import add_notes

    report.checked.append("promotion tags and notes")
    repo = forge.repo
    for p in forge.ledger.promotions():
        if not repo.has_object(p.merge_commit):
            report.findings.append(
                Finding(
                    "promotion",
                    f"{p.tag_name}: merge commit {p.merge_commit} is missing",
                    "fetch it from the remote that has it",
                )
            )
            continue
        tag = repo.ref_target(f"refs/tags/{p.tag_name}")
        if tag_problem(repo, p) is not None:
            finding = Finding(
                "promotion tag",
                f"tag {p.tag_name} is missing or does not point at {p.merge_commit[:12]}",
                "recreate the signed tag" if tag is None else "investigate: the tag was replaced",
            )
            report.findings.append(finding)
            if repair and tag is None:
                signer, why = trusted_signer(forge)
                if signer is None:
                    finding.repair += f" (not done: {why})"
                else:
                    restore_tag(forge, p, signer)
                    finding.repaired = True
        if note_problem(repo, repo.ref_target(NOTES_REF), p.merge_commit, f"Kavi-Promotion: {p.id}"):
            finding = Finding(
                "promotion notes",
                f"no promotion note on {p.merge_commit[:12]} ({p.tag_name})",
                "write the signed notes",
            )
            report.findings.append(finding)
            if repair:
                signer, why = trusted_signer(forge)
                if signer is None:
                    finding.repair += f" (not done: {why})"
                else:
                    notes, message = promotion_notes(forge, p)
                    message += record_block(forge, signer)
                    add_notes(repo, ref=NOTES_REF, notes=notes, message=message, signer=signer)
                    finding.repaired = True


def check_registry(forge: Forge, report: DoctorReport) -> None:
    from kavi.forge.checks import registry_problems

    report.checked.append("registry.yaml")
    rel, problems = registry_problems(forge)
    if "*" in problems:
        report.findings.append(
            Finding("registry", f"{rel} {problems['*']}", "promote again or restore the file from history")
        )
    elif problems:
        report.findings.append(
            Finding(
                "registry",
                f"{rel} on {forge.committed_config.target_branch} disagrees with the ledger about: "
                + ", ".join(sorted(problems)),
                "the ledger wins; import the ledger from the remote that promoted them",
            )
        )


def check_sandboxes(forge: Forge, report: DoctorReport, repair: bool, running: set[str]) -> None:
    """Sandboxes of this forge's builds that outlived them (another forge's are not ours)."""
    from kavi.errors import NotFoundError
    from kavi.forge.build import sandbox_base
    from kavi.gitstore.sandbox import remove_tree

    report.checked.append("leftover sandboxes")
    base = sandbox_base(forge)
    for d in sorted(base.glob("kavi-build-*")):
        build_id = d.name[len("kavi-build-") :]
        if build_id in running:
            continue
        try:
            forge.ledger.build(build_id)
        except NotFoundError:
            continue  # not a build of this forge: leave it to its own
        finding = Finding("leftover sandbox", f"{d} belongs to no running build", "remove it")
        report.findings.append(finding)
        if repair:
            remove_tree(d)
            finding.repaired = not os.path.lexists(d)


def doctor(forge: Forge, *, repair: bool, wait: float = 0.0) -> DoctorReport:
    """Run every check; with ``repair``, under the forge lock (waiting ``wait`` seconds for it)."""
    from contextlib import nullcontext

    from kavi.forge import doctor_files, doctor_ledger
    from kavi.forge.lock import forge_lock

    report = DoctorReport()
    doctor_files.check_lock_record(forge, report, repair, own=repair)
    with forge_lock(forge.kavi_dir, "doctor --repair", wait=wait) if repair else nullcontext():
        doctor_files.check_git_locks(forge, report, repair)
        if not forge.is_forge:  # e.g. an init that was killed: what git and Kavi left, nothing more
            doctor_files.check_temp_files(forge, report, repair)
            report.notes.append(
                f"{forge.workdir} is not a Kavi forge (yet): only lock and temporary files were checked; "
                "`git kavi init` makes (or finishes making) it one"
            )
            return report
        if not doctor_ledger.check_ledger_file(forge, report, repair):
            report.notes.append(
                "the ledger cannot be used until the problem above is solved: skipped the rest"
            )
            return report
        check_journal(forge, report, repair)
        check_builds(forge, report, repair)
        doctor_files.check_verify_boxes(forge, report, repair)
        doctor_files.check_temp_files(forge, report, repair)
        check_promotions(forge, report, repair)
        doctor_ledger.check_ledger(forge, report, repair)  # may import events: before the vault sweep
        doctor_files.check_vault_leftovers(forge, report, repair)
        check_registry(forge, report)
        running = {b.id for b in forge.ledger.unfinished_builds()}
        check_sandboxes(forge, report, repair, running)
        if repair:
            forge.close()  # SQLite's closing checkpoint still under the forge lock
    return report
