"""``git kavi provenance <skill>[@vN]``: an in-toto Statement v1 with an SLSA Provenance v1 predicate.

* subject: the skill file, digest ``sha256`` and ``gitBlob`` (plus ``blake3``);
* buildDefinition.externalParameters: the proposal, the SKILL_SPEC and BUILD_PACKET
  digests, the backend;
* buildDefinition.resolvedDependencies: the base commit the build started from;
* runDetails.byproducts: the build log and verification report digests;
* runDetails.metadata: build id and times; plus Kavi's own promotion details.
"""

from __future__ import annotations

import re
from typing import Any

from kavi import __version__
from kavi.errors import NotFoundError, ValidationError
from kavi.forge.context import Forge
from kavi.ledger.models import Artifact, Promotion

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://github.com/kavi-forge/kavi/blob/main/docs/build-type-v1.md"


def _digest(a: Artifact | None) -> dict[str, str]:
    return {} if a is None else {"sha256": a.sha256, "blake3": a.blake3}


def select_promotion(forge: Forge, ref: str) -> Promotion:
    m = re.fullmatch(r"([a-z][a-z0-9_]*)(?:@v(\d+))?", ref)
    if not m:
        raise ValidationError(f"{ref!r} is not <skill> or <skill>@v<N>", remedy="e.g. write_note@v1")
    name, version = m.group(1), m.group(2)
    promotions = forge.ledger.promotions(name)
    if not promotions:
        raise NotFoundError(f"{name} has never been promoted", remedy="see `git kavi list-skills`")
    if version is None:
        return promotions[-1]
    for p in promotions:
        if p.version == int(version):
            return p
    have = ", ".join(f"v{p.version}" for p in promotions)
    raise NotFoundError(f"{name} has no version v{version}", why=f"versions: {have}")


def statement(forge: Forge, ref: str) -> dict[str, Any]:
    ledger = forge.ledger
    p = select_promotion(forge, ref)
    proposal = ledger.proposal(p.proposal_id)
    build = ledger.build(p.build_id)
    verification = ledger.verification(p.verification_id)
    spec = ledger.artifact(proposal.spec_artifact_id or "")
    packet = ledger.artifact(build.packet_artifact_id or "")
    log = ledger.artifact(build.log_artifact_id or "")
    report = ledger.artifact(verification.report_artifact_id or "")
    byproducts = []
    for label, artifact in (("BUILD_LOG", log), ("VERIFICATION_REPORT", report)):
        if artifact is not None:
            byproducts.append({"name": label, "uri": artifact.path, "digest": _digest(artifact)})
    return {
        "_type": STATEMENT_TYPE,
        "subject": [
            {
                "name": p.skill_path,
                "digest": {"sha256": p.skill_sha256, "gitBlob": p.skill_blob, "blake3": p.skill_blake3},
            }
        ],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "proposal": {
                        "id": proposal.id,
                        "name": proposal.name,
                        "description": proposal.description,
                        "side_effect_class": proposal.side_effect_class.value,
                        "io_schema": proposal.io_schema,
                        "required_secrets": proposal.required_secrets,
                    },
                    "spec": {"uri": spec.path if spec else None, "digest": _digest(spec)},
                    "packet": {"uri": packet.path if packet else None, "digest": _digest(packet)},
                    "backend": build.backend,
                },
                "internalParameters": {
                    "attempt": build.attempt_number,
                    "branch": build.branch_name,
                    "verification": {
                        "id": verification.id,
                        "status": verification.status.value,
                        "gates": {n: g.ok for n, g in verification.gates.items()},
                    },
                },
                "resolvedDependencies": [
                    {"uri": f"git+{forge.workdir.as_uri()}", "digest": {"gitCommit": build.base_commit}}
                ],
            },
            "runDetails": {
                "builder": {
                    "id": f"https://github.com/kavi-forge/kavi/builders/{build.backend}",
                    "version": {"kavi": __version__},
                },
                "metadata": {
                    "invocationId": build.id,
                    "startedOn": build.started_at,
                    "finishedOn": build.finished_at,
                },
                "byproducts": byproducts,
            },
            "kavi": {
                "promotion": p.id,
                "version": p.version,
                "tag": p.tag_name,
                "merge_commit": p.merge_commit,
                "build_commit": build.commit_id,
                "approved_by": p.approved_by,
                "signing_key": p.signing_key_fingerprint,
                "promoted_at": p.created_at,
            },
        },
    }
