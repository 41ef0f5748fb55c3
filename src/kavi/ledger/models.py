"""Typed ledger records. Everything stored (and everything mirrored into git) is one of these."""

from __future__ import annotations

from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from kavi.ledger.states import ProposalStatus
from kavi.policy.model import SideEffect


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class ArtifactKind(str, Enum):
    SKILL_SPEC = "SKILL_SPEC"
    BUILD_PACKET = "BUILD_PACKET"
    BUILD_LOG = "BUILD_LOG"
    VERIFICATION_REPORT = "VERIFICATION_REPORT"
    PROMOTION_RECORD = "PROMOTION_RECORD"
    RUN_RECORD = "RUN_RECORD"
    REVOCATION_RECORD = "REVOCATION_RECORD"
    RESEARCH_NOTE = "RESEARCH_NOTE"
    NOTE = "NOTE"


class BuildStatus(str, Enum):
    STARTED = "STARTED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class VerificationStatus(str, Enum):
    PASSED = "PASSED"
    FAILED = "FAILED"


class RunStatus(str, Enum):
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    REFUSED = "REFUSED"


class Proposal(Record):
    id: str
    name: str
    description: str
    io_schema: dict[str, dict[str, str]]
    side_effect_class: SideEffect
    required_secrets: list[str] = Field(default_factory=list)
    status: ProposalStatus = ProposalStatus.PROPOSED
    spec_artifact_id: str | None = None
    created_at: str
    updated_at: str


class Artifact(Record):
    id: str
    kind: ArtifactKind
    path: str  # relative to the forge working tree (vault_dir/…)
    sha256: str
    blake3: str
    size: int
    related_id: str
    created_at: str


class Violation(Record):
    path: str
    reason: str
    rule: str


class ToolAttempt(Record):
    """A tool call of a build agent that was refused: the build fails with it listed."""

    tool: str  # the tool's name, escaped, as the agent gave it
    input: str = ""  # a summary of its input: bounded, secrets redacted, escaped
    outcome: str  # not offered | unavailable | denied | outside the sandbox


class BuildUsage(Record):
    """What a build's backend consumed, as the backend reported it (None: not reported)."""

    cost_usd: float | None = None
    turns: int | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_creation_tokens: int | None = None
    duration_s: float | None = None
    model: str | None = None
    backend_version: str | None = None  # e.g. the Claude Code CLI's version

    def __add__(self, other: BuildUsage) -> BuildUsage:
        """The sum of two builds' usage (models and versions: the later one's)."""

        def plus(a: float | int | None, b: float | int | None) -> float | int | None:
            return b if a is None else a if b is None else a + b

        numbers = {
            name: plus(getattr(self, name), getattr(other, name))
            for name in (
                "cost_usd",
                "turns",
                "input_tokens",
                "output_tokens",
                "cache_read_tokens",
                "cache_creation_tokens",
                "duration_s",
            )
        }
        return BuildUsage.model_validate(
            {
                **numbers,
                "model": other.model or self.model,
                "backend_version": other.backend_version or self.backend_version,
            }
        )


class BuildOptions(Record):
    """How a build was asked for, so ``build-skill --retry`` and ``forge`` can repeat it."""

    from_dir: str | None = None  # files backend: the directory copied (absolute)
    timeout_seconds: float | None = None  # the --timeout given (None: the backend's default)
    hint: str | None = None  # the human's --hint for this attempt
    research_id: str | None = None  # the research note whose findings the packet carries
    forge_run_id: str | None = None  # the forge run that started this attempt


class Build(Record):
    id: str
    proposal_id: str
    attempt_number: int
    parent_build_id: str | None = None
    branch_name: str
    backend: str
    base_commit: str
    status: BuildStatus = BuildStatus.STARTED
    commit_id: str | None = None
    tree_id: str | None = None
    packet_artifact_id: str | None = None
    log_artifact_id: str | None = None
    summary: str = ""
    violations: list[Violation] = Field(default_factory=list)
    usage: BuildUsage = Field(default_factory=BuildUsage)
    tool_attempts: list[ToolAttempt] = Field(default_factory=list)
    started_at: str
    finished_at: str | None = None
    options: BuildOptions = Field(default_factory=BuildOptions)
    kept_ref: str | None = None  # after ``prune``: the ref that keeps the commit reachable


class GateResult(Record):
    ok: bool
    findings: list[str] = Field(default_factory=list)
    duration_s: float = 0.0
    tool_version: str = ""
    skipped: bool = False


class Verification(Record):
    id: str
    proposal_id: str
    build_id: str
    commit_id: str
    tree_id: str
    status: VerificationStatus
    gates: dict[str, GateResult]
    report_artifact_id: str | None = None
    created_at: str
    confinement: str | None = None  # how the generated tests were confined (or why not)

    def gate_ok(self, name: str) -> bool:
        gate = self.gates.get(name)
        return bool(gate and gate.ok)


class Promotion(Record):
    id: str
    proposal_id: str
    build_id: str
    verification_id: str
    skill_name: str
    version: int
    from_status: ProposalStatus
    to_status: ProposalStatus
    approved_by: str
    signing_key_fingerprint: str
    merge_commit: str
    target_branch: str
    tag_name: str
    skill_path: str
    test_path: str
    module: str
    class_name: str
    input_model: str
    output_model: str
    skill_sha256: str
    skill_blake3: str
    skill_blob: str
    test_blob: str
    registry_blob: str
    record_artifact_id: str | None = None
    created_at: str


class Revocation(Record):
    id: str
    skill_name: str
    proposal_id: str
    promotion_id: str
    reason: str
    revoked_by: str
    commit_id: str
    target_branch: str
    tag_name: str
    registry_blob: str | None = None
    created_at: str


