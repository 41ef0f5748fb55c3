"""``git kavi audit [<skill>]``: the chain of custody, every signature checked, every hash re-computed.

First the trust: the clone's pinned root (forge id, key fingerprints) and whether every
commit of the target branch is sanctioned from it (the rule the server hook applies,
:mod:`kavi.forge.trust`). Then, for each skill (or the one named — an unknown name is a
usage error): each proposal and its SKILL_SPEC, **every** build (failed ones too: packet,
log, and the build note of a promoted one), **every** verification (report, binding to
its build commit, the note of a promoted one), every promotion (merge commit signature,
tag signature and what it binds, the skill blob in the merge tree, the file on disk, the
registry entry, the promotion note), any revocation, the runs, and the ledger-mirror
commits that carry these events.

A check fails (exit 1) or passes; events not yet mirrored are a *warning* naming
``git kavi ledger sync`` — publishing them is one command, not a broken chain. The
checks ``doctor`` also makes are the same functions (:mod:`kavi.forge.checks`). With a
skill named, the journal check covers that skill's events (each re-hashed, and equal to
its signed mirror commit): the cost follows the skill, not the ledger's length.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kavi.forge.checks import artifact_state
from kavi.forge.context import Forge
from kavi.hashing import sha256_hex
from kavi.ledger.models import Artifact, Build, Promotion, Verification


@dataclass
class Check:
    what: str
    ok: bool
    detail: str = ""
    warning: bool = False  # passes, but asks for an action (e.g. `git kavi ledger sync`)

    def line(self) -> str:
        mark = "!" if self.warning else "✓" if self.ok else "✗"
        return f"{mark} {self.what}" + (f" — {self.detail}" if self.detail else "")


@dataclass
class Section:
    title: str
    checks: list[Check] = field(default_factory=list)

    def add(self, what: str, ok: bool, detail: str = "", *, warning: bool = False) -> None:
        self.checks.append(Check(what, ok, detail, warning))


class Auditor:
    def __init__(self, forge: Forge) -> None:
        from kavi.forge.init import NOTES_REF
        from kavi.forge.trust import record_judge, trust_state
        from kavi.gitstore.mirror import LEDGER_REF
        from kavi.gitstore.trust import SignersAt

        self.state = trust_state(forge)
        self.records = record_judge(forge)
        self.forge = forge
        self.repo = forge.repo
        self.ledger = forge.ledger
        self.signers_at = SignersAt(self.repo)
        self.notes_tip = self.repo.ref_target(NOTES_REF)
        self.mirror_tip = self.repo.ref_target(LEDGER_REF)
        self.target_tip = self.state.governing
        self._mirror_sig: dict[str, str | None] = {}

    # -- helpers -------------------------------------------------------------------

    def artifact(self, section: Section, artifact_id: str | None, label: str) -> None:
        from kavi.forge.checks import artifact_state

        a: Artifact | None = self.ledger.artifact(artifact_id) if artifact_id else None
        if a is None:
            section.add(f"{label} artifact", False, "not recorded")
            return
        state = artifact_state(self.forge, a, self.mirror_tip)
        section.add(f"{label} {a.path}", state.ok, state.detail)

    def note(self, section: Section, annotated: str, needle: str, label: str) -> None:
        from kavi.forge.checks import note_problem

        problem = note_problem(self.repo, self.notes_tip, annotated, needle)
        section.add(label, problem is None, problem or "")

    def commit_signature(self, section: Section, commit: str, trust_commit: str | None, label: str) -> None:
        from kavi.gitstore.trust import commit_verdict

        allowed = self.signers_at(trust_commit) if trust_commit else ""
        verdict = commit_verdict(self.repo, commit, allowed)
        section.add(
            label,
            verdict.ok,
            f"{verdict.principal} {verdict.key_fingerprint}" if verdict.ok else verdict.detail,
        )

    # -- sections --------------------------------------------------------------------

    def trust(self, skill: str | None = None) -> Section:
        """The trust root and the branch's history; the notes records of every skill, or
        (``skill``) of that skill's promotions and revocations only."""
        from kavi.forge.trust import fingerprints

        state = self.state
        s = Section(f"trust: {state.branch} from the pinned root")
        if state.root is None or state.forge_id is None:
            has_promotions = bool(self.ledger.promotions())
            s.add("trust root", not has_promotions, "this forge has no key yet: nothing can be trusted")
            return s
        keys = ", ".join(f"{fp} {who}" for fp, who in fingerprints(state.root.signers))
        s.add(f"root pinned: forge {state.forge_id[:12]}", True, keys)
        if state.problem is None:
            s.add(f"every commit of {state.branch} sanctioned ({(state.tip or '-')[:12]})", True)
        else:
            p = state.problem
            s.add(
                f"commit {(p.commit or '-')[:12]} of {state.branch} is not sanctioned",
                False,
                f"{p.rule}: {p.why}",
            )
        self.notes_records(s, skill)
        return s

    def notes_records(self, s: Section, skill: str | None = None) -> None:
        """Every commit of refs/notes/kavi is a record of this forge (the hook's rule) — or,
        for one skill, every one that names its promotions or revocations (the cost of
        auditing a skill follows its own records, not the forge's history)."""
        if self.notes_tip is None:
            return
        commits = self.repo.walk_new_commits(self.notes_tip, [])
        messages = {c: self.repo.commit(c).message for c in commits}
        what = "signed record(s) of this forge"
        if skill is not None:
            needles = [f"Kavi-Promotion: {p.id}" for p in self.ledger.promotions(skill)]
            needles += [f"Kavi-Revocation: {r.id}" for r in self.ledger.revocations(skill)]
            commits = [c for c in commits if any(n in messages[c] for n in needles)]
            what = f"signed record(s) of {skill}, of this forge"
        self.records.last_position = None
        self.records.prefetch({c: messages[c] for c in commits})
        for commit in commits:
            found = self.records.problem(commit, messages[commit])
            if found is not None:
                s.add(f"notes commit {commit[:12]} is a record of this forge", False, found[1])
                return
        s.add(f"refs/notes/kavi: {len(commits)} {what}", True)

    def promotion(self, p: Promotion) -> Section:
        from kavi.forge.checks import tag_problem
        from kavi.gitstore.objects import read_tag, trailers
        from kavi.gitstore.trust import tag_verdict

        s = Section(f"promotion v{p.version} ({p.tag_name}) by {p.approved_by} at {p.created_at[:19]}")
        repo = self.repo
        if not repo.has_object(p.merge_commit):
            s.add("merge commit", False, f"{p.merge_commit} not in this repository")
            return s
        info = repo.commit(p.merge_commit)
        parent = info.parents[0] if info.parents else None
        self.commit_signature(
            s, p.merge_commit, parent, f"merge {p.merge_commit[:12]} signed by a key trusted before it"
        )
        on_target = self.target_tip is not None and repo.is_ancestor(p.merge_commit, self.target_tip)
        s.add(f"merge is in the sanctioned history of {p.target_branch}", on_target)
        entry = repo.entry(p.merge_commit, p.skill_path)
        s.add(
            f"merge tree holds {p.skill_path} blob {p.skill_blob[:12]}",
            bool(entry and entry.oid == p.skill_blob),
        )
        tag_oid = repo.ref_target(f"refs/tags/{p.tag_name}")
        if tag_oid is None:
            s.add(f"tag {p.tag_name}", False, "missing")
        else:
            verdict = tag_verdict(repo, tag_oid, self.signers_at(parent) if parent else "")
            s.add(f"tag {p.tag_name} signed", verdict.ok, verdict.principal or verdict.detail)
            tag = read_tag(repo, tag_oid)
            problem = tag_problem(repo, p)
            s.add("tag binds the merge", problem is None, problem or "")
            forge = trailers(tag.message).get("Kavi-Forge") if tag else None
            s.add(
                "tag belongs to this forge", forge is not None and forge == self.state.forge_id, forge or ""
            )
        self.note(s, p.merge_commit, f"Kavi-Promotion: {p.id}", "promotion note on the merge")
        self.artifact(s, p.record_artifact_id, "PROMOTION_RECORD")
        return s

    def skill(self, name: str) -> list[Section]:
        ledger = self.ledger
        proposals = ledger.proposals_named(name)
        promotions = ledger.promotions(name)
        promoted_builds = {p.build_id for p in promotions}
        promoted_verifications = {p.verification_id for p in promotions}
        sections: list[Section] = []
        for proposal in proposals:
            s = Section(
                f"proposal {proposal.id} [{proposal.status.value}] {proposal.side_effect_class.value}"
            )
            self.artifact(s, proposal.spec_artifact_id, "SKILL_SPEC")
            builds = ledger.builds_for(proposal.id)
            verifications = ledger.verifications_for(proposal.id)
            subjects = [proposal.id, *(b.id for b in builds), *(v.id for v in verifications)]
            self.mirrored(s, subjects, "proposal, build and verification")
            sections.append(s)
            by_build: dict[str, list[Verification]] = {}
            for v in verifications:
                by_build.setdefault(v.build_id, []).append(v)
            for build in builds:  # every attempt, failed ones included
                sections.append(self.build(build, build.id in promoted_builds))
                for v in by_build.get(build.id, []):
                    sections.append(self.verification(v, build, v.id in promoted_verifications))
        for p in promotions:
            sections.append(self.promotion(p))
        current = ledger.current_promotion(name)
        if current is not None:
            sections.append(self.in_force(name, current))
        for r in ledger.revocations(name):
            rs = Section(f"revocation {r.id[:8]} by {r.revoked_by}: {r.reason}")
            if self.repo.has_object(r.commit_id):
                info = self.repo.commit(r.commit_id)
                parent = info.parents[0] if info.parents else None
                self.commit_signature(rs, r.commit_id, parent, f"revocation commit {r.commit_id[:12]} signed")
            else:
                rs.add("revocation commit", False, "missing")
            sections.append(rs)
        total, runs = ledger.recent_runs(name, limit=10)
        if total:
            rs = Section(f"runs ({total}{', the last 10' if total > 10 else ''})")
            for run in runs:
                a = ledger.artifact(run.artifact_id or "")
                state = artifact_state(self.forge, a, self.mirror_tip) if a is not None else None
                digests = ", ".join(f"{k} sha256 {v[:12]}…" for k, v in sorted(run.sealed.items()))
                rs.add(
                    f"run {run.id[:8]} {run.status.value} at {run.started_at[:19]}",
                    state is not None and state.ok,
                    (digests or (state.detail if state else "")) if state and state.ok else "record missing",
                )
            sections.append(rs)
        return sections

    def build(self, build: Build, promoted: bool) -> Section:
        commit = (build.commit_id or "-")[:12]
        b = Section(
            f"build #{build.attempt_number} {build.id[:8]} {build.status.value} ({build.backend}) @ {commit}"
            + (" — promoted" if promoted else "")
        )
        if build.summary and build.status.value == "FAILED":
            b.add("outcome recorded", True, build.summary[:200])
        self.artifact(b, build.packet_artifact_id, "BUILD_PACKET")
        if build.status.value != "STARTED":
            self.artifact(b, build.log_artifact_id, "BUILD_LOG")
        else:
            b.add(
                "build finished", False, "never finished (interrupted): `git kavi doctor --repair` closes it"
            )
        if promoted:
            self.note(b, build.commit_id or "", f"Kavi-Build: {build.id}", "build note on the build commit")
        return b

    def verification(self, v: Verification, build: Build, promoted: bool) -> Section:
        failed = [n for n, g in v.gates.items() if not g.ok and not g.skipped]
        vs = Section(
            f"verification {v.id[:8]} {v.status.value} @ {v.commit_id[:12]}"
            + (f" (failed: {', '.join(failed)})" if failed else "")
            + (" — promoted" if promoted else "")
        )
        vs.add("bound to the build commit", v.commit_id == build.commit_id)
        self.artifact(vs, v.report_artifact_id, "VERIFICATION_REPORT")
        if promoted:
            self.note(vs, v.commit_id, f"Kavi-Verification: {v.id}", "verification note on the build commit")
        return vs

    def in_force(self, name: str, current: Promotion) -> Section:
        from kavi.forge.checks import registry_problems

        cur = Section(f"in force: {name} v{current.version}")
        path = self.forge.workdir / current.skill_path
        try:
            data = path.read_bytes()
            cur.add(f"{current.skill_path} matches the promotion", sha256_hex(data) == current.skill_sha256)
        except OSError:
            cur.add(f"{current.skill_path}", False, "missing")
        rel, problems = registry_problems(self.forge)
        problem = problems.get(name) or problems.get("*")
        cur.add(f"{rel} agrees with the ledger", problem is None, problem or "")
        return cur

    def mirrored(self, section: Section, subjects: list[str], label: str) -> None:
        """Each event about ``subjects`` is on ``refs/kavi/ledger`` as a record of this forge,
        and re-hashes to what its signed mirror commit carries; one not mirrored yet is a
        warning naming ``git kavi ledger sync``."""
        from kavi.forge.checks import SYNC_HINT
        from kavi.gitstore.objects import trailers
        from kavi.hashing import event_hash

        events = self.ledger.events_of(subjects)
        missing = [e.seq for e, commit in events if commit is None]
        for e, commit in events:
            if event_hash(e.model_dump(mode="json")) != e.hash:
                section.add(f"ledger event #{e.seq} {e.kind}", False, "content does not match its hash")
            if commit is None:
                continue
            if commit not in self._mirror_sig:
                if not self.repo.has_object(commit):
                    self._mirror_sig[commit] = "mirror commit missing"
                else:
                    # the record rule of the hook and of `ledger import` (forge, governance,
                    # signer); the order of records is checked on import, not here
                    message = self.repo.commit(commit).message
                    self.records.last_position = None
                    found = self.records.problem(commit, message)
                    if found is None and trailers(message).get("Kavi-Event-Hash") != e.hash:
                        found = ("event", "carries another event than this ledger's")
                    self._mirror_sig[commit] = None if found is None else found[1]
            problem = self._mirror_sig[commit]
            section.add(
                f"ledger event #{e.seq} {e.kind} mirrored in {commit[:12]}", problem is None, problem or ""
            )
        if missing:
            section.add(
                f"{label} events mirrored to refs/kavi/ledger",
                True,
                f"not yet: #{', #'.join(map(str, missing))} — run `{SYNC_HINT}`",
                warning=True,
            )


