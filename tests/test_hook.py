"""The server-side pre-receive hook: real bare repository, real `git push` from clones.

Sanctioned promotions and revocations are accepted; ordinary pushes pass untouched;
every bypass attempt is rejected with the rule that caught it, and the server's refs
stay exactly as they were.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import Verified, isolation
from support.forge import git, kavi, kavi_json, make_forge, refs, ssh_key

pytestmark = pytest.mark.slow

ALL_REFS = ["main", "refs/tags/kavi/*:refs/tags/kavi/*", "refs/notes/kavi", "refs/kavi/ledger"]


@dataclass
class Served:
    repo: Path  # the forge clone (promotion done locally)
    origin: Path  # bare repository with the hook installed
    key: Path  # trusted key (Ada)

    def push(
        self, *specs: str, cwd: Path | None = None, force: bool = False
    ) -> subprocess.CompletedProcess[str]:
        args = ["git", "push", "--porcelain", *(["--force"] if force else []), "origin", *specs]
        return subprocess.run(args, cwd=cwd or self.repo, capture_output=True, text=True)

    def server_refs(self) -> dict[str, str]:
        return refs(self.origin)


@pytest.fixture(scope="session")
def served_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A forge with write_note v1 promoted locally; origin holds only the pre-promotion history."""
    from conftest import _make_verified

    root = tmp_path_factory.mktemp("served")
    with isolation(root):
        pid = _make_verified(root)
        repo = root / "forge"
        origin = root / "origin.git"
        git("init", "-q", "--bare", str(origin), cwd=root)
        git("remote", "add", "origin", str(origin), cwd=repo)
        installed = kavi_json("hooks", "install", "--server", str(origin), cwd=repo)
        assert installed["trust"], installed
        # first push to an empty repository: the governance commit must match the pinned root
        push = subprocess.run(
            ["git", "push", "-q", "origin", "main"], cwd=repo, capture_output=True, text=True
        )
        assert push.returncode == 0, push.stderr
        kavi_json("promote-skill", pid, "--yes", cwd=repo)
    return root


def _copy(template: Path, tmp_path: Path) -> Served:
    from support.forge import use_signing_key

    shutil.copytree(template / "forge", tmp_path / "forge", symlinks=True)
    shutil.copytree(template / "origin.git", tmp_path / "origin.git", symlinks=True)
    shutil.copytree(template / "keys", tmp_path / "keys")
    repo = tmp_path / "forge"
    key = tmp_path / "keys" / "id_ed25519"
    use_signing_key(key)
    git("remote", "set-url", "origin", str(tmp_path / "origin.git"), cwd=repo)
    git("config", "gpg.ssh.allowedSignersFile", str(repo / ".kavi/allowed_signers"), cwd=repo)
    return Served(repo, tmp_path / "origin.git", key)


@pytest.fixture
def served(tmp_path: Path, served_template: Path) -> Served:
    return _copy(served_template, tmp_path)


@pytest.fixture
def promoted(served: Served) -> Served:
    """The promotion pushed: server and clone agree; the baseline for bypass attempts."""
    res = served.push(*ALL_REFS)
    assert res.returncode == 0, res.stderr
    return served


def _rejected(res: subprocess.CompletedProcess[str], rule: str, *fragments: str) -> None:
    assert res.returncode != 0, f"push was accepted:\n{res.stdout}\n{res.stderr}"
    assert f"rule:    {rule}" in res.stderr, res.stderr
    for fragment in fragments:
        assert fragment in res.stderr, res.stderr
    assert "do this:" in res.stderr


def _commit_all(repo: Path, message: str, *extra: str) -> str:
    git("add", "-A", cwd=repo)
    git("commit", "-q", *extra, "-m", message, cwd=repo)
    return git("rev-parse", "HEAD", cwd=repo)


def protect_release(repo: Path) -> None:
    """A signed governance commit adding ``release`` to the protected branches."""
    cfg = repo / ".kavi" / "config.yaml"
    text = cfg.read_text()
    if "protected_branches: []" in text:
        text = text.replace("protected_branches: []", "protected_branches:\n- release")
    else:
        text += "protected_branches:\n- release\n"
    cfg.write_text(text)
    _commit_all(repo, "protect release", "-S")


