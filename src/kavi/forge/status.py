"""Read-only views of the forge: ``status`` and ``show``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kavi.forge.context import Forge
from kavi.forge.spec import skill_paths
from kavi.ledger.models import ForgeRun, ForgeStatus

if TYPE_CHECKING:
    from kavi.ledger.store import Ledger


def forge_status(forge: Forge) -> dict[str, Any]:
    from kavi.ledger.schema import SCHEMA_VERSION
    from kavi.signing import user_signer_or_none
    from kavi.sshsig import principals_for_key

    config = forge.config
    ledger = forge.ledger
    proposals = ledger.proposals()
    by_status: dict[str, int] = {}
    for p in proposals:
        by_status[p.status.value] = by_status.get(p.status.value, 0) + 1
    signer = user_signer_or_none(forge.repo)
    trusted = bool(signer and principals_for_key(forge.allowed_signers(), signer.public_key))
    example = skill_paths(config, "<name>")
    last = ledger.last_event()
    from kavi.forge.budget import spent

    builds = [b for p in proposals for b in ledger.builds_for(p.id)]
    usage = spent(builds)
    names = {p.id: p.name for p in proposals}
    return {
        "workdir": str(forge.workdir),
        "target_branch": config.target_branch,
        "target_tip": forge.repo.branch_tip(config.target_branch),
        "ledger": str(forge.location.ledger_path),
        "schema_version": SCHEMA_VERSION,
        "events": last.seq if last else 0,
        "unmirrored": len(ledger.unmirrored_events()),
        "vault": str(forge.workdir / config.vault_dir),
        "registry": f"{config.skills_dir}/registry.yaml",
        "skill_layout": f"{example.skill_file}, {example.test_file}, {example.module}.{example.class_name}",
        "signer": signer.principal if signer else None,
        "signer_key": signer.fingerprint if signer else None,
        "signer_trusted": trusted,
        "default_backend": config.backends.default,
        "proposals": len(proposals),
        "proposals_by_status": by_status,
        "builds": len(builds),
        "build_usage": usage.model_dump(mode="json"),
        "proposal_budget_usd": config.proposal_budget_usd,
        "trusted_skills": sorted({p.skill_name for p in ledger.promotions()}),
        "escalations": [
            {"proposal_id": r.proposal_id, "name": names.get(r.proposal_id, "?"), **_run_view(r)}
            for r in open_escalations(ledger)
        ],
        "remotes": _remotes(forge),
    }


def _remotes(forge: Forge) -> list[dict[str, Any]]:
    """Each remote: whether it fetches Kavi's refs, and the command that pushes them."""
    from kavi.forge.remotes import FETCH_SPECS, push_command, remote_specs

    branch = forge.config.target_branch
    return [
        {
            "name": name,
            "fetches_kavi": all(spec in specs["fetch"] for spec in FETCH_SPECS),
            "push": push_command(name, branch),
        }
        for name, specs in sorted(remote_specs(forge.workdir).items())
    ]


def open_escalations(ledger: Ledger) -> list[ForgeRun]:
    """The latest forge run of each open proposal, where it escalated (a human must review)."""
    latest: dict[str, ForgeRun] = {}
    for run in ledger.forge_runs():
        latest[run.proposal_id] = run
    open_ids = {p.id for p in ledger.proposals() if p.status.value in ("PROPOSED", "BUILT", "VERIFIED")}
    return [r for r in latest.values() if r.status is ForgeStatus.ESCALATED and r.proposal_id in open_ids]


def _run_view(r: ForgeRun) -> dict[str, Any]:
    return {
        "forge_run_id": r.id,
        "status": r.status.value,
        "escalation": r.escalation.value if r.escalation else None,
        "reason": r.reason,
        "attempts": len(r.attempts),
        "cost_usd": r.cost_usd,
        "started_at": r.started_at,
        "finished_at": r.finished_at,
    }


def proposal_details(forge: Forge, ref: str) -> dict[str, Any]:
    ledger = forge.ledger
    proposal = ledger.find_proposal(ref)
    builds = ledger.builds_for(proposal.id)
    verifications = ledger.verifications_for(proposal.id)
    promotions = ledger.promotions_for(proposal.id)
    related = [proposal.id, *(b.id for b in builds), *(v.id for v in verifications)]
    related += [p.id for p in promotions]
    researches = ledger.researches_for(proposal.id)
    runs = ledger.forge_runs(proposal.id)
    related += [r.id for r in researches]
    artifacts = ledger.artifacts_for(related)
    from kavi.forge.budget import spent

    return {
        "proposal": proposal.model_dump(mode="json"),
        "paths": skill_paths(forge.config, proposal.name).__dict__,
        "builds": [b.model_dump(mode="json") for b in builds],
        "usage_total": spent(builds).model_dump(mode="json"),
        "budget_usd": forge.config.proposal_budget_usd,
        "verifications": [v.model_dump(mode="json") for v in verifications],
        "promotions": [p.model_dump(mode="json") for p in promotions],
        "artifacts": [a.model_dump(mode="json") for a in artifacts],
        "researches": [r.model_dump(mode="json") for r in researches],
        "forge_runs": [r.model_dump(mode="json") for r in runs],
        "escalation": _run_view(runs[-1]) if runs and runs[-1].status is ForgeStatus.ESCALATED else None,
    }


