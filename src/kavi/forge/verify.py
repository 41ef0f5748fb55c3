"""``verify-skill``: Kavi's independent judgement of a build, bound to its exact commit.

The two allowed files are materialised from the build commit's blobs into a fresh
sandbox outside the repository (nothing else from the repository — no conftest, no
tool config, no other module — can influence a gate). Then:

* static gates, concurrently: ``scope`` (the diff-allowlist gate re-run on the exact
  commit), ``policy`` (scanner, both files), ``invariants`` (both files), ``ruff``
  (both files), ``mypy --strict`` (skill file);
* ``pytest`` on the test file — started only once ``policy`` and ``invariants`` passed
  on both files — in a subprocess with a scrubbed environment, a timeout and the
  runtime guard installed for the whole test session.

The verification row records the commit and tree it judged and every gate's verdict,
findings, duration and tool version; the VERIFICATION_REPORT artifact lists each
finding as ``file:line``. The proposal becomes VERIFIED only if every gate passed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from kavi import __version__
from kavi.clock import now_iso
from kavi.errors import StateError
from kavi.forge import gates
from kavi.forge.context import Forge
from kavi.forge.spec import SkillPaths, skill_paths
from kavi.ledger.models import (
    Artifact,
    ArtifactKind,
    Build,
    BuildStatus,
    GateResult,
    Proposal,
    Verification,
    VerificationStatus,
)
from kavi.ledger.reducer import EventKind
from kavi.ledger.states import ProposalStatus
from kavi.policy.model import Policy
from kavi.secrets import secret_values

Progress = Callable[[str], None]
VERIFIABLE = (ProposalStatus.BUILT, ProposalStatus.VERIFIED)


@dataclass
class VerifyOutcome:
    verification: Verification
    proposal: Proposal
    build: Build
    report: Artifact


def choose_build(forge: Forge, proposal: Proposal, build_ref: str | None) -> Build:
    ledger = forge.ledger
    if build_ref:
        build = ledger.resolve(Build, build_ref, what="build")
        if build.proposal_id != proposal.id:
            raise StateError(
                f"build {build.id[:8]} belongs to another proposal",
                remedy=f"pick a build listed by `git kavi show {proposal.id[:8]}`",
            )
    else:
        found = ledger.latest_build(proposal.id, succeeded=True)
        if found is None:
            raise StateError(
                f"proposal {proposal.id[:8]} ({proposal.name}) has no successful build",
                why="verification judges what a build produced",
                remedy=f"run `git kavi build-skill {proposal.id[:8]}` first",
            )
        build = found
    if build.status is not BuildStatus.SUCCEEDED or not build.commit_id:
        raise StateError(
            f"build {build.id[:8]} is {build.status.value}; only SUCCEEDED builds can be verified",
            remedy="build again, or pass --build with a successful build",
        )
    return build


def _materialise(forge: Forge, build: Build, paths: SkillPaths, root: Path) -> list[tuple[str, bytes]]:
    repo = forge.repo
    files = []
    for rel in paths.allowed:
        data = repo.file_bytes(build.commit_id or "", rel)
        if data is None:
            raise StateError(f"build commit {build.commit_id} has no {rel}")
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        target.chmod(0o644)
        files.append((rel, data))
    return files


def _confinement(policy: Policy) -> tuple[bool, str]:
    """Whether the generated tests run in namespaces, and how that reads in the records."""
    from kavi.confine import jail

    guard_only = "(the runtime guard confines reads and writes)"
    if policy.verify.confine == "off":
        return False, f"not confined: verify.confine is off {guard_only}"
    if not jail.available():
        return False, f"not confined: {jail.unavailable_reason()} {guard_only}"
    limits = policy.verify.limits
    return True, (
        "namespaces (user, PID, mount, IPC, network): fresh root with the two files read-only and a "
        f"private scratch dir; no network; limits {limits.cpu_seconds} CPU s, {limits.memory_mb} MiB, "
        f"{limits.processes} processes, {limits.file_size_mb} MiB files, {limits.tmp_mb} MiB scratch, "
        f"{policy.verify.pytest_timeout_seconds:g} s wall"
    )


def _hidden(forge: Forge) -> tuple[Path, ...]:
    """What must stay out of a generated test's view even below a runtime directory."""
    from kavi.confine import jail

    common = forge.location.common_dir.resolve()
    home = Path(os.path.expanduser("~")).resolve()
    return (forge.workdir.resolve(), common, *jail.worktrees(common), home)