def move_skills_dir(repo: Path, new: str) -> str:
    """A signed governance commit moving ``skills_dir`` to ``new``, carrying the registry
    along (the trust rule requires it: the registry keeps naming what the ledger trusts)."""
    cfg = repo / ".kavi" / "config.yaml"
    text = cfg.read_text()
    assert "skills_dir: skills\n" in text
    cfg.write_text(text.replace("skills_dir: skills\n", f"skills_dir: {new}\n"))
    if (repo / "skills" / "registry.yaml").exists():
        (repo / new).mkdir(parents=True, exist_ok=True)
        git("mv", "skills/registry.yaml", f"{new}/registry.yaml", cwd=repo)
    return _commit_all(repo, f"governance: skills now live in {new}/", "-S")


def server_git(served: Served, *args: str) -> str:
    return git("--git-dir", str(served.origin), *args, cwd=served.origin.parent)


# -- sanctioned -------------------------------------------------------------------------


def test_sanctioned_promotion_is_accepted(served: Served) -> None:
    res = served.push(*ALL_REFS)
    assert res.returncode == 0, res.stderr
    server = served.server_refs()
    local = refs(served.repo)
    for ref in ("refs/heads/main", "refs/tags/kavi/write_note/v1", "refs/notes/kavi", "refs/kavi/ledger"):
        assert server[ref] == local[ref]


def test_sanctioned_revocation_is_accepted(promoted: Served) -> None:
    out = kavi_json(
        "revoke-skill", "write_note", "--reason", "superseded by a safer skill", "--yes", cwd=promoted.repo
    )
    assert out["status"] == "REVOKED"
    res = promoted.push(*ALL_REFS)
    assert res.returncode == 0, res.stderr
    assert promoted.server_refs()["refs/heads/main"] == out["commit"]
    run = kavi(
        "run-skill",
        "write_note",
        "--json",
        '{"path": "a", "title": "b", "body": "c"}',
        "--format",
        "json",
        cwd=promoted.repo,
    )
    assert run.code == 1 and "revoked" in run.json["message"]


def test_ordinary_pushes_pass_untouched(promoted: Served) -> None:
    (promoted.repo / "docs").mkdir()
    (promoted.repo / "docs" / "notes.md").write_text("hello\n")
    _commit_all(promoted.repo, "docs: add notes")
    (promoted.repo / "README.md").write_text("# renamed forge\n")
    _commit_all(promoted.repo, "readme")
    git("switch", "-q", "-c", "feature", cwd=promoted.repo)
    (promoted.repo / "skills" / "write_note.py").write_text("# feature branches are not protected\n")
    _commit_all(promoted.repo, "wip on a feature branch")
    res = promoted.push("main", "feature")
    assert res.returncode == 0, res.stderr


def test_first_push_to_an_empty_repository_is_checked(tmp_path: Path) -> None:
    key = ssh_key(tmp_path / "keys")
    from support.forge import use_signing_key

    use_signing_key(key)
    repo = make_forge(tmp_path)
    origin = tmp_path / "origin.git"
    git("init", "-q", "--bare", str(origin), cwd=tmp_path)
    kavi_json("hooks", "install", "--server", str(origin), cwd=repo)
    git("remote", "add", "origin", str(origin), cwd=repo)
    # an ordinary repository (no .kavi yet) passes untouched
    plain = tmp_path / "plain"
    git("clone", "-q", str(origin), str(plain), cwd=tmp_path)
    (plain / "a.txt").write_text("a\n")
    _commit_all(plain, "plain commit")
    assert subprocess.run(["git", "push", "-q", "origin", "HEAD:refs/heads/other"], cwd=plain).returncode == 0
    # the commit that first adds .kavi/ must carry exactly the pinned trust root
    good = git("rev-parse", "HEAD", cwd=repo)
    other_key = ssh_key(tmp_path / "mallory", "id_mallory")
    signers = repo / ".kavi/allowed_signers"
    signers.write_text(
        signers.read_text() + f'mallory namespaces="git" {other_key.with_suffix(".pub").read_text()}'
    )
    git("commit", "-q", "-a", "--amend", "-S", "--no-edit", cwd=repo)
    res = subprocess.run(["git", "push", "origin", "main"], cwd=repo, capture_output=True, text=True)
    _rejected(res, "trust-root-mismatch", ".kavi/allowed_signers")
    assert "refs/heads/main" not in refs(origin)
    # the forge as `git kavi init` made it is accepted, and later trusted changes build on it
    git("reset", "-q", "--hard", good, cwd=repo)
    assert subprocess.run(["git", "push", "-q", "origin", "main"], cwd=repo).returncode == 0


