"""The ``Key: value`` records Kavi attaches to commits, tags and notes."""

from __future__ import annotations

from kavi.gitstore.objects import format_trailers
from kavi.ledger.models import Artifact, Build, Promotion, Proposal, Revocation, Verification


def build_note(proposal: Proposal, build: Build, packet: Artifact | None) -> str:
    return "Kavi build record\n\n" + format_trailers(
        {
            "Kavi-Skill": proposal.name,
            "Kavi-Proposal": proposal.id,
            "Kavi-Build": build.id,
            "Kavi-Attempt": build.attempt_number,
            "Kavi-Backend": build.backend,
            "Kavi-Build-Status": build.status.value,
            "Kavi-Base": build.base_commit,
            "Kavi-Packet": f"blake3:{packet.blake3}" if packet else None,
            "Kavi-Built-At": build.finished_at,
        }
    )


def verification_note(v: Verification, report: Artifact | None) -> str:
    items: dict[str, object] = {
        "Kavi-Verification": v.id,
        "Kavi-Verification-Status": v.status.value,
        "Kavi-Verified-Commit": v.commit_id,
        "Kavi-Verified-Tree": v.tree_id,
    }
    for name, gate in v.gates.items():
        verdict = "skipped" if gate.skipped else ("passed" if gate.ok else "failed")
        items[f"Kavi-Gate-{name}"] = f"{verdict} ({gate.tool_version}, {gate.duration_s:.2f}s)"
    items["Kavi-Tests-Confined"] = v.confinement
    items["Kavi-Report"] = f"blake3:{report.blake3}" if report else None
    items["Kavi-Verified-At"] = v.created_at
    return "Kavi verification record\n\n" + format_trailers(items)


def promotion_trailers(p: Promotion) -> dict[str, object]:
    return {
        "Kavi-Action": "promote",
        "Kavi-Skill": p.skill_name,
        "Kavi-Version": p.version,
        "Kavi-Promotion": p.id,
        "Kavi-Proposal": p.proposal_id,
        "Kavi-Build": p.build_id,
        "Kavi-Verification": p.verification_id,
        "Kavi-Skill-Path": p.skill_path,
        "Kavi-Skill-Blob": p.skill_blob,
        "Kavi-Skill-Sha256": p.skill_sha256,
        "Kavi-Test-Path": p.test_path,
        "Kavi-Test-Blob": p.test_blob,
        "Kavi-Registry-Blob": p.registry_blob,
        "Kavi-Approved-By": p.approved_by,
        "Kavi-Signing-Key": p.signing_key_fingerprint,
    }


def promotion_note(p: Promotion) -> str:
    items = promotion_trailers(p)
    items.update({"Kavi-Merge": p.merge_commit, "Kavi-Tag": p.tag_name, "Kavi-Promoted-At": p.created_at})
    return "Kavi promotion record\n\n" + format_trailers(items)


def revocation_trailers(r: Revocation) -> dict[str, object]:
    return {
        "Kavi-Action": "revoke",
        "Kavi-Skill": r.skill_name,
        "Kavi-Revocation": r.id,
        "Kavi-Promotion": r.promotion_id,
        "Kavi-Proposal": r.proposal_id,
        "Kavi-Reason": r.reason,
        "Kavi-Tag": r.tag_name,
        "Kavi-Registry-Blob": r.registry_blob,
        "Kavi-Revoked-By": r.revoked_by,
    }