def _report_body(v: Verification, build: Build, paths: SkillPaths) -> str:
    lines = [
        f"- status: **{v.status.value}**",
        f"- build: `{build.id}` (attempt {build.attempt_number})",
        f"- commit judged: `{v.commit_id}`",
        f"- tree judged: `{v.tree_id}`",
        f"- files: `{paths.skill_file}`, `{paths.test_file}`",
        f"- tests confined: {v.confinement or 'not run'}",
        "",
        "| gate | verdict | findings | seconds | tool |",
        "|---|---|---|---|---|",
    ]
    for name in gates.GATE_ORDER:
        g = v.gates[name]
        verdict = "skipped" if g.skipped else ("passed" if g.ok else "FAILED")
        lines.append(f"| {name} | {verdict} | {len(g.findings)} | {g.duration_s:.2f} | {g.tool_version} |")
    for name in gates.GATE_ORDER:
        g = v.gates[name]
        if g.findings:
            lines += ["", f"## {name}", ""]
            lines += [f"- `{f}`" if ":" in f.split(" ")[0] else f"- {f}" for f in g.findings]
    return "\n".join(lines)


def verify_skill(
    forge: Forge,
    proposal_ref: str,
    *,
    build_ref: str | None = None,
    progress: Progress = lambda _msg: None,
) -> VerifyOutcome:
    from kavi.backends.env import scrubbed_env
    from kavi.forge.invariant_check import expectation_for
    from kavi.gitstore import gate as scope_gate
    from kavi.policy.guard import GuardPolicy
    from kavi.policy.invariants import check_skill, check_test
    from kavi.policy.scanner import scan_source

    ledger = forge.ledger
    proposal = ledger.find_proposal(proposal_ref)
    if proposal.status not in VERIFIABLE:
        raise StateError(
            f"proposal {proposal.id[:8]} ({proposal.name}) is {proposal.status.value}",
            why="only BUILT or VERIFIED proposals can be verified",
            remedy=f"run `git kavi build-skill {proposal.id[:8]}` first"
            if proposal.status is ProposalStatus.PROPOSED
            else "propose the skill again",
        )
    build = choose_build(forge, proposal, build_ref)
    commit = build.commit_id or ""
    repo = forge.repo
    tree = repo.commit_tree(commit)
    config = forge.committed_config
    policy = forge.policy
    paths = skill_paths(config, proposal.name)
    secrets = secret_values(os.environ, config.backends.credential_names())
    verification_id = str(uuid.uuid4())
    box = Path(tempfile.mkdtemp(prefix=f"kavi-verify-{verification_id[:8]}-"))
    results: dict[str, GateResult] = {}
    pool: ThreadPoolExecutor | None = None
    confinement: str | None = None
    try:
        from kavi.forge.doctor_files import VERIFY_MARK

        # whose sandbox this is: doctor removes it if this process is killed
        (box / VERIFY_MARK).write_text(str(forge.location.common_dir), encoding="utf-8")
        work, home, tmp = box / "work", box / "home", box / "tmp"
        for d in (work, home, tmp):
            d.mkdir()
        files = _materialise(forge, build, paths, work)
        env = scrubbed_env(os.environ, home=home, tmp=tmp)
        if paths.import_root:
            env["PYTHONPATH"] = str(work / paths.import_root)
        cache_dir = forge.kavi_dir / "mypy-cache"
        cache_dir.mkdir(parents=True, exist_ok=True)
        progress(f"verifying build {build.id[:8]} @ {commit[:12]} of {proposal.name}")

        pool = ThreadPoolExecutor(max_workers=3)
        futures: dict[str, Future[GateResult]] = {
            "ruff": pool.submit(gates.timed, lambda: gates.ruff_gate(work, list(paths.allowed), policy, env)),
            "mypy": pool.submit(
                gates.timed, lambda: gates.mypy_gate(work, paths.skill_file, policy, env, cache_dir)
            ),
        }

        def scope() -> GateResult:
            found = scope_gate.check(
                repo, build.base_commit, commit, paths.allowed, max_file_bytes=policy.sandbox.max_file_bytes
            )
            return GateResult(
                ok=not found,
                findings=[f"{v.path}:0: {v.reason} [{v.rule}]" for v in found],
                tool_version=f"kavi {__version__}",
            )

        def policy_scan() -> GateResult:
            found = [f for rel, data in files for f in scan_source(data, rel, policy.scanner)]
            return GateResult(
                ok=not found,
                findings=[f"{f.path}:{f.line}: {f.rule} {f.message}" for f in found],
                tool_version=f"kavi {__version__}",
            )

        def invariants() -> GateResult:
            expect = expectation_for(proposal, paths)
            (skill_rel, skill_src), (test_rel, test_src) = files
            found = check_skill(skill_src, skill_rel, expect) + check_test(test_src, test_rel)
            return GateResult(
                ok=not found, findings=[str(f) for f in found], tool_version=f"kavi {__version__}"
            )

        results["scope"] = gates.timed(scope)
        results["policy"] = gates.timed(policy_scan)
        results["invariants"] = gates.timed(invariants)
        if results["policy"].ok and results["invariants"].ok:
            confined, confinement = _confinement(policy)
            progress(f"static checks passed; running the tests ({confinement})")
            guard = GuardPolicy(
                write_roots=(work.resolve(), tmp.resolve()),
                read_roots=None if confined else (box.resolve(),),
            )
            test_env = {**env, "KAVI_GUARD": guard.to_json()}
            test_box = gates.TestBox(
                work=work.resolve(),
                tmp=tmp.resolve(),
                home=home.resolve(),
                confine=confined,
                hidden=_hidden(forge),
            )
            if policy.verify.confine == "required" and not confined:
                results["pytest"] = GateResult(
                    ok=False,
                    findings=[f"{paths.test_file}:1: verify.confine is required, and {confinement}"],
                    tool_version=gates.tool_version("pytest"),
                )
            else:
                futures["pytest"] = pool.submit(
                    gates.timed, lambda: gates.pytest_gate(work, paths.test_file, policy, test_env, test_box)
                )
        else:
            results["pytest"] = GateResult(
                ok=False,
                skipped=True,
                findings=["not run: the policy scan and invariants must pass on both files first"],
                tool_version=gates.tool_version("pytest"),
            )
        for name, fut in futures.items():
            results[name] = fut.result()
    except BaseException:  # Ctrl-C or SIGTERM: stop the tools now, record nothing
        from kavi.confine.proc import kill_running

        kill_running()
        raise
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(box, ignore_errors=True)

    passed = all(results[g].ok for g in gates.GATE_ORDER)
    status = VerificationStatus.PASSED if passed else VerificationStatus.FAILED
    verification = Verification(
        id=verification_id,
        proposal_id=proposal.id,
        build_id=build.id,
        commit_id=commit,
        tree_id=tree,
        status=status,
        gates={g: results[g] for g in gates.GATE_ORDER},
        created_at=now_iso(),
        confinement=confinement,
    )
    vault = forge.vault(secrets)
    with vault.pending(), ledger.transaction(forge.actor) as txn:
        report, _ = vault.write(
            ArtifactKind.VERIFICATION_REPORT,
            name=proposal.name,
            related_id=verification_id,
            title=f"VERIFICATION_REPORT {proposal.name} — {status.value}",
            body=_report_body(verification, build, paths),
            meta={
                "proposal_id": proposal.id,
                "build_id": build.id,
                "verification_id": verification_id,
                "commit": commit,
                "tree": tree,
                "status": status.value,
            },
        )
        txn.put(EventKind.ARTIFACT_RECORDED, report)
        verification = verification.model_copy(update={"report_artifact_id": report.id})
        txn.put(EventKind.VERIFICATION_RECORDED, verification)
        target = ProposalStatus.VERIFIED if passed else ProposalStatus.BUILT
        if target is not proposal.status:
            txn.record(
                EventKind.STATUS_CHANGED,
                proposal.id,
                {
                    "proposal_id": proposal.id,
                    "from": proposal.status.value,
                    "to": target.value,
                    "reason": f"verification {verification_id[:8]} {status.value}",
                },
            )
    return VerifyOutcome(verification, ledger.proposal(proposal.id), build, report)
