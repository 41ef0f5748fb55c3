"""``git kavi doctor [--repair]``: find (and fix) inconsistencies between ledger, git and vault.

Checks: an interrupted promotion (which steps landed, which did not), builds that never
finished, leftover sandboxes and worktrees, promotions whose tag or notes are missing,
a ledger journal whose hash chain is broken, a mirror ref that disagrees with the
ledger, artifacts missing from or altered in the vault, and a registry.yaml that
disagrees with the ledger. ``--repair`` completes an interrupted promotion whose merge
landed (or rolls it back if it did not), closes abandoned builds as FAILED, removes
leftover sandboxes, recreates missing tags and notes, and restores artifacts from
``refs/kavi/ledger``. Nothing is deleted from the ledger or from git history.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kavi.clock import now_iso
from kavi.forge.context import Forge
from kavi.ledger.models import BuildStatus
from kavi.ledger.reducer import EventKind
from kavi.sshsig import SshSigner

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

    @property
    def ok(self) -> bool:
        return all(f.repaired or f.warning for f in self.findings)


def _signer(forge: Forge) -> SshSigner | None:
    from kavi.signing import user_signer_or_none

    return user_signer_or_none(forge.repo)


def check_pending_promotion(forge: Forge, report: DoctorReport, repair: bool) -> None:
    from kavi.forge.init import NOTES_REF
    from kavi.forge.promote import finish, pending_path, read_pending
    from kavi.gitstore.objects import read_note, read_tag

    report.checked.append("interrupted promotion")
    pending = read_pending(forge)
    if pending is None:
        return
    repo = forge.repo
    p = pending.promotion
    tip = repo.branch_tip(p.target_branch)
    landed = tip is not None and repo.has_object(p.merge_commit) and repo.is_ancestor(p.merge_commit, tip)
    tag = repo.ref_target(f"refs/tags/{p.tag_name}")
    tag_ok = bool(tag and (info := read_tag(repo, tag)) and info.target == p.merge_commit)
    recorded = any(x.id == p.id for x in forge.ledger.promotions(p.skill_name))
    note = read_note(repo, repo.ref_target(NOTES_REF), p.merge_commit)
    noted = bool(note and f"Kavi-Promotion: {p.id}" in note)
    unmirrored = len(forge.ledger.unmirrored_events())
    done = {"merge": landed, "tag": tag_ok, "ledger": recorded, "notes": noted}
    missing = [k for k, v in done.items() if not v]
    if unmirrored:
        missing.append(f"mirror ({unmirrored} event(s))")
    state = (
        f"merge commit {p.merge_commit[:12]} is on {p.target_branch}"
        if landed
        else f"merge commit {p.merge_commit[:12]} never reached {p.target_branch}"
    )
    finding = Finding(
        "interrupted promotion",
        f"promotion of {p.skill_name} v{p.version} ({p.id[:8]}) stopped: {state}; "
        f"missing: {', '.join(missing) or 'nothing'}",
    )
    report.findings.append(finding)
    if not landed:
        finding.repair = "roll back: nothing visible happened; remove the journal and promote again"
        if repair:
            pending_path(forge).unlink(missing_ok=True)
            finding.repaired = True
        return
    finding.repair = "complete the promotion: " + ", ".join(missing or ["clean up"])
    if repair:
        signer = _signer(forge)
        if signer is None:
            finding.repair += " (needs your signing key: configure it and run doctor --repair again)"
            return
        pending.steps = [s for s in ("merge", "tag", "ledger", "notes") if done.get(s)]
        finish(forge, pending, signer)
        finding.repaired = True


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
            with ledger.transaction(forge.actor) as txn:
                txn.record(
                    EventKind.BUILD_FINISHED,
                    build.id,
                    {
                        "build_id": build.id,
                        "status": BuildStatus.FAILED.value,
                        "commit_id": commit,
                        "summary": "abandoned: the build process was interrupted (closed by git kavi doctor)",
                        "finished_at": now_iso(),
                    },
                )
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
    from kavi.forge.init import NOTES_REF
    from kavi.forge.promote import _notes, _tag

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
            if repair and tag is None and (signer := _signer(forge)) is not None:
                _tag(forge, p, signer)
                finding.repaired = True
        if note_problem(repo, repo.ref_target(NOTES_REF), p.merge_commit, f"Kavi-Promotion: {p.id}"):
            finding = Finding(
                "promotion notes",
                f"no promotion note on {p.merge_commit[:12]} ({p.tag_name})",
                "write the signed notes",
            )
            report.findings.append(finding)
            if repair and (signer := _signer(forge)) is not None:
                _notes(forge, p, signer)
                finding.repaired = True


def check_ledger(forge: Forge, report: DoctorReport, repair: bool) -> None:
    from kavi.artifacts.vault import atomic_write
    from kavi.forge.checks import SYNC_HINT, artifact_state, unmirrored_warning
    from kavi.gitstore.mirror import LEDGER_REF, read_artifact

    report.checked.append("ledger journal, mirror and vault")
    ledger = forge.ledger
    for problem in ledger.verify_chain():
        report.findings.append(
            Finding("ledger journal", problem, "restore the ledger: git kavi ledger import")
        )
    mirrors = ledger.mirror_commits()
    tip = forge.repo.ref_target(LEDGER_REF)
    if mirrors:
        last = mirrors[max(mirrors)]
        if tip != last:
            report.findings.append(
                Finding(
                    "ledger mirror",
                    f"{LEDGER_REF} is at {(tip or 'nothing')[:12]} but event #{max(mirrors)} "
                    f"was mirrored as {last[:12]}",
                    "fetch the mirror or investigate a rewrite",
                )
            )
    pending = unmirrored_warning(ledger)
    if pending:
        report.findings.append(Finding("ledger mirror", pending, SYNC_HINT, warning=True))
    for artifact in ledger.artifacts():
        state = artifact_state(forge, artifact, tip)
        if state.ok:
            continue
        finding = Finding(
            "artifact",
            f"{artifact.path}: {state.detail}",
            "restore it from refs/kavi/ledger" if state.restorable else "",
        )
        report.findings.append(finding)
        if repair and tip is not None and state.restorable:
            data = read_artifact(forge.repo, tip, artifact.blake3)
            if data is not None:
                atomic_write(forge.workdir / artifact.path, data)
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


def doctor(forge: Forge, *, repair: bool) -> DoctorReport:
    report = DoctorReport()
    check_pending_promotion(forge, report, repair)
    check_builds(forge, report, repair)
    check_promotions(forge, report, repair)
    check_ledger(forge, report, repair)
    check_registry(forge, report)
    running = {b.id for b in forge.ledger.unfinished_builds()}
    check_sandboxes(forge, report, repair, running)
    return report
