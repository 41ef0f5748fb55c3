"""Building a big forge quickly, for ``bench_scale.py`` (setup only: nothing here is measured).

A forge of ``skills`` TRUSTED skills and about ``events`` ledger events, built through
Kavi's own code where it matters and with shortcuts where it only costs time:

* proposals, promotions (signed merge, signed tag, signed notes, registry) and run
  records go through Kavi's functions (``propose``, ``plan_promotion``/``promote``,
  ``kavi.forge.run._record_run``), so the ledger, the mirror and the history are what
  Kavi writes;
* builds and verifications are recorded through the ledger API (a build commit with the
  two files, a PASSED verification of it): running the gates a thousand times would take
  hours and measures nothing here;
* signatures are made in-process (:class:`FastSigner`, the SSHSIG format with the
  ``cryptography`` package — ``ssh-keygen -Y verify`` accepts them, checked on a sample),
  and file writes skip ``fsync``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from kavi.sshsig import SshSigner

SCHEMA = {"input": {"text": "str"}, "output": {"text": "str", "length": "int"}}


def _string(value: bytes) -> bytes:
    return struct.pack(">I", len(value)) + value


@dataclass(frozen=True)
class FastSigner(SshSigner):
    """An :class:`SshSigner` that signs in-process (Ed25519 keys without a passphrase)."""

    def sign(self, payload: bytes, namespace: str = "git") -> str:
        from cryptography.hazmat.primitives.serialization import load_ssh_private_key

        key = _KEYS.get(self.key_file)
        if key is None:
            key = _KEYS[self.key_file] = load_ssh_private_key(self.key_file.read_bytes(), None)
        public = base64.b64decode(self.public_key.split()[1])
        digest = hashlib.sha512(payload).digest()
        signed = b"SSHSIG" + _string(namespace.encode()) + _string(b"") + _string(b"sha512") + _string(digest)
        sig = key.sign(signed)  # type: ignore[call-arg]
        blob = b"SSHSIG" + struct.pack(">I", 1) + _string(public) + _string(namespace.encode())
        blob += _string(b"") + _string(b"sha512") + _string(_string(b"ssh-ed25519") + _string(sig))
        text = base64.b64encode(blob).decode()
        lines = [text[i : i + 70] for i in range(0, len(text), 70)]
        return "-----BEGIN SSH SIGNATURE-----\n" + "\n".join(lines) + "\n-----END SSH SIGNATURE-----\n"


_KEYS: dict[Path, Any] = {}


def skill_source(name: str) -> str:
    stem = "".join(p.capitalize() for p in name.split("_"))
    return (
        f'"""{name}: echoes its input (bench)."""\n\nfrom __future__ import annotations\n\n'
        "from kavi.skills.base import BaseSkill, SideEffect, SkillContext, SkillInput, SkillOutput\n\n\n"
        f"class {stem}Input(SkillInput):\n    text: str\n\n\n"
        f"class {stem}Output(SkillOutput):\n    text: str\n    length: int\n\n\n"
        f"class {stem}Skill(BaseSkill[{stem}Input, {stem}Output]):\n"
        f'    name = "{name}"\n    description = "echo (bench)"\n'
        f"    input_model = {stem}Input\n    output_model = {stem}Output\n"
        "    side_effect_class = SideEffect.READ_ONLY\n    required_secrets = ()\n\n"
        f"    def execute(self, input: {stem}Input, ctx: SkillContext) -> {stem}Output:\n"
        f"        return {stem}Output(text=input.text, length=len(input.text))\n"
    )


def environment(root: Path) -> dict[str, str]:
    home = root / "home"
    home.mkdir(parents=True, exist_ok=True)
    key = root / "key"
    if not key.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    (home / ".gitconfig").write_text(
        "[user]\n\tname = Bench\n\temail = bench@example.com\n"
        f"[gpg]\n\tformat = ssh\n[user]\n\tsigningkey = {key}.pub\n[init]\n\tdefaultBranch = main\n"
    )
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "KAVI_", "SSH_"))}
    return {**keep, "HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1"}


def build_forge(root: Path, name: str, skills: int, events: int, log: Any = print) -> Path:
    """A forge at ``root/name`` with ``skills`` promoted skills and ~``events`` events, mirrored."""
    import pygit2

    from kavi.cli.approval import obtain_approval
    from kavi.forge.context import Forge
    from kavi.forge.init import init_forge
    from kavi.forge.promote import plan_promotion, promote
    from kavi.forge.propose import propose
    from kavi.forge.spec import skill_paths
    from kavi.forge.sync import mirror_pending
    from kavi.signing import user_signer

    repo = root / name
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    (repo / "README.md").write_text(f"# {name}\n")
    subprocess.run(["git", "add", "README.md"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "initial"], cwd=repo, check=True)
    pygit2.settings.search_path[pygit2.enums.ConfigLevel.GLOBAL] = os.environ["HOME"]
    init_forge(repo)
    subprocess.run(["git", "checkout", "-q", "--detach"], cwd=repo, check=True)  # no checkout per promotion
    forge = Forge.open(repo)
    base = user_signer(forge.repo)
    signer = FastSigner(base.key_file, base.public_key, base.principal, base.use_agent)
    started = time.monotonic()
    for i in range(skills):
        skill = f"skill_{i:04d}"
        proposal = propose(
            forge,
            name=skill,
            description=f"echo number {i}",
            side_effect="READ_ONLY",
            io_schema_json=json.dumps(SCHEMA),
        )
        _built_and_verified(forge, proposal, skill_paths(forge.config, skill), skill)
        plan = plan_promotion(forge, proposal.id, signer)
        approval = obtain_approval(
            plan_digest=plan.digest, approver=plan.principal, yes=True, question="", action="promotion"
        )
        promote(forge, plan, approval)
        if (i + 1) % 100 == 0:
            log(f"  {name}: {i + 1} skills promoted ({time.monotonic() - started:.0f}s)")
    subprocess.run(["git", "checkout", "-q", "main"], cwd=repo, check=True)
    runs = max(0, (events - forge.ledger.last_event().seq) // 2)  # type: ignore[union-attr]
    _record_runs(forge, skills, runs, log, name)
    mirror_pending(forge, signer)
    total = forge.ledger.last_event().seq  # type: ignore[union-attr]
    log(f"  {name}: {skills} skills, {total} events mirrored ({time.monotonic() - started:.0f}s)")
    forge.close()
    return repo


def _built_and_verified(forge: Any, proposal: Any, paths: Any, skill: str) -> None:
    """A build commit holding the two files and a PASSED verification of it (ledger API)."""
    from kavi.clock import now_iso
    from kavi.ledger.models import ArtifactKind, Build, BuildStatus, GateResult, Verification
    from kavi.ledger.models import VerificationStatus as VS
    from kavi.ledger.reducer import EventKind

    repo = forge.repo
    target = forge.config.target_branch
    tip = repo.branch_tip(target)
    files = {
        paths.skill_file: (0o100644, repo.write_blob(skill_source(skill).encode())),
        paths.test_file: (0o100644, repo.write_blob(f"def test_{skill}() -> None:\n    pass\n".encode())),
    }
    tree = repo.update_tree(repo.commit_tree(tip), files)
    commit = repo.write_commit(tree=tree, parents=[tip], message=f"kavi: build {skill}\n", signer=None)
    build_id = str(uuid.uuid4())
    branch = f"skill/{skill}-{build_id[:8]}"
    repo.set_ref(f"refs/heads/{branch}", commit, message="bench build", old="0" * 40)
    vault = forge.vault()
    now = now_iso()
    with vault.pending(), forge.ledger.transaction(forge.actor) as txn:
        packet, _ = vault.write(
            ArtifactKind.BUILD_PACKET, name=skill, related_id=build_id, title="packet", body="x"
        )
        log_a, _ = vault.write(ArtifactKind.BUILD_LOG, name=skill, related_id=build_id, title="log", body="y")
        txn.put(EventKind.ARTIFACT_RECORDED, packet)
        txn.put(EventKind.ARTIFACT_RECORDED, log_a)
        build = Build(
            id=build_id,
            proposal_id=proposal.id,
            attempt_number=1,
            branch_name=branch,
            backend="files",
            base_commit=tip,
            packet_artifact_id=packet.id,
            started_at=now,
        )
        txn.put(EventKind.BUILD_STARTED, build)
        txn.record(
            EventKind.BUILD_FINISHED,
            build_id,
            {
                "build_id": build_id,
                "status": BuildStatus.SUCCEEDED.value,
                "commit_id": commit,
                "tree_id": tree,
                "log_artifact_id": log_a.id,
                "finished_at": now,
            },
        )
        txn.record(
            EventKind.STATUS_CHANGED,
            proposal.id,
            {"proposal_id": proposal.id, "from": "PROPOSED", "to": "BUILT", "reason": "bench build"},
        )
        vid = str(uuid.uuid4())
        report, _ = vault.write(
            ArtifactKind.VERIFICATION_REPORT, name=skill, related_id=vid, title="report", body="all gates"
        )
        txn.put(EventKind.ARTIFACT_RECORDED, report)
        gates = {g: GateResult(ok=True) for g in ("scope", "policy", "invariants", "ruff", "mypy", "pytest")}
        verification = Verification(
            id=vid,
            proposal_id=proposal.id,
            build_id=build_id,
            commit_id=commit,
            tree_id=tree,
            status=VS.PASSED,
            gates=gates,
            report_artifact_id=report.id,
            created_at=now,
            confinement="bench: recorded without running the gates",
        )
        txn.put(EventKind.VERIFICATION_RECORDED, verification)
        txn.record(
            EventKind.STATUS_CHANGED,
            proposal.id,
            {"proposal_id": proposal.id, "from": "BUILT", "to": "VERIFIED", "reason": "bench verification"},
        )


def _record_runs(forge: Any, skills: int, runs: int, log: Any, name: str) -> None:
    """``runs`` run records, spread over the skills, through run-skill's own recorder."""
    import time as clock

    from kavi.forge.run import _record_run
    from kavi.ledger.models import RunStatus
    from kavi.skills.loader import find_trusted

    trusted = [find_trusted(forge, f"skill_{i:04d}") for i in range(skills)]
    os_fsync = os.fsync
    os.fsync = lambda fd: None  # setup only: the vault's atomic writes need no durability here
    started = clock.monotonic()
    try:
        for n in range(runs):
            skill = trusted[n % skills]
            plan = SimpleNamespace(
                forge=forge,
                skill=skill,
                caller="bench",
                confinement="bench: recorded by the setup",
                limit=None,
                secrets=[],
            )
            text = f"run {n} of {skill.promotion.skill_name}"
            _record_run(
                plan,  # type: ignore[arg-type]
                RunStatus.SUCCEEDED,
                {"text": text},
                {"text": text, "length": len(text)},
                None,
                "2026-01-01T00:00:00.000000Z",
                clock.monotonic(),
            )
            if (n + 1) % 10_000 == 0:
                log(f"  {name}: {n + 1} runs recorded ({clock.monotonic() - started:.0f}s)")
    finally:
        os.fsync = os_fsync
