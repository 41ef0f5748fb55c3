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
    started_at: str
    finished_at: str | None = None


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
    id: str
    skill_name: str
    proposal_id: str
    promotion_id: str
    status: RunStatus
    input: dict[str, Any] = Field(default_factory=dict)
    output: dict[str, Any] | None = None
    error: str | None = None
    artifact_id: str | None = None
    duration_s: float = 0.0
    started_at: str
    finished_at: str
    confinement: str | None = None  # how the operating system confined it (or why it did not)
    caller: str | None = None  # who asked: cli, mcp, …
    limit_exceeded: str | None = None  # the resource limit that ended it, if one did


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