# -- bypass attempts ----------------------------------------------------------------------


def test_direct_commit_to_a_skill_file(promoted: Served) -> None:
    before = promoted.server_refs()
    path = promoted.repo / "skills" / "write_note.py"
    path.write_text(path.read_text() + "\nimport os  # sneaky\n")
    commit = _commit_all(promoted.repo, "tweak the skill")
    res = promoted.push("main")
    _rejected(res, "protected-path", "skills/write_note.py", commit, "git kavi", "promote-skill")
    assert promoted.server_refs() == before


def test_direct_edit_of_the_registry(promoted: Served) -> None:
    path = promoted.repo / "skills" / "registry.yaml"
    path.write_text(path.read_text().replace("version: 1", "version: 9"))
    _commit_all(promoted.repo, "bump")
    _rejected(promoted.push("main"), "protected-path", "skills/registry.yaml")


def test_rename_of_a_skill(promoted: Served) -> None:
    git("mv", "skills/write_note.py", "skills/write_memo.py", cwd=promoted.repo)
    _commit_all(promoted.repo, "rename")
    _rejected(promoted.push("main"), "protected-path", "skills/write")


def test_deletion_of_a_skill_test(promoted: Served) -> None:
    git("rm", "-q", "tests/test_skill_write_note.py", cwd=promoted.repo)
    _commit_all(promoted.repo, "drop the test")
    _rejected(promoted.push("main"), "protected-path", "tests/test_skill_write_note.py", "deletes")


def test_mode_change_of_a_skill(promoted: Served) -> None:
    (promoted.repo / "skills" / "write_note.py").chmod(0o755)
    _commit_all(promoted.repo, "make it executable")
    _rejected(promoted.push("main"), "protected-path", "changes the mode")


def test_skill_change_inside_an_unrelated_merge(promoted: Served) -> None:
    repo = promoted.repo
    git("switch", "-q", "-c", "feature", cwd=repo)
    (repo / "skills" / "write_note.py").write_text("# replaced on a feature branch\n")
    _commit_all(repo, "feature work")
    git("switch", "-q", "main", cwd=repo)
    (repo / "CHANGELOG.md").write_text("x\n")
    _commit_all(repo, "changelog")
    git("merge", "-q", "--no-ff", "--no-edit", "feature", cwd=repo)
    _rejected(promoted.push("main"), "protected-path", "inside a merge that is not a Kavi promotion")


def test_force_push_of_the_protected_branch(promoted: Served) -> None:
    repo = promoted.repo
    git("reset", "-q", "--hard", "HEAD~1", cwd=repo)
    (repo / "x.txt").write_text("rewritten history\n")
    _commit_all(repo, "rewrite")
    _rejected(promoted.push("main", force=True), "non-fast-forward", "force-push")


def test_deletion_of_the_protected_branch(promoted: Served) -> None:
    _rejected(promoted.push(":main"), "protected-branch-delete")


