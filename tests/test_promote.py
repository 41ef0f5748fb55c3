"""promote-skill: a signed merge by the user, signed tag/notes/ledger mirror, and every refusal.

Real keys from ssh-keygen; real `git verify-commit` / `git verify-tag` with nothing
but git's own SSH-signature settings.
"""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import Verified
from kavi.errors import ApprovalError
from support.forge import git, kavi, kavi_json, propose_write_note, refs, ssh_key

SRC = Path(__file__).resolve().parents[1] / "src" / "kavi"


def _state(repo: Path) -> dict[str, Any]:
    import sqlite3

    con = sqlite3.connect(repo / ".git/kavi/ledger.db")
    (events,) = con.execute("SELECT count(*) FROM events").fetchone()
    con.close()
    return {
        "refs": refs(repo),
        "head": git("rev-parse", "HEAD", cwd=repo),
        "status": git("status", "--porcelain", "--ignored", cwd=repo),
        "events": events,
    }


def _git_ok(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)


def test_promotion_is_a_signed_merge_with_tag_notes_and_mirror(verified: Verified) -> None:
    repo, pid = verified.repo, verified.proposal_id
    out = kavi_json("promote-skill", pid, "--yes", cwd=repo)
    merge, tag = out["merge_commit"], out["tag"]
    assert tag == "kavi/write_note/v1" and out["status"] == "TRUSTED"
    assert out["approved_by"] == "ada@example.com"
    # git checks every signature with its own settings (gpg.ssh.allowedSignersFile)
    assert _git_ok(repo, "verify-commit", merge).returncode == 0
    assert _git_ok(repo, "verify-tag", tag).returncode == 0
    assert git("rev-parse", f"{tag}^{{commit}}", cwd=repo) == merge
    parents = git("rev-list", "--parents", "-n1", merge, cwd=repo).split()[1:]
    show = kavi_json("show", pid, cwd=repo)
    build = show["builds"][0]
    assert parents[1] == build["commit_id"]
    # the merge tree carries the skill, its test and the derived registry
    registry = yaml.safe_load(git("show", f"{merge}:skills/registry.yaml", cwd=repo))
    entry = registry["skills"]["write_note"]
    assert entry["version"] == 1 and entry["side_effect_class"] == "FILE_WRITE"
    assert entry["blob"] == git("rev-parse", f"{merge}:skills/write_note.py", cwd=repo)
    assert entry["input_model"] == "skills.write_note.WriteNoteInput"
    message = git("log", "-1", "--format=%B", merge, cwd=repo)
    assert "Kavi-Action: promote" in message and f"Kavi-Proposal: {pid}" in message
    # notes: promotion on the merge, build + verification on the build commit
    notes = git("log", "--notes=kavi", "-1", "--format=%N", merge, cwd=repo)
    assert f"Kavi-Promotion: {out['promotion_id']}" in notes
    build_notes = git("notes", "--ref=kavi", "show", build["commit_id"], cwd=repo)
    assert "Kavi-Build-Status: SUCCEEDED" in build_notes and "Kavi-Verification-Status: PASSED" in build_notes
    assert _git_ok(repo, "verify-commit", "refs/notes/kavi").returncode == 0
    # the ledger mirror: one signed commit per event, parent = previous, linear
    mirror = git("rev-list", "--reverse", "refs/kavi/ledger", cwd=repo).splitlines()
    assert len(mirror) == out["mirrored_events"] == _state(repo)["events"]
    for i, commit in enumerate(mirror, start=1):
        assert f"Kavi-Event-Seq: {i}" in git("log", "-1", "--format=%B", commit, cwd=repo)
        assert _git_ok(repo, "verify-commit", commit).returncode == 0
    # the checkout was updated; the proposal is TRUSTED; nothing is left pending
    assert (repo / "skills/write_note.py").exists()
    assert git("status", "--porcelain", cwd=repo) == ""
    assert kavi_json("show", pid, cwd=repo)["proposal"]["status"] == "TRUSTED"
    assert kavi_json("doctor", cwd=repo)["ok"] is True
    listed = kavi_json("list-skills", cwd=repo)["skills"]
    assert [s["name"] for s in listed] == ["write_note"]


def test_refused_without_terminal_and_without_yes(verified: Verified) -> None:
    before = _state(verified.repo)
    res = kavi("promote-skill", verified.proposal_id, "--format", "json", cwd=verified.repo)
    assert res.code == 1
    assert res.json["code"] == "KAVI-APPROVAL" and "--yes" in res.json["remedy"]
    assert _state(verified.repo) == before


def test_refused_for_an_unverified_build(verified: Verified) -> None:
    from support.forge import WRITE_NOTE_DIR

    repo = verified.repo
    pid = propose_write_note(repo, "write_note")
    kavi_json("build-skill", pid, "--backend", "files", "--from", str(WRITE_NOTE_DIR), cwd=repo)
    before = _state(repo)
    res = kavi("promote-skill", pid, "--yes", "--format", "json", cwd=repo)
    assert res.code == 1 and "not VERIFIED" in res.json["message"]
    assert "verify-skill" in res.json["remedy"]
    assert _state(repo) == before


