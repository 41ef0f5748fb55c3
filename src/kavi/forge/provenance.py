"""``git kavi provenance <skill>[@vN]``: an in-toto Statement v1 (SLSA Provenance v1 predicate),
signed in a DSSE envelope with the user's SSH key.

The statement (build type: ``docs/build-type-v1.md``):

* subject: the skill file, digests ``sha256``, ``gitBlob`` and ``blake3``;
* buildDefinition.externalParameters: the proposal (name, description, side-effect
  class, I/O schema, secrets' names), the SKILL_SPEC and BUILD_PACKET digests, the backend;
* buildDefinition.internalParameters: the attempt, its branch, the verification verdicts;
* buildDefinition.resolvedDependencies: the commit the build started from;
* runDetails: the builder (Kavi, its version, the backend), the build id and times, and
  the byproducts — the build log and verification report digests, and the promotion
  (the signed merge, its tag, who approved it with which key).

Signing (D065): the envelope's payload is the statement's canonical JSON; DSSE's
pre-authentication encoding ``PAE = "DSSEv1" SP len(type) SP type SP len(payload) SP
payload`` is signed with ``ssh-keygen -Y sign -n git`` under the principal the forge's
``allowed_signers`` gives the key at the governing commit (the namespace those lines
allow). A PAE starts with ``DSSEv1``, so it can never be read as a git commit, tag or
push certificate, nor any of those as a PAE. ``signatures[].sig`` is the SSH signature
(the SSHSIG blob, base64); written out with :func:`write_files`, ``ssh-keygen -Y verify``
alone checks it against the forge's own ``allowed_signers``.
"""

from __future__ import annotations

import base64
import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kavi import __version__
from kavi.errors import NotFoundError, ValidationError
from kavi.forge.context import Forge
from kavi.ledger.models import Artifact, Promotion

if TYPE_CHECKING:
    from kavi.sshsig import SshSigner

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
# The build type's definition ships with Kavi: docs/build-type-v1.md in the source
# distribution (a package URL, so it names a file in a published artifact, whatever the
# project's web address); "-v1" is the build type's version, not Kavi's.
BUILD_TYPE = "pkg:pypi/kavi#docs/build-type-v1.md"
BUILDER_ID = "pkg:pypi/kavi"
NAMESPACE = "git"  # what the forge's allowed_signers lines allow (namespaces="git")


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
    byproducts: list[dict[str, Any]] = []
    for label, artifact in (("BUILD_LOG", log), ("VERIFICATION_REPORT", report)):
        if artifact is not None:
            byproducts.append({"name": label, "uri": artifact.path, "digest": _digest(artifact)})
    byproducts.append(
        {
            "name": "promotion",
            "uri": f"refs/tags/{p.tag_name}",
            "digest": {"gitCommit": p.merge_commit},
            "annotations": {
                "id": p.id,
                "version": p.version,
                "buildCommit": build.commit_id,
                "approvedBy": p.approved_by,
                "signingKey": p.signing_key_fingerprint,
                "promotedOn": p.created_at,
                "targetBranch": p.target_branch,
            },
        }
    )
    builder_deps: list[dict[str, Any]] = [{"name": f"backend:{build.backend}"}]
    if build.usage.backend_version or build.usage.model:
        builder_deps[0]["annotations"] = {
            k: v for k, v in (("version", build.usage.backend_version), ("model", build.usage.model)) if v
        }
    metadata = {"invocationId": build.id, "startedOn": build.started_at}
    if build.finished_at:
        metadata["finishedOn"] = build.finished_at
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
                    {
                        "name": "base",
                        "uri": f"refs/heads/{p.target_branch}",
                        "digest": {"gitCommit": build.base_commit},
                    }
                ],
            },
            "runDetails": {
                "builder": {
                    "id": BUILDER_ID,
                    "version": {"kavi": __version__},
                    "builderDependencies": builder_deps,
                },
                "metadata": metadata,
                "byproducts": byproducts,
            },
        },
    }


# -- DSSE --------------------------------------------------------------------------------


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: what is signed."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def armor(sig_b64: str) -> str:
    """An SSHSIG blob (base64) as the armored text ``ssh-keygen -Y verify -s`` reads."""
    lines = [sig_b64[i : i + 70] for i in range(0, len(sig_b64), 70)]
    return "-----BEGIN SSH SIGNATURE-----\n" + "\n".join(lines) + "\n-----END SSH SIGNATURE-----\n"


def _blob(armored: str) -> str:
    return "".join(line for line in armored.strip().splitlines() if not line.startswith("-----"))


@dataclass(frozen=True)
class Signed:
    envelope: dict[str, Any]
    pae: bytes
    signature: str  # armored
    principal: str
    fingerprint: str
    governance: str  # the commit whose .kavi/allowed_signers the signature is judged by


def sign(forge: Forge, data: dict[str, Any], signer: SshSigner) -> Signed:
    """The statement in a DSSE envelope, signed under the principal of the signer's key."""
    from kavi.forge.identity import record_signer
    from kavi.hashing import canonical_json

    _forge_id, governance, signed_as = record_signer(forge, signer)
    payload = canonical_json(data).encode("utf-8")
    message = pae(PAYLOAD_TYPE, payload)
    armored = signed_as.sign(message, namespace=NAMESPACE)
    envelope = {
        "payloadType": PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode("ascii"),
        "signatures": [{"keyid": signed_as.fingerprint, "sig": _blob(armored)}],
    }
    return Signed(envelope, message, armored, signed_as.principal, signed_as.fingerprint, governance)


def write_files(signed: Signed, prefix: Path) -> dict[str, Path]:
    """``<prefix>.intoto.json`` (the envelope), ``<prefix>.pae`` (the exact bytes signed) and
    ``<prefix>.sig`` (the SSH signature, armored)."""
    from kavi.artifacts.vault import atomic_write

    files = {
        "envelope": prefix.with_name(prefix.name + ".intoto.json"),
        "pae": prefix.with_name(prefix.name + ".pae"),
        "sig": prefix.with_name(prefix.name + ".sig"),
    }
    atomic_write(files["envelope"], (json.dumps(signed.envelope, indent=2) + "\n").encode())
    atomic_write(files["pae"], signed.pae)
    atomic_write(files["sig"], signed.signature.encode("ascii"))
    return files


def verify_commands(signed: Signed, files: dict[str, Path], cwd: Path) -> list[str]:
    """Plain commands that check the signature with ``ssh-keygen`` alone (run in ``cwd``)."""

    def rel(path: Path) -> str:
        try:
            return shlex.quote(str(path.resolve().relative_to(cwd.resolve())))
        except ValueError:
            return shlex.quote(str(path))

    return [
        f"git show {signed.governance}:.kavi/allowed_signers > allowed_signers",
        f"ssh-keygen -Y verify -f allowed_signers -I {shlex.quote(signed.principal)} -n {NAMESPACE} "
        f"-s {rel(files['sig'])} < {rel(files['pae'])}",
    ]