def render_details(d: dict[str, Any]) -> str:
    from kavi.forge.budget import describe
    from kavi.ledger.models import BuildUsage

    p = d["proposal"]
    lines = [
        f"Proposal {p['id']}",
        f"  name:        {p['name']}",
        f"  status:      {p['status']}",
        f"  description: {p['description']}",
        f"  side effect: {p['side_effect_class']}",
        f"  secrets:     {', '.join(p['required_secrets']) or 'none'}",
        f"  files:       {d['paths']['skill_file']}, {d['paths']['test_file']}",
        "  I/O schema:",
    ]
    for side in ("input", "output"):
        for name, type_text in p["io_schema"].get(side, {}).items():
            lines.append(f"    {side:<6} {name}: {type_text}")
    lines.append(f"Builds ({len(d['builds'])}):")
    for b in d["builds"]:
        commit = (b["commit_id"] or "-")[:12]
        where = f"{b['branch_name']} @ {commit}"
        if b.get("kept_ref"):
            where = f"{b['kept_ref']} @ {commit} (branch pruned)"
        lines.append(f"  #{b['attempt_number']} {b['id'][:8]} {b['status']:<9} {b['backend']:<7} {where}")
        if b["summary"]:
            lines.append(f"      {b['summary']}")
        usage = describe(BuildUsage.model_validate(b["usage"]))
        if usage:
            lines.append(f"      usage: {usage}")
        for a in b["tool_attempts"]:
            lines.append(f"      ✗ tool {a['tool']} {a['input']}: {a['outcome']}")
        for v in b["violations"]:
            lines.append(f"      ✗ {v['path']}: {v['reason']}")
        for r in d.get("researches", []):
            if r["build_id"] == b["id"]:
                lines.append(
                    f"      research {r['id'][:8]}: {r['kind']}{' (security-class)' if r['security'] else ''}"
                )
                for f in r["facts"][:5]:
                    where = (
                        f"{f['file']}:{f['line']}"
                        if f.get("file") and f.get("line")
                        else (f.get("file") or "-")
                    )
                    lines.append(f"        {where} {f['gate']}: {f['message']}")
                lines.append(f"        {r['advice_notice']}")
    total = describe(BuildUsage.model_validate(d["usage_total"]))
    if total:
        budget = f" (budget ${d['budget_usd']:.2f})" if d["budget_usd"] is not None else ""
        lines.append(f"  all builds: {total}{budget}")
    if d["verifications"]:
        lines.append(f"Verifications ({len(d['verifications'])}):")
        for v in d["verifications"]:
            gates = " ".join(
                f"{name}{'✓' if g['ok'] else ('-' if g.get('skipped') else '✗')}"
                for name, g in v["gates"].items()
            )
            lines.append(f"  {v['id'][:8]} {v['status']:<6} commit {v['commit_id'][:12]}  {gates}")
    if d["promotions"]:
        lines.append("Promotions:")
        for pr in d["promotions"]:
            lines.append(
                f"  v{pr['version']} {pr['tag_name']} merge {pr['merge_commit'][:12]} by {pr['approved_by']}"
            )
    if d.get("forge_runs"):
        lines.append("Forge runs:")
        for run in d["forge_runs"]:
            esc = f" {run['escalation']}" if run.get("escalation") else ""
            lines.append(
                f"  {run['id'][:8]} {run['status']}{esc} — {len(run['attempts'])} attempt(s), "
                f"${run['cost_usd']:.4f}: {run['reason']}"
            )
    if d.get("escalation"):
        e = d["escalation"]
        lines.append(
            f"ESCALATED ({e['escalation']}): {e['reason']} — a human must review before forging again"
        )
    lines.append(f"Artifacts ({len(d['artifacts'])}):")
    for a in d["artifacts"]:
        lines.append(f"  {a['kind']:<20} {a['path']}  blake3:{a['blake3'][:16]}")
    return "\n".join(lines)


def run_details(forge: Forge, ref: str) -> dict[str, Any]:
    """One run: its record (the sealed fields' data where this clone has it, their digests
    always) and its RUN_RECORD artifact."""
    from kavi.forge.checks import artifact_state
    from kavi.gitstore.mirror import LEDGER_REF
    from kavi.ledger.models import Run

    ledger = forge.ledger
    run = ledger.resolve(Run, ref, what="run")
    artifact = ledger.artifact(run.artifact_id) if run.artifact_id else None
    out: dict[str, Any] = {
        "run": run.model_dump(mode="json"),
        "data": "digest only" if run.sealed and run.input is None else "here",
        "artifact": None,
    }
    if artifact is not None:
        state = artifact_state(forge, artifact, forge.repo.ref_target(LEDGER_REF))
        out["artifact"] = {**artifact.model_dump(mode="json"), "ok": state.ok, "state": state.detail}
    return out


def render_run(d: dict[str, Any]) -> str:
    import json

    r = d["run"]
    version = f" v{r['version']}" if r.get("version") else ""
    lines = [
        f"Run {r['id']}",
        f"  skill:       {r['skill_name']}{version} (promotion {r['promotion_id'][:8]})",
        f"  status:      {r['status']}" + (f" ({r['error_code']})" if r.get("error_code") else ""),
        f"  when:        {r['started_at']} ({r['duration_s']:.3f}s), caller {r.get('caller') or '-'}",
        f"  confinement: {r.get('confinement') or '-'}",
    ]
    if r.get("limit_exceeded"):
        lines.append(f"  limit:       {r['limit_exceeded']}")
    for name, value in sorted((r.get("sealed") or {}).items()):
        lines.append(f"  {name} sha256: {value}")
    if d["data"] == "digest only":
        lines.append("  data:        not on this clone (only its digests travel)")
    else:
        lines.append(f"  input:       {json.dumps(r['input'], sort_keys=True)}")
        if r.get("output") is not None:
            lines.append(f"  output:      {json.dumps(r['output'], sort_keys=True)}")
    if r.get("error"):
        lines.append(f"  error:       {r['error']}")
    a = d.get("artifact")
    if a:
        lines.append(f"  record:      {a['path']} ({'✓' if a['ok'] else '✗'} {a['state']})")
    return "\n".join(lines)