def audit(forge: Forge, skill: str | None) -> dict[str, Any]:
    from kavi.forge.checks import unmirrored_warning

    ledger = forge.ledger
    # the file itself first: page corruption can hide below an intact-looking hash chain,
    # and nothing read from a damaged file can be trusted (or read at all)
    damaged = [f"SQLite integrity_check: {p}" for p in ledger.integrity()] if skill is None else []
    if damaged:
        return {
            "skills": {},
            "ledger_chain_ok": False,
            "ledger_problems": [
                *damaged,
                "the skills were not audited: restore the ledger first (`git kavi doctor --repair`)",
            ],
            "ledger_chain": "every event",
            "unmirrored_warning": None,
            "warnings": [],
            "ok": False,
        }
    if skill is not None and not ledger.proposals_named(skill) and not ledger.promotions(skill):
        from kavi.errors import NotFoundError

        raise NotFoundError(
            f"no skill named {skill!r} in this ledger",
            why="audit checks the records of a skill this forge has proposed or promoted",
            remedy="see the names with `git kavi list-proposals` (or run `git kavi audit` for every skill)",
        )
    names = [skill] if skill else ledger.skill_names()
    auditor = Auditor(forge)
    chain_problems = ledger.verify_chain() if skill is None else []
    report: dict[str, Any] = {
        "skills": {},
        "ledger_chain_ok": not chain_problems,
        "ledger_problems": chain_problems,
        "ledger_chain": "every event" if skill is None else f"the events of {skill}",
    }
    trust = auditor.trust(skill)
    report["trust"] = {"title": trust.title, "checks": [c.__dict__ for c in trust.checks]}
    ok = not chain_problems and all(c.ok for c in trust.checks)
    warnings = [f"{trust.title}: {c.what} — {c.detail}" for c in trust.checks if c.warning]
    for name in names:
        sections = auditor.skill(name)
        report["skills"][name] = [
            {"title": s.title, "checks": [c.__dict__ for c in s.checks]} for s in sections
        ]
        ok = ok and all(c.ok for s in sections for c in s.checks)
        warnings += [f"{name}: {c.what} — {c.detail}" for s in sections for c in s.checks if c.warning]
    pending = unmirrored_warning(ledger)
    report["unmirrored_warning"] = pending
    report["warnings"] = ([pending] if pending else []) + warnings
    report["ok"] = ok
    return report


def render(report: dict[str, Any]) -> str:
    if report["ledger_chain_ok"]:
        chain = "✓ file sound, hash chain intact" + (
            "" if report.get("ledger_chain") == "every event" else f" ({report.get('ledger_chain')})"
        )
    else:
        chain = "✗ " + "; ".join(report["ledger_problems"])
    lines = [f"ledger journal: {chain}"]
    if report.get("unmirrored_warning"):
        lines.append(f"! {report['unmirrored_warning']}")
    trust = report.get("trust")
    if trust:
        lines.append(f"\n{trust['title']}")
        lines += ["    " + Check(**c).line() for c in trust["checks"]]
    for name, sections in report["skills"].items():
        lines.append(f"\n== {name} ==")
        for s in sections:
            lines.append(f"  {s['title']}")
            for c in s["checks"]:
                lines.append("    " + Check(**c).line())
    count = len(report.get("warnings") or [])
    tail = f" ({count} warning{'s' if count != 1 else ''})" if count else ""
    lines.append(f"\n{'audit passed' if report['ok'] else 'audit FAILED'}{tail}")
    return "\n".join(lines)