class Run(Record):
    """One run of a TRUSTED skill. Its ``input``, ``output`` and (unless REFUSED) ``error``
    are sealed (:mod:`kavi.ledger.privacy`): the event that travels carries their SHA-256
    digests in ``sealed``; they are None in a clone the data never came to."""

    id: str
    skill_name: str
    version: int | None = None  # the promotion's version (None in runs recorded before v5)
    proposal_id: str
    promotion_id: str
    status: RunStatus
    input: dict[str, Any] | None = None
    output: dict[str, Any] | None = None
    error: str | None = None
    error_code: str | None = None  # e.g. KAVI-RUN-FAILED, KAVI-RUN-LIMIT, KAVI-POLICY
    sealed: dict[str, str] = Field(default_factory=dict)  # field → SHA-256 (kavi.ledger.privacy)
    artifact_id: str | None = None
    duration_s: float = 0.0
    started_at: str
    finished_at: str
    confinement: str | None = None  # how the operating system confined it (or why it did not)
    caller: str | None = None  # who asked: cli, mcp, …
    limit_exceeded: str | None = None  # the resource limit that ended it, if one did


class FailureKind(str, Enum):
    """What kind of failure an attempt ended in (see :mod:`kavi.forge.classify`)."""

    GATE_VIOLATION = "GATE_VIOLATION"
    TIMEOUT = "TIMEOUT"
    BACKEND_UNAVAILABLE = "BACKEND_UNAVAILABLE"
    BACKEND_REFUSED = "BACKEND_REFUSED"
    BACKEND_ERROR = "BACKEND_ERROR"
    BUDGET_EXCEEDED = "BUDGET_EXCEEDED"
    VERIFY_LINT = "VERIFY_LINT"
    VERIFY_TYPE = "VERIFY_TYPE"
    VERIFY_TEST = "VERIFY_TEST"
    VERIFY_POLICY = "VERIFY_POLICY"
    VERIFY_INVARIANT = "VERIFY_INVARIANT"
    RUNTIME_GUARD = "RUNTIME_GUARD"
    CONFINEMENT_VIOLATION = "CONFINEMENT_VIOLATION"
    SECRET_IN_OUTPUT = "SECRET_IN_OUTPUT"
    INTERRUPTED = "INTERRUPTED"
    UNKNOWN = "UNKNOWN"


class Fact(Record):
    """One classified finding, in the gate's own words and as structured facts."""

    kind: FailureKind
    gate: str  # scope, policy, invariants, ruff, mypy, pytest, backend, build
    file: str | None = None
    line: int | None = None
    rule: str | None = None
    message: str
    words: str  # the gate's (or backend's) own words, verbatim
    security: bool = False
    why_security: str | None = None

    @property
    def where(self) -> str:
        if not self.file:
            return "-"
        return f"{self.file}:{self.line}" if self.line else self.file


class Advice(Record):
    """What an advisory model suggested for the next attempt: data, never instructions."""

    model: str
    diagnosis: str
    steps: list[str] = Field(default_factory=list)
    # what the advisor says the skill needs; compared with the proposal (never applied)
    side_effect_class: str = ""
    secrets: list[str] = Field(default_factory=list)
    files: list[str] = Field(default_factory=list)
    io_schema_changes: list[str] = Field(default_factory=list)


class AdviceStatus(str, Enum):
    OK = "ok"
    OFF = "off"  # --no-advise
    NOT_CONFIGURED = "not-configured"
    UNAVAILABLE = "unavailable"
    TIMEOUT = "timeout"
    GARBAGE = "garbage"
    WIDENING = "widening"  # the answer would widen the proposal: kept for the record, not used


class Research(Record):
    id: str
    proposal_id: str
    build_id: str
    verification_id: str | None = None
    attempt_number: int
    kind: FailureKind
    security: bool = False
    security_reasons: list[str] = Field(default_factory=list)
    facts: list[Fact] = Field(default_factory=list)
    advice: Advice | None = None
    advice_status: AdviceStatus = AdviceStatus.OFF
    advice_notice: str = ""
    widening: list[str] = Field(default_factory=list)
    hint: str | None = None
    note_artifact_id: str | None = None
    created_at: str


class ForgeStatus(str, Enum):
    RUNNING = "RUNNING"
    VERIFIED = "VERIFIED"
    ESCALATED = "ESCALATED"  # a human must review (see Escalation)
    EXHAUSTED = "EXHAUSTED"  # --max-attempts builds made, none verified
    STOPPED = "STOPPED"  # the backend is unavailable, or Kavi refused a step
    INTERRUPTED = "INTERRUPTED"


class Escalation(str, Enum):
    REPEATED_FAILURE = "REPEATED_FAILURE"
    SECURITY = "SECURITY"
    ADVICE_WIDENS = "ADVICE_WIDENS"
    BUDGET_SPENT = "BUDGET_SPENT"


class ForgeRun(Record):
    id: str
    proposal_id: str
    status: ForgeStatus = ForgeStatus.RUNNING
    backend: str
    max_attempts: int
    budget_usd: float | None = None
    repeat_limit: int
    attempts: list[str] = Field(default_factory=list)  # build ids, in order
    researches: list[str] = Field(default_factory=list)  # research ids, in order
    cost_usd: float = 0.0
    escalation: Escalation | None = None
    reason: str = ""
    reviewed_run_id: str | None = None  # the escalated run a human reviewed before this one
    started_at: str
    finished_at: str | None = None


class Event(Record):
    seq: int
    id: str
    kind: str
    subject_id: str
    payload: dict[str, Any]
    actor: str
    created_at: str
    prev_hash: str
    hash: str