def _forge_promotion(served: Served, *, sign_with: Path | None, tamper: str | None = None) -> tuple[str, str]:
    """Hand-craft a promotion-like merge of a v2 of write_note (not made by Kavi)."""
    import yaml

    repo = served.repo
    main = git("rev-parse", "main", cwd=repo)
    git("switch", "-q", "-c", "fake-build", cwd=repo)
    skill = repo / "skills" / "write_note.py"
    skill.write_text(skill.read_text() + "\n# v2\n")
    build = _commit_all(repo, "fake build")
    git("switch", "-q", "main", cwd=repo)
    git("merge", "-q", "--no-ff", "--no-commit", "fake-build", cwd=repo)
    if tamper == "tree":
        skill.write_text(skill.read_text() + "# not what was built\n")
    if tamper == "extra":
        (repo / "backdoor.py").write_text("print('hi')\n")
    registry = yaml.safe_load((repo / "skills/registry.yaml").read_text())
    git("add", "-A", cwd=repo)
    blob = git("rev-parse", ":skills/write_note.py", cwd=repo)
    import hashlib

    sha = hashlib.sha256(git("cat-file", "blob", blob, cwd=repo).encode() + b"\n").hexdigest()
    registry["skills"]["write_note"].update({"version": 2, "blob": blob, "sha256": sha})
    (repo / "skills/registry.yaml").write_text(yaml.safe_dump(registry, sort_keys=False))
    git("add", "-A", cwd=repo)
    test_blob = git("rev-parse", ":tests/test_skill_write_note.py", cwd=repo)
    reg_blob = git("rev-parse", ":skills/registry.yaml", cwd=repo)
    message = (
        "kavi: promote write_note v2\n\nKavi-Action: promote\nKavi-Skill: write_note\nKavi-Version: 2\n"
        f"Kavi-Skill-Path: skills/write_note.py\nKavi-Skill-Blob: {blob}\n"
        f"Kavi-Test-Path: tests/test_skill_write_note.py\nKavi-Test-Blob: {test_blob}\n"
        f"Kavi-Registry-Blob: {reg_blob}\n"
    )
    tree = git("write-tree", cwd=repo)
    args = ["commit-tree", tree, "-p", main, "-p", build, "-m", message]
    if sign_with is not None:
        args = ["-c", f"user.signingkey={sign_with}.pub", *args, "-S"]
    merge = git(*args, cwd=repo)
    git("merge", "--abort", cwd=repo, check=False)
    git("reset", "-q", "--hard", merge, cwd=repo)
    body = message.split("\n\n", 1)[1]
    import json

    forge = json.loads((repo / ".git/kavi/trust-root.json").read_text())["forge_id"]
    trailers = f"Kavi-Merge: {merge}\nKavi-Tree: {tree}\nKavi-Forge: {forge}\n"
    tag_msg = f"Kavi promotion: write_note v2\n\n{body}{trailers}"
    git(
        "-c",
        f"user.signingkey={(sign_with or served.key)}.pub",
        "tag",
        "-s",
        "-m",
        tag_msg,
        "kavi/write_note/v2",
        merge,
        cwd=repo,
    )
    return merge, build


def test_unsigned_promotion_merge(promoted: Served) -> None:
    merge, _ = _forge_promotion(promoted, sign_with=None)
    _rejected(promoted.push("main", "refs/tags/kavi/write_note/v2"), "promotion-signature", "unsigned", merge)


def test_promotion_merge_signed_by_an_unknown_key(promoted: Served, tmp_path: Path) -> None:
    mallory = ssh_key(tmp_path / "mallory", "id_mallory")
    _forge_promotion(promoted, sign_with=mallory)
    _rejected(
        promoted.push("main", "refs/tags/kavi/write_note/v2"),
        "promotion-signature",
        "not signed by an allowed signer",
    )


def test_promotion_whose_tree_differs_from_the_build(promoted: Served) -> None:
    _forge_promotion(promoted, sign_with=promoted.key, tamper="tree")
    _rejected(
        promoted.push("main", "refs/tags/kavi/write_note/v2"),
        "promotion-build-mismatch",
        "differs from the build commit",
    )


def test_extra_file_slipped_into_a_promotion_merge(promoted: Served) -> None:
    _forge_promotion(promoted, sign_with=promoted.key, tamper="extra")
    _rejected(promoted.push("main", "refs/tags/kavi/write_note/v2"), "promotion-extra-path", "backdoor.py")


def test_promotion_without_its_tag(promoted: Served) -> None:
    _forge_promotion(promoted, sign_with=promoted.key)
    _rejected(promoted.push("main"), "promotion-binding", "kavi/write_note/v2")


def test_forged_tag(promoted: Served) -> None:
    git("tag", "kavi/write_note/v7", "main", cwd=promoted.repo)  # lightweight
    _rejected(promoted.push("refs/tags/kavi/write_note/v7"), "tag-not-annotated")
    git("tag", "-a", "-m", "looks official", "kavi/write_note/v8", "main", cwd=promoted.repo)  # unsigned
    _rejected(promoted.push("refs/tags/kavi/write_note/v8"), "tag-signature", "unsigned tag")


def test_moved_tag(promoted: Served) -> None:
    git("tag", "-f", "-s", "-m", "moved", "kavi/write_note/v1", "main~1", cwd=promoted.repo)
    _rejected(promoted.push("refs/tags/kavi/write_note/v1", force=True), "tag-moved")


def test_deleted_tag(promoted: Served) -> None:
    _rejected(promoted.push(":refs/tags/kavi/write_note/v1"), "tag-delete")


