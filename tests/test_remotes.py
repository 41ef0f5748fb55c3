"""Remotes: Kavi's refs are fetched from every remote (also one added later); pushing is left alone."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from conftest import Verified
from support.forge import git, kavi, kavi_json, make_forge, new_repo

KAVI_FETCH = [
    "refs/kavi/*:refs/kavi/*",
    "refs/notes/kavi:refs/notes/kavi",
    "refs/tags/kavi/*:refs/tags/kavi/*",
]


def _config_all(repo: Path, key: str) -> list[str]:
    return git("config", "--get-all", key, cwd=repo, check=False).splitlines()


def test_init_sets_fetch_refspecs_and_leaves_push_alone(tmp_path: Path) -> None:
    server = tmp_path / "server.git"
    git("init", "-q", "--bare", str(server), cwd=tmp_path)
    repo = new_repo(tmp_path / "forge")
    git("remote", "add", "origin", str(server), cwd=repo)
    kavi_json("init", cwd=repo)
    fetch = _config_all(repo, "remote.origin.fetch")
    assert all(spec in fetch for spec in KAVI_FETCH)
    assert _config_all(repo, "remote.origin.push") == []
    # a plain `git push` behaves as without Kavi: the current branch only
    git("push", "-q", "-u", "origin", "main", cwd=repo)
    (repo / "x.txt").write_text("x\n")
    git("add", "x.txt", cwd=repo)
    git("commit", "-q", "-m", "x", cwd=repo)
    git("branch", "other", cwd=repo)
    git("push", "-q", cwd=repo)
    server_refs = git("for-each-ref", "--format=%(refname)", cwd=server).splitlines()
    assert server_refs == ["refs/heads/main"]


def test_a_remote_added_later_gets_the_fetch_refspecs_on_the_next_command(tmp_path: Path) -> None:
    repo = make_forge(tmp_path)
    git("remote", "add", "backup", str(tmp_path / "backup.git"), cwd=repo)
    res = kavi("status", cwd=repo)
    assert res.code == 0, res.output
    assert "remote.backup.fetch now fetches refs/kavi/*:refs/kavi/*" in res.stderr
    assert all(spec in _config_all(repo, "remote.backup.fetch") for spec in KAVI_FETCH)
    assert _config_all(repo, "remote.backup.push") == []
    assert "remote backup: fetches Kavi's refs; push them with: git push backup main" in res.stdout
    # once configured, nothing more is said (and the config is not read again)
    again = kavi("status", cwd=repo)
    assert "now fetches" not in again.stderr
    data = kavi_json("status", cwd=repo)
    assert data["remotes"] == [
        {
            "name": "backup",
            "fetches_kavi": True,
            "push": "git push backup main 'refs/tags/kavi/*' refs/notes/kavi refs/kavi/ledger",
        }
    ]


def test_the_push_refspecs_an_older_init_added_are_removed(tmp_path: Path) -> None:
    repo = make_forge(tmp_path)
    git("remote", "add", "origin", str(tmp_path / "origin.git"), cwd=repo)
    git("config", "--add", "remote.origin.push", "refs/heads/release:refs/heads/release", cwd=repo)
    for spec in ["HEAD", *KAVI_FETCH]:  # what D008 made init add
        git("config", "--add", "remote.origin.push", spec, cwd=repo)
    res = kavi("list-proposals", cwd=repo)
    assert res.code == 0, res.output
    assert "removed the push refspecs an earlier `git kavi init` added to origin" in res.stderr
    # the user's own push refspec stays
    assert _config_all(repo, "remote.origin.push") == ["refs/heads/release:refs/heads/release"]


@pytest.mark.slow
def test_git_kavi_push_and_the_printed_push_command(verified: Verified, tmp_path: Path) -> None:
    repo = verified.repo
    kavi_json("promote-skill", verified.proposal_id, "--yes", cwd=repo)
    kavi_json("run-skill", "write_note", "--json", '{"path": "a.md", "title": "A", "body": "B"}', cwd=repo)
    server = tmp_path / "server.git"
    git("init", "-q", "--bare", str(server), cwd=tmp_path)
    git("remote", "add", "origin", str(server), cwd=repo)
    out = kavi_json("push", cwd=repo)
    assert out["mirrored"] == 2 and out["unmirrored"] == 0  # the run's artifact and record
    server_refs = set(git("for-each-ref", "--format=%(refname)", cwd=server).splitlines())
    assert {"refs/heads/main", "refs/kavi/ledger", "refs/notes/kavi", "refs/tags/kavi/write_note/v1"} <= (
        server_refs
    )
    assert git("rev-parse", "refs/kavi/ledger", cwd=server) == git("rev-parse", "refs/kavi/ledger", cwd=repo)
    # the command status prints works as printed
    kavi_json("run-skill", "write_note", "--json", '{"path": "b.md", "title": "A", "body": "B"}', cwd=repo)
    kavi_json("ledger", "sync", cwd=repo)
    (printed,) = [r["push"] for r in kavi_json("status", cwd=repo)["remotes"]]
    done = subprocess.run(shlex.split(printed), cwd=repo, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert git("rev-parse", "refs/kavi/ledger", cwd=server) == git("rev-parse", "refs/kavi/ledger", cwd=repo)
    # an unknown remote is a usage error
    res = kavi("push", "nosuch", cwd=repo)
    assert res.code == 2 and "no remote named 'nosuch'" in res.output
