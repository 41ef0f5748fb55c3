"""``git kavi audit [<skill>]``: the chain of custody, every signature checked, every hash re-computed.

For each skill (or the one named): the proposal and its SKILL_SPEC, the promoted build
(packet, log, build note), the verification bound to the build commit (report, note),
every promotion (merge commit signature, tag signature and what it binds, the skill
blob in the merge tree, the file on disk, the registry entry, the promotion note), any
revocation, the runs, and the ledger-mirror commits that carry these events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kavi.forge.context import Forge
from kavi.hashing import blake3_hex, sha256_hex
from kavi.ledger.models import Artifact, Promotion


@dataclass
class Check:
    what: str
    ok: bool
    detail: str = ""

    def line(self) -> str:
        return f"{'✓' if self.ok else '✗'} {self.what}" + (f" — {self.detail}" if self.detail else "")


@dataclass
class Section:
    title: str
    checks: list[Check] = field(default_factory=list)

    def add(self, what: str, ok: bool, detail: str = "") -> None:
        self.checks.append(Check(what, ok, detail))


class Auditor:
    def __init__(self, forge: Forge) -> None:
        from kavi.forge.init import NOTES_REF
        from kavi.gitstore.mirror import LEDGER_REF
        from kavi.gitstore.trust import SignersAt

        self.forge = forge
        self.repo = forge.repo
        self.ledger = forge.ledger
        self.signers_at = SignersAt(self.repo)
        self.notes_tip = self.repo.ref_target(NOTES_REF)
        self.mirror_tip = self.repo.ref_target(LEDGER_REF)
        self.target_tip = self.repo.branch_tip(forge.committed_config.target_branch)
        self._mirror_sig: dict[str, str | None] = {}

    # -- helpers -------------------------------------------------------------------

    def artifact(self, section: Section, artifact_id: str | None, label: str) -> None:
        a: Artifact | None = self.ledger.artifact(artifact_id) if artifact_id else None
        if a is None:
            section.add(f"{label} artifact", False, "not recorded")
            return
        try:
            data = (self.forge.workdir / a.path).read_bytes()
        except OSError:
            section.add(f"{label} {a.path}", False, "file missing (restore: git kavi ledger import)")
            return
        ok = blake3_hex(data) == a.blake3 and sha256_hex(data) == a.sha256
        section.add(f"{label} {a.path}", ok, f"blake3 {a.blake3[:16]}…" if ok else "hash mismatch (edited)")

    def note(self, section: Section, annotated: str, needle: str, label: str) -> None:
        from kavi.gitstore.objects import read_note

        text = read_note(self.repo, self.notes_tip, annotated) if annotated else None
        section.add(label, bool(text and needle in text), "" if text else "no note (git log --notes=kavi)")

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

    def promotion(self, p: Promotion) -> Section:
        from kavi.gitstore.objects import read_tag
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
        s.add(f"merge is on {p.target_branch}", on_target)
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
            s.add("tag binds the merge", bool(tag and tag.target == p.merge_commit))
        self.note(s, p.merge_commit, f"Kavi-Promotion: {p.id}", "promotion note on the merge")
        self.artifact(s, p.record_artifact_id, "PROMOTION_RECORD")
        return s

    def skill(self, name: str) -> list[Section]:
        from kavi.forge.registry import current_promotions, entry_for, parse_registry

        ledger = self.ledger
        proposals = [p for p in ledger.proposals() if p.name == name]
        promotions = ledger.promotions(name)
        sections: list[Section] = []
        current = current_promotions(ledger).get(name)
        for proposal in proposals:
            s = Section(
                f"proposal {proposal.id} [{proposal.status.value}] {proposal.side_effect_class.value}"
            )
            self.artifact(s, proposal.spec_artifact_id, "SKILL_SPEC")
            self.mirrored(s, proposal.id, "proposal")
            sections.append(s)
            promoted_builds = {p.build_id for p in promotions if p.proposal_id == proposal.id}
            for build in ledger.builds_for(proposal.id):
                if build.id not in promoted_builds and build.status.value != "FAILED":
                    continue
                commit = (build.commit_id or "-")[:12]
                b = Section(
                    f"build #{build.attempt_number} {build.id[:8]} {build.status.value} "
                    f"({build.backend}) @ {commit}"
                )
                self.artifact(b, build.packet_artifact_id, "BUILD_PACKET")
                self.artifact(b, build.log_artifact_id, "BUILD_LOG")
                if build.id in promoted_builds:
                    self.note(
                        b, build.commit_id or "", f"Kavi-Build: {build.id}", "build note on the build commit"
                    )
                sections.append(b)
            promoted_verifications = {p.verification_id for p in promotions}
            for v in ledger.verifications_for(proposal.id):
                if v.id not in promoted_verifications:
                    continue
                vs = Section(f"verification {v.id[:8]} {v.status.value} @ {v.commit_id[:12]}")
                build = ledger.build(v.build_id)
                vs.add("bound to the build commit", v.commit_id == build.commit_id)
                self.artifact(vs, v.report_artifact_id, "VERIFICATION_REPORT")
                self.note(
                    vs, v.commit_id, f"Kavi-Verification: {v.id}", "verification note on the build commit"
                )
                sections.append(vs)
        for p in promotions:
            sections.append(self.promotion(p))
        if current is not None:
            cur = Section(f"in force: {name} v{current.version}")
            path = self.forge.workdir / current.skill_path
            try:
                data = path.read_bytes()
                cur.add(
                    f"{current.skill_path} matches the promotion", sha256_hex(data) == current.skill_sha256
                )
            except OSError:
                cur.add(f"{current.skill_path}", False, "missing")
            rel = f"{self.forge.config.skills_dir}/registry.yaml"
            try:
                reg = parse_registry((self.forge.workdir / rel).read_text(), source=rel)
                expected = entry_for(current, ledger.proposal(current.proposal_id))
                cur.add(f"{rel} agrees with the ledger", reg.skills.get(name) == expected)
            except Exception as exc:
                cur.add(f"{rel}", False, str(exc))
            sections.append(cur)
        for r in ledger.revocations(name):
            rs = Section(f"revocation {r.id[:8]} by {r.revoked_by}: {r.reason}")
            if self.repo.has_object(r.commit_id):
                info = self.repo.commit(r.commit_id)
                parent = info.parents[0] if info.parents else None
                self.commit_signature(rs, r.commit_id, parent, f"revocation commit {r.commit_id[:12]} signed")
            else:
                rs.add("revocation commit", False, "missing")
            sections.append(rs)
        runs = ledger.runs(name)
        if runs:
            rs = Section(f"runs ({len(runs)})")
            for run in runs[-10:]:
                a = ledger.artifact(run.artifact_id or "")
                ok = a is not None and (self.forge.workdir / a.path).exists()
                rs.add(
                    f"run {run.id[:8]} {run.status.value} at {run.started_at[:19]}",
                    ok,
                    "" if ok else "record missing",
                )
            sections.append(rs)
        return sections

    def mirrored(self, section: Section, subject: str, label: str) -> None:
        from kavi.gitstore.objects import trailers
        from kavi.gitstore.trust import commit_verdict

        events = [e for e in self.ledger.events() if e.subject_id == subject]
        mirrors = self.ledger.mirror_commits()
        missing = [e.seq for e in events if e.seq not in mirrors]
        if missing:
            section.add(
                f"{label} events mirrored to refs/kavi/ledger",
                False,
                f"not yet: #{', #'.join(map(str, missing))}",
            )
            return
        for e in events:
            commit = mirrors[e.seq]
            if commit not in self._mirror_sig:
                if not self.repo.has_object(commit):
                    self._mirror_sig[commit] = "mirror commit missing"
                else:
                    info = self.repo.commit(commit)
                    gov = trailers(info.message).get("Kavi-Governance", "")
                    verdict = commit_verdict(self.repo, commit, self.signers_at(gov) if gov else "")
                    self._mirror_sig[commit] = None if verdict.ok else verdict.detail
            problem = self._mirror_sig[commit]
            section.add(
                f"ledger event #{e.seq} {e.kind} mirrored in {commit[:12]}", problem is None, problem or ""
            )


def audit(forge: Forge, skill: str | None) -> dict[str, Any]:
    ledger = forge.ledger
    names = [skill] if skill else sorted({p.name for p in ledger.proposals()})
    auditor = Auditor(forge)
    # the file itself first: page corruption can hide below an intact-looking hash chain
    chain_problems = [f"SQLite integrity_check: {p}" for p in ledger.integrity()] + ledger.verify_chain()
    report: dict[str, Any] = {
        "skills": {},
        "ledger_chain_ok": not chain_problems,
        "ledger_problems": chain_problems,
    }
    ok = not chain_problems
    for name in names:
        sections = auditor.skill(name)
        report["skills"][name] = [
            {"title": s.title, "checks": [c.__dict__ for c in s.checks]} for s in sections
        ]
        ok = ok and all(c.ok for s in sections for c in s.checks)
    report["ok"] = ok
    return report


def render(report: dict[str, Any]) -> str:
    chain = (
        "✓ file sound, hash chain intact"
        if report["ledger_chain_ok"]
        else "✗ " + "; ".join(report["ledger_problems"])
    )
    lines = [f"ledger journal: {chain}"]
    for name, sections in report["skills"].items():
        lines.append(f"\n== {name} ==")
        for s in sections:
            lines.append(f"  {s['title']}")
            for c in s["checks"]:
                lines.append("    " + Check(**c).line())
    lines.append(f"\n{'audit passed' if report['ok'] else 'audit FAILED'}")
    return "\n".join(lines)