def test_rewritten_ledger(promoted: Served) -> None:
    repo = promoted.repo
    chain = git("rev-list", "--reverse", "refs/kavi/ledger", cwd=repo).splitlines()
    message = git("log", "-1", "--format=%B", chain[2], cwd=repo).replace("Ada Tester", "Mallory")
    tree = git("rev-parse", f"{chain[2]}^{{tree}}", cwd=repo)
    forged = git("commit-tree", tree, "-p", chain[1], "-S", "-m", message, cwd=repo)
    git("update-ref", "refs/kavi/ledger", forged, cwd=repo)
    _rejected(promoted.push("refs/kavi/ledger", force=True), "ledger-rewrite", "only fast-forwards")


def test_unsigned_ledger_extension(promoted: Served) -> None:
    repo = promoted.repo
    tip = git("rev-parse", "refs/kavi/ledger", cwd=repo)
    tree = git("rev-parse", f"{tip}^{{tree}}", cwd=repo)
    extra = git("commit-tree", tree, "-p", tip, "-m", "kavi ledger #999: forged", cwd=repo)
    git("update-ref", "refs/kavi/ledger", extra, cwd=repo)
    _rejected(promoted.push("refs/kavi/ledger"), "ledger-signature", extra)


def test_ledger_gap(promoted: Served) -> None:
    repo = promoted.repo
    chain = git("rev-list", "--reverse", "refs/kavi/ledger", cwd=repo).splitlines()
    tip = chain[-1]
    message = git("log", "-1", "--format=%B", tip, cwd=repo)  # re-appending an old event: seq goes backwards
    forged = git(
        "commit-tree", git("rev-parse", f"{tip}^{{tree}}", cwd=repo), "-p", tip, "-S", "-m", message, cwd=repo
    )
    git("update-ref", "refs/kavi/ledger", forged, cwd=repo)
    _rejected(promoted.push("refs/kavi/ledger"), "ledger-chain", "gap")


def test_rewritten_notes(promoted: Served) -> None:
    repo = promoted.repo
    git(
        "notes",
        "--ref=kavi",
        "add",
        "-f",
        "-m",
        "Kavi-Verification-Status: PASSED (trust me)",
        "main~1",
        cwd=repo,
    )
    git("update-ref", "refs/notes/kavi", git("rev-parse", "refs/notes/kavi", cwd=repo), cwd=repo)
    _rejected(promoted.push("refs/notes/kavi"), "notes-signature")
    base = git("rev-parse", "refs/notes/kavi~1", cwd=repo)
    git(
        "update-ref",
        "refs/notes/kavi",
        git("commit-tree", git("rev-parse", f"{base}^{{tree}}", cwd=repo), "-S", "-m", "rewrite", cwd=repo),
        cwd=repo,
    )
    _rejected(promoted.push("refs/notes/kavi", force=True), "notes-rewrite")


def test_trust_file_change_signed_only_by_the_new_key(promoted: Served, tmp_path: Path) -> None:
    repo = promoted.repo
    mallory = ssh_key(tmp_path / "mallory", "id_mallory")
    signers = repo / ".kavi/allowed_signers"
    signers.write_text(
        signers.read_text() + f'mallory namespaces="git" {mallory.with_suffix(".pub").read_text()}'
    )
    git("add", "-A", cwd=repo)
    git("-c", f"user.signingkey={mallory}.pub", "commit", "-q", "-S", "-m", "add mallory", cwd=repo)
    _rejected(
        promoted.push("main"),
        "governance-untrusted",
        ".kavi/allowed_signers",
        "a new key cannot approve its own addition",
    )


def test_unsigned_policy_change(promoted: Served) -> None:
    policy = promoted.repo / ".kavi/policy.yaml"
    policy.write_text(policy.read_text().replace("forbid_dynamic_exec: true", "forbid_dynamic_exec: false"))
    _commit_all(promoted.repo, "relax the policy")
    _rejected(promoted.push("main"), "governance-untrusted", ".kavi/policy.yaml", "unsigned")


def test_trusted_governance_change_is_accepted(promoted: Served) -> None:
    policy = promoted.repo / ".kavi/policy.yaml"
    policy.write_text(policy.read_text().replace("timeout_seconds: 60.0", "timeout_seconds: 30.0"))
    _commit_all(promoted.repo, "shorter runtime timeout", "-S")
    assert promoted.push("main").returncode == 0


