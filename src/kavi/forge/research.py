"""``research-skill``: why did an attempt fail, and what should the next one know?

1. the subject: a failed build, a failed verification, or a proposal's latest failed
   attempt;
2. the deterministic classification (:mod:`kavi.forge.classify`) over what the ledger
   and the artifacts hold;
3. optionally the advisor (:mod:`kavi.forge.advisor`), asked with a bounded, redacted
   text; its answer is checked for widening (:mod:`kavi.forge.widening`) and never run;
4. a RESEARCH_NOTE artifact (front matter, findings, advice, hint, wikilinks to the
   packet, the build log and the verification report) and a ``research.recorded`` event.

:func:`packet_feedback` turns the latest research of an attempt (or, without one, its
classification) into what BUILD_PACKET_(N+1) carries.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass

from kavi.clock import now_iso
from kavi.errors import AmbiguousIdError, NotFoundError, StateError, UsageError
from kavi.forge.classify import Classification, classify_build, classify_verification
from kavi.forge.context import Forge
from kavi.forge.packet import Feedback
from kavi.forge.spec import SkillPaths, skill_paths
from kavi.ledger.models import (
    AdviceStatus,
    Artifact,
    ArtifactKind,
    Build,
    BuildStatus,
    Proposal,
    Record,
    Research,
    Verification,
    VerificationStatus,
)
from kavi.ledger.reducer import EventKind
from kavi.secrets import redact, secret_values
from kavi.textsafe import printable

MAX_PROMPT_FACTS = 40
EXCERPT_RADIUS = 6


@dataclass(frozen=True)
class Subject:
    proposal: Proposal
    build: Build
    verification: Verification | None

    @property
    def label(self) -> str:
        if self.verification is not None:
            return f"verification {self.verification.id[:8]} of attempt {self.build.attempt_number}"
        return f"build {self.build.id[:8]} (attempt {self.build.attempt_number})"


@dataclass(frozen=True)
class ResearchOutcome:
    research: Research
    subject: Subject
    classification: Classification
    note: Artifact


# -- what to research ----------------------------------------------------------------


def _failure_of(forge: Forge, proposal: Proposal, build: Build) -> Subject:
    """The failure an attempt ended in: the build itself, or its latest verification."""
    short = proposal.id[:8]
    if build.status is BuildStatus.STARTED:
        raise StateError(
            f"build {build.id[:8]} has not finished",
            why="it is still running, or Kavi was stopped while it ran",
            remedy="wait for it to finish; `git kavi doctor` shows builds an interruption left",
        )
    if build.status is BuildStatus.FAILED:
        return Subject(proposal, build, None)
    checked = forge.ledger.verifications_of_build(build.id)
    if not checked:
        raise StateError(
            f"attempt {build.attempt_number} ({build.id[:8]}) built and is not verified yet",
            why="research explains a failure; this attempt has not failed",
            remedy=f"verify it first: `git kavi verify-skill {short} --build {build.id[:8]}`",
        )
    if checked[-1].status is VerificationStatus.PASSED:
        raise StateError(
            f"attempt {build.attempt_number} ({build.id[:8]}) passed verification",
            why="research explains a failure; this attempt did not fail",
            remedy=f"promote it: `git kavi promote-skill {short}`",
        )
    return Subject(proposal, build, checked[-1])


def resolve_subject(forge: Forge, ref: str) -> Subject:
    """A build, a verification or a proposal (id, unique prefix, or skill name)."""
    ledger = forge.ledger
    if ref.isidentifier() and not all(c in "0123456789abcdef" for c in ref.lower()):
        proposal = ledger.find_proposal(ref)
    else:
        found: list[tuple[str, Record]] = []
        models: tuple[tuple[type[Record], str], ...] = (
            (Build, "build"),
            (Verification, "verification"),
            (Proposal, "proposal"),
        )
        for model, what in models:
            try:
                found.append((what, ledger.resolve(model, ref, what=what)))
            except NotFoundError:
                continue
        if not found:
            raise NotFoundError(
                f"no build, verification or proposal with id {ref}",
                remedy="copy an id from `git kavi show <skill>`",
            )
        if len(found) > 1:
            raise AmbiguousIdError(
                f"id prefix {ref} matches a {' and a '.join(w for w, _ in found)}",
                remedy="give more characters of the id",
            )
        record = found[0][1]
        if isinstance(record, Verification):
            if record.status is VerificationStatus.PASSED:
                raise StateError(
                    f"verification {record.id[:8]} PASSED",
                    why="research explains a failure",
                    remedy=f"promote it: `git kavi promote-skill {record.proposal_id[:8]}`",
                )
            return Subject(ledger.proposal(record.proposal_id), ledger.build(record.build_id), record)
        if isinstance(record, Build):
            return _failure_of(forge, ledger.proposal(record.proposal_id), record)
        proposal = record if isinstance(record, Proposal) else ledger.find_proposal(ref)
    latest = ledger.latest_build(proposal.id)
    if latest is None:
        raise StateError(
            f"proposal {proposal.id[:8]} ({proposal.name}) has no build yet",
            why="research explains a failed attempt",
            remedy=f"build it first: `git kavi build-skill {proposal.id[:8]}`",
        )
    return _failure_of(forge, proposal, latest)


def classify_subject(forge: Forge, subject: Subject) -> Classification:
    config = forge.committed_config
    if subject.verification is not None:
        return classify_verification(subject.verification, config)
    log_text = _artifact_text(forge, subject.build.log_artifact_id)
    return classify_build(subject.build, config, log_text)


def _artifact_text(forge: Forge, artifact_id: str | None) -> str | None:
    from kavi.artifacts.vault import read_verified

    artifact = forge.ledger.artifact(artifact_id or "")
    data = read_verified(forge.workdir, artifact) if artifact else None
    return None if data is None else data.decode("utf-8", "replace")


def attempt_files(forge: Forge, build: Build, paths: SkillPaths) -> list[tuple[str, str]]:
    """The two allowed files as the attempt committed them (empty without a commit)."""
    if not build.commit_id:
        return []
    out = []
    for rel in paths.allowed:
        data = forge.repo.file_bytes(build.commit_id, rel)
        if data is not None:
            out.append((rel, data.decode("utf-8", "replace")))
    return out


# -- the advisor's input -------------------------------------------------------------


def _numbered(text: str, keep: set[int] | None) -> str:
    lines = text.splitlines()
    out: list[str] = []
    skipped = False
    for n, line in enumerate(lines, start=1):
        if keep is None or n in keep:
            out.append(f"{n:4}| {line}")
            skipped = False
        elif not skipped:
            out.append("    | …")
            skipped = True
    return "\n".join(out)


def advisor_prompt(
    subject: Subject,
    classification: Classification,
    files: list[tuple[str, str]],
    paths: SkillPaths,
    hint: str | None,
    limit: int,
) -> str:
    """What the advisor is told, within ``limit`` characters: the proposal, the facts,
    the failing files (whole, or windows around the facts' lines), the hint."""
    import json

    p = subject.proposal
    head = [
        "# Skill proposal (fixed)",
        f"- name: {p.name}",
        f"- description: {p.description}",
        f"- side-effect class: {p.side_effect_class.value}",
        f"- secrets: {', '.join(p.required_secrets) or 'none'}",
        f"- I/O schema: {json.dumps(p.io_schema)}",
        f"- the only files an attempt may write: {paths.skill_file}, {paths.test_file}",
        "",
        f"# Attempt {subject.build.attempt_number}: {classification.outcome} — {classification.kind.value}",
        "",
        "## Findings",
    ]
    facts = classification.facts[:MAX_PROMPT_FACTS]
    head += [f"- {f.where} [{f.gate} {f.rule or ''}] {f.message}" for f in facts]
    if len(classification.facts) > len(facts):
        head.append(f"- … {len(classification.facts) - len(facts)} more")
    tail = ["", "# Hint from a human", hint] if hint else []
    budget = limit - len("\n".join(head + tail)) - 200
    whole = [f"\n## {rel}\n{_numbered(text, None)}" for rel, text in files]
    if sum(map(len, whole)) > budget:
        lines_of: dict[str, set[int]] = {}
        for f in facts:
            if f.file and f.line:
                lines_of.setdefault(f.file, set()).update(
                    range(f.line - EXCERPT_RADIUS, f.line + EXCERPT_RADIUS + 1)
                )
        whole = [f"\n## {rel} (excerpts)\n{_numbered(text, lines_of.get(rel, set()))}" for rel, text in files]
    body = "\n".join(head) + "\n\n# Files of the attempt" + "".join(whole) + "\n".join(["", *tail])
    return body if len(body) <= limit else body[: limit - 20] + "\n[… cut by Kavi]"


# -- the note -------------------------------------------------------------------------


def _cell(text: str) -> str:
    return printable(text).replace("|", "\\|").replace("`", "'")


def _note_body(r: Research, subject: Subject, classification: Classification) -> str:
    b = subject.build
    lines = [
        f"- proposal: `{subject.proposal.id}` ({subject.proposal.name}, "
        f"{subject.proposal.side_effect_class.value})",
        f"- attempt: {b.attempt_number} — build `{b.id}` on `{b.branch_name}`"
        + (f" @ `{b.commit_id}`" if b.commit_id else ""),
        f"- outcome: {classification.outcome}",
        f"- failure kind: **{r.kind.value}**",
        "- security-class: " + ("**yes** — a human must review" if r.security else "no"),
        f"- {r.advice_notice}",
    ]
    lines += [f"  - {_cell(reason)}" for reason in r.security_reasons]
    lines += [
        "",
        "## Findings (deterministic)",
        "",
        "| where | gate | rule | kind | message |",
        "|---|---|---|---|---|",
    ]
    for f in r.facts:
        row = (f.where, f.gate, f.rule or "", f.kind.value + (" ⚠" if f.security else ""), f.message)
        lines.append("| " + " | ".join(_cell(c) for c in row) + " |")
    words = "\n".join(printable(f.words) for f in r.facts).replace("```", "'''")
    lines += ["", "The gates' own words:", "", "```text", words, "```"]
    if r.advice is not None:
        a = r.advice
        if r.advice_status is AdviceStatus.WIDENING:
            lines += ["", f"## Advice from {_cell(a.model)} — REJECTED: it would widen the proposal", ""]
            lines += [f"- {_cell(w)}" for w in r.widening]
            lines += ["", "It is kept here for the record and is not given to the next attempt:"]
        else:
            lines += [
                "",
                f"## Advice from {_cell(a.model)} (suggestions for the next attempt, not facts)",
                "",
            ]
        if a.diagnosis:
            lines += ["", f"> {printable(a.diagnosis)}", ""]
        lines += [f"- {printable(step)}" for step in a.steps]
        lines.append(
            f"- stated needs: class `{_cell(a.side_effect_class)}`, secrets {_cell(str(a.secrets))}, "
            f"files {_cell(str(a.files))}, I/O changes {_cell(str(a.io_schema_changes))}"
        )
    if r.hint:
        lines += ["", "## Hint from a human", "", *(f"> {printable(x)}" for x in r.hint.splitlines())]
    carried = ["the findings above with file:line"]
    if r.advice is not None and r.advice_status is AdviceStatus.OK:
        carried.append("the advice (marked as advice)")
    if r.hint:
        carried.append("the hint")
    lines += ["", "## What the next build packet carries", "", f"- {', '.join(carried)}"]
    lines.append(
        f"- the files attempt {b.attempt_number} wrote"
        if b.commit_id
        else "- (no files: nothing was committed)"
    )
    return "\n".join(lines)


def _links(forge: Forge, subject: Subject) -> list[str]:
    from kavi.artifacts.vault import artifact_stem

    name, b = subject.proposal.name, subject.build
    ledger = forge.ledger
    out = []
    for artifact_id, attempt in (
        (b.packet_artifact_id, b.attempt_number),
        (b.log_artifact_id, b.attempt_number),
    ):
        a = ledger.artifact(artifact_id or "")
        if a is not None:
            out.append(artifact_stem(a.kind, name, a.id, attempt))
    v = subject.verification
    report = ledger.artifact(v.report_artifact_id or "") if v else None
    if report is not None:
        out.append(artifact_stem(report.kind, name, report.id))
    return out


# -- research-skill -------------------------------------------------------------------


def research_skill(
    forge: Forge,
    ref: str,
    *,
    hint: str | None = None,
    advise: bool = True,
    subject: Subject | None = None,
) -> ResearchOutcome:
    from kavi.forge.advisor import ask_advisor
    from kavi.forge.widening import widening

    subject = subject or resolve_subject(forge, ref)
    hint = " ".join(hint.split()) if hint and hint.strip() else None
    if hint and len(hint) > 4000:
        raise UsageError("--hint is longer than 4000 characters", remedy="say it in fewer words")
    config = forge.committed_config
    paths = skill_paths(config, subject.proposal.name)
    advisor = config.research.advisor
    secrets = secret_values(
        os.environ,
        [
            *config.backends.credential_names(),
            *([advisor.api_key_env] if advisor and advisor.api_key_env else []),
            *(f"KAVI_SECRET_{s}" for s in subject.proposal.required_secrets),
        ],
    )
    classification = classify_subject(forge, subject)
    files = attempt_files(forge, subject.build, paths)
    prompt = ""
    if advise and advisor is not None:
        prompt = redact(
            advisor_prompt(subject, classification, files, paths, hint, advisor.max_input_chars), secrets
        )
    asked = ask_advisor(advisor, prompt, env=os.environ, enabled=advise)
    advice, status, wide = asked.advice, asked.status, []
    if advice is not None:
        advice = advice.model_validate_json(redact(advice.model_dump_json(), secrets))
        wide = widening(advice, subject.proposal, paths, config)
        if wide:
            status = AdviceStatus.WIDENING
    notice = asked.notice
    if wide:
        notice = f"advisor: {advice.model if advice else '?'} answered, REJECTED: it would widen the proposal"
    research_id = str(uuid.uuid4())
    research = Research(
        id=research_id,
        proposal_id=subject.proposal.id,
        build_id=subject.build.id,
        verification_id=subject.verification.id if subject.verification else None,
        attempt_number=subject.build.attempt_number,
        kind=classification.kind,
        security=classification.security,
        security_reasons=classification.security_reasons,
        facts=classification.facts,
        advice=advice,
        advice_status=status,
        advice_notice=notice,
        widening=wide,
        hint=hint,
        created_at=now_iso(),
    )
    name = subject.proposal.name
    vault = forge.vault(secrets)
    with vault.pending(), forge.ledger.transaction(forge.actor) as txn:
        note, _ = vault.write(
            ArtifactKind.RESEARCH_NOTE,
            name=name,
            related_id=research_id,
            title=f"RESEARCH_NOTE_{subject.build.attempt_number} {name} — {classification.kind.value}",
            body=_note_body(research, subject, classification),
            meta={
                "proposal_id": subject.proposal.id,
                "build_id": subject.build.id,
                "verification_id": research.verification_id,
                "research_id": research_id,
                "failure_kind": classification.kind.value,
                "security": research.security,
                "advice": status.value,
                "widening": bool(wide),
            },
            links=_links(forge, subject),
            attempt=subject.build.attempt_number,
        )
        txn.put(EventKind.ARTIFACT_RECORDED, note)
        research = research.model_copy(update={"note_artifact_id": note.id})
        txn.put(EventKind.RESEARCH_RECORDED, research)
    return ResearchOutcome(research, subject, classification, note)


# -- BUILD_PACKET_(N+1) ---------------------------------------------------------------


def packet_feedback(
    forge: Forge, proposal: Proposal, previous: Build | None, hint: str | None
) -> Feedback | None:
    """What the next packet carries from ``previous``: its latest research (findings,
    advice unless rejected, hint), or — never researched — its classification."""
    if previous is None:
        return None
    config = forge.committed_config
    paths = skill_paths(config, proposal.name)
    files = attempt_files(forge, previous, paths)
    hints = [hint] if hint else []
    researched = forge.ledger.researches_of_build(previous.id)
    if researched:
        r = researched[-1]
        failed_gates = list(dict.fromkeys(f.gate for f in r.facts))
        outcome = (
            f"verification FAILED: {', '.join(failed_gates)}"
            if r.verification_id
            else f"build {previous.status.value}"
        )
        return Feedback(
            attempt=previous.attempt_number,
            build_id=previous.id,
            outcome=outcome,
            kind=r.kind.value,
            facts=r.facts,
            advice=r.advice if r.advice_status is AdviceStatus.OK else None,
            hints=list(dict.fromkeys(h for h in (r.hint, *hints) if h)),
            files=files,
            research_id=r.id,
        )
    subject: Subject | None = None
    if previous.status is BuildStatus.FAILED:
        subject = Subject(proposal, previous, None)
    elif previous.status is BuildStatus.SUCCEEDED:
        checked = forge.ledger.verifications_of_build(previous.id)
        if checked and checked[-1].status is VerificationStatus.FAILED:
            subject = Subject(proposal, previous, checked[-1])
    if subject is None:  # not a failure: say what it was
        checked = forge.ledger.verifications_of_build(previous.id)
        outcome = f"build {previous.status.value}" + (
            f", verification {checked[-1].status.value}" if checked else ", not verified"
        )
        return Feedback(previous.attempt_number, previous.id, outcome, hints=hints, files=files)
    found = classify_subject(forge, subject)
    return Feedback(
        attempt=previous.attempt_number,
        build_id=previous.id,
        outcome=found.outcome,
        kind=found.kind.value,
        facts=found.facts,
        hints=hints,
        files=files,
    )