def test_refused_when_the_build_moved_after_verification(verified: Verified) -> None:
    repo = verified.repo
    branch = kavi_json("show", verified.proposal_id, cwd=repo)["builds"][0]["branch_name"]
    git("worktree", "add", "-q", str(repo.parent / "wt"), branch, cwd=repo)
    (repo.parent / "wt" / "skills" / "write_note.py").write_text("# sneaky change\n")
    git("commit", "-q", "-am", "sneak", cwd=repo.parent / "wt")
    git("worktree", "remove", "--force", str(repo.parent / "wt"), cwd=repo)
    before = _state(repo)
    res = kavi("promote-skill", verified.proposal_id, "--yes", "--format", "json", cwd=repo)
    assert res.code == 1
    assert res.json["code"] == "KAVI-TRUST" and "moved after verification" in res.json["message"]
    assert _state(repo) == before


def test_refused_without_a_signing_key(verified: Verified) -> None:
    home = Path(git("config", "--global", "--list", "--show-origin", cwd=verified.repo).split()[0][5:]).parent
    (home / ".gitconfig").write_text("[user]\n\tname = Ada Tester\n\temail = ada@example.com\n")
    before = _state(verified.repo)
    res = kavi("promote-skill", verified.proposal_id, "--yes", "--format", "json", cwd=verified.repo)
    assert res.code == 1
    assert res.json["code"] == "KAVI-SIGNING"
    assert "git config --global gpg.format ssh" in res.json["remedy"]
    assert _state(verified.repo) == before


def test_refused_with_an_untrusted_key(verified: Verified, tmp_path: Path) -> None:
    from support.forge import use_signing_key

    other = ssh_key(tmp_path / "other", "id_other")
    use_signing_key(other)
    before = _state(verified.repo)
    res = kavi("promote-skill", verified.proposal_id, "--yes", "--format", "json", cwd=verified.repo)
    assert res.code == 1
    assert "not in .kavi/allowed_signers" in res.json["message"]
    assert "namespaces=" in res.json["remedy"]  # the exact line to add
    assert _state(verified.repo) == before


def test_refused_when_local_files_are_in_the_way(verified: Verified) -> None:
    repo = verified.repo
    (repo / "skills").mkdir()
    (repo / "skills" / "write_note.py").write_text("# my local draft, not committed\n")
    before = _state(repo)
    res = kavi("promote-skill", verified.proposal_id, "--yes", "--format", "json", cwd=repo)
    assert res.code == 1
    assert res.json["code"] == "KAVI-CONFLICT"
    assert "skills/write_note.py" in res.json["message"]
    assert (repo / "skills" / "write_note.py").read_text() == "# my local draft, not committed\n"
    assert _state(repo) == before


def test_promotion_on_another_checked_out_branch_leaves_the_checkout_alone(verified: Verified) -> None:
    repo = verified.repo
    git("switch", "-q", "-c", "feature", cwd=repo)
    out = kavi_json("promote-skill", verified.proposal_id, "--yes", cwd=repo)
    assert git("rev-parse", "main", cwd=repo) == out["merge_commit"]
    assert not (repo / "skills").exists()
    assert git("status", "--porcelain", cwd=repo) == ""


def test_approvals_cannot_be_forged() -> None:
    from kavi.cli.approval import Approval

    with pytest.raises(ApprovalError):
        Approval("digest", "mallory", "--yes", object())


def test_only_the_user_facing_commands_can_approve() -> None:
    """Hooks, background jobs and the library never mint an Approval (invariant 5)."""
    offenders = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).as_posix()
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            name = (
                node.id
                if isinstance(node, ast.Name)
                else node.attr
                if isinstance(node, ast.Attribute)
                else None
            )
            if name == "obtain_approval" and not rel.startswith("cli/"):
                offenders.append(rel)
            if name == "_MINT" and rel != "cli/approval.py":
                offenders.append(rel)
        if rel.startswith("hooks/"):
            imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
            assert not {m for m in imported if m.startswith(("kavi.cli", "kavi.forge.promote"))}, rel
    assert offenders == []


def test_promote_library_entry_point_needs_an_approval(verified: Verified) -> None:
    import os

    from kavi.errors import TrustError
    from kavi.forge.context import Forge
    from kavi.forge.promote import plan_promotion, promote
    from kavi.signing import user_signer

    old = Path.cwd()
    os.chdir(verified.repo)
    try:
        forge = Forge.open()
        plan = plan_promotion(forge, verified.proposal_id, user_signer(forge.repo))
        with pytest.raises(TrustError):
            promote(forge, plan, approval="yes please")  # type: ignore[arg-type]
        forge.close()
    finally:
        os.chdir(old)