def test_backdated_signature_by_an_expired_key(promoted: Served, tmp_path: Path) -> None:
    repo = promoted.repo
    bob = ssh_key(tmp_path / "bob", "id_bob")
    signers = repo / ".kavi/allowed_signers"
    signers.write_text(
        signers.read_text() + f'bob@example.com namespaces="git",valid-before="20200101" '
        f"{bob.with_suffix('.pub').read_text()}"
    )
    _commit_all(repo, "bob's key, expired since 2020", "-S")
    assert promoted.push("main").returncode == 0
    policy = repo / ".kavi/policy.yaml"
    policy.write_text(policy.read_text().replace("network: false", "network: true"))
    git("add", "-A", cwd=repo)
    backdated = {"GIT_COMMITTER_DATE": "@1546300800 +0000", "GIT_AUTHOR_DATE": "@1546300800 +0000"}
    git(
        "-c",
        f"user.signingkey={bob}.pub",
        "commit",
        "-q",
        "-S",
        "-m",
        "turn the network on",
        cwd=repo,
        env=backdated,
    )
    # git itself would judge the key at the (signer-chosen) commit date and accept it
    verify = subprocess.run(["git", "verify-commit", "HEAD"], cwd=repo, capture_output=True, text=True)
    assert verify.returncode == 0
    _rejected(promoted.push("main"), "governance-untrusted", ".kavi/policy.yaml")


def test_existing_hook_is_chained_not_overwritten(tmp_path: Path, verified: Verified) -> None:
    origin = tmp_path / "srv.git"
    git("init", "-q", "--bare", str(origin), cwd=tmp_path)
    legacy = origin / "hooks" / "pre-receive"
    legacy.write_text("#!/bin/sh\necho legacy-hook-ran >&2\nexit 0\n")
    legacy.chmod(0o755)
    out = kavi_json("hooks", "install", "--server", str(origin), cwd=verified.repo)
    assert out["chained"] and Path(out["chained"]).read_text().startswith("#!/bin/sh\necho legacy")
    git("remote", "add", "srv", str(origin), cwd=verified.repo)
    res = subprocess.run(["git", "push", "srv", "main"], cwd=verified.repo, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "legacy-hook-ran" in res.stderr
    # reinstalling keeps the chained hook and does not chain itself
    kavi_json("hooks", "install", "--server", str(origin), cwd=verified.repo)
    assert "legacy" in (origin / "hooks" / "pre-receive.chained").read_text()


def test_client_pre_push_hook_stops_what_the_server_would_reject(promoted: Served) -> None:
    repo = promoted.repo
    kavi_json("hooks", "install", cwd=repo)
    path = repo / "skills" / "write_note.py"
    path.write_text(path.read_text() + "# local edit\n")
    _commit_all(repo, "edit skill")
    res = subprocess.run(["git", "push", "origin", "main"], cwd=repo, capture_output=True, text=True)
    assert res.returncode != 0
    assert "kavi: the server will reject refs/heads/main" in res.stderr
    assert "--no-verify" in res.stderr


def test_shipped_hook_shims_match_the_installer() -> None:
    from kavi.hooks.install import shim

    top = Path(__file__).resolve().parents[1] / "hooks"
    assert (top / "pre-receive").read_text() == shim("pre-receive", "python3")
    assert (top / "pre-push").read_text() == shim("pre-push", "python3")
    assert os.access(top / "pre-receive", os.X_OK)


def test_downgrade_through_a_merge_whose_first_parent_is_another_line(promoted: Served) -> None:
    """A merge of main into an old line, pushed as main, must not bring old skill versions back."""
    repo = promoted.repo
    main = git("rev-parse", "main", cwd=repo)
    old = git("rev-parse", "main^1", cwd=repo)  # before the promotion: no skill yet
    git("switch", "-q", "-c", "old-line", old, cwd=repo)
    (repo / "notes.txt").write_text("harmless\n")
    _commit_all(repo, "work on the old line")
    git("merge", "-q", "--no-edit", "-s", "ours", main, cwd=repo)  # keeps the old tree: the skill disappears
    res = promoted.push("HEAD:main")
    _rejected(res, "first-parent", "does not pass through its current tip")


def test_fsck_is_enabled_and_replace_refs_are_off_on_the_server(promoted: Served) -> None:
    assert git("config", "receive.fsckObjects", cwd=promoted.origin) == "true"
    assert git("config", "core.useReplaceRefs", cwd=promoted.origin) == "false"
