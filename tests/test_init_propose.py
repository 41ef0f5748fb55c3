"""git kavi init, propose-skill, status/show/list-proposals and the artifacts they write."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from kavi.hashing import blake3_hex, sha256_hex
from support.forge import (
    WRITE_NOTE_SCHEMA,
    git,
    kavi,
    kavi_json,
    make_forge,
    new_repo,
    propose_write_note,
    ssh_key,
    use_signing_key,
)


def test_init_outside_a_git_repository_is_refused(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    res = kavi("init", cwd=plain)
    assert res.code == 2
    assert "not inside a git repository" in res.stderr
    assert "git init" in res.stderr  # says what to do
    assert list(plain.iterdir()) == []


def test_init_in_a_bare_repository_is_refused(tmp_path: Path) -> None:
    git("init", "-q", "--bare", str(tmp_path / "srv.git"), cwd=tmp_path)
    res = kavi("init", "--format", "json", cwd=tmp_path / "srv.git")
    assert res.code == 2
    assert res.json["code"] == "KAVI-NOT-A-FORGE"


def test_init_commits_governance_and_is_idempotent(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "forge")
    git("remote", "add", "origin", str(tmp_path / "elsewhere.git"), cwd=repo)
    first = kavi_json("init", cwd=repo)
    assert first["commit"]
    files = git("show", "--name-only", "--format=", "HEAD", cwd=repo).splitlines()
    assert sorted(files) == [
        ".gitignore",
        ".kavi/allowed_signers",
        ".kavi/config.yaml",
        ".kavi/policy.yaml",
    ]
    config = yaml.safe_load((repo / ".kavi/config.yaml").read_text())
    assert config["skills_dir"] == "skills" and config["target_branch"] == "main"
    policy = yaml.safe_load((repo / ".kavi/policy.yaml").read_text())
    assert "subprocess" in policy["scanner"]["forbidden_imports"]
    assert policy["scanner"]["forbid_dynamic_exec"] is True
    assert policy["scanner"]["network"] is False
    assert (repo / ".git/kavi/ledger.db").exists()
    assert git("config", "--get-all", "notes.displayRef", cwd=repo) == "refs/notes/kavi*"
    assert "refs/kavi/*:refs/kavi/*" in git("config", "--get-all", "remote.origin.fetch", cwd=repo)
    assert git("config", "--get-all", "remote.origin.push", cwd=repo, check=False) == ""  # D062
    assert git("status", "--porcelain", cwd=repo) == ""
    head = git("rev-parse", "HEAD", cwd=repo)
    config_before = (repo / ".git/config").read_text()
    second = kavi_json("init", cwd=repo)
    assert second["commit"] is None and second["created"] == [] and second["configured"] == []
    assert git("rev-parse", "HEAD", cwd=repo) == head
    assert (repo / ".git/config").read_text() == config_before
    events = kavi_json("status", cwd=repo)["events"]
    assert events == 1  # forge.initialized once


def test_init_lists_the_users_signing_key(tmp_path: Path) -> None:
    key = ssh_key(tmp_path / "keys")
    use_signing_key(key)
    repo = new_repo(tmp_path / "forge")
    kavi_json("init", cwd=repo)
    signers = (repo / ".kavi/allowed_signers").read_text()
    pub = (tmp_path / "keys/id_ed25519.pub").read_text().split()[1]
    assert f'ada@example.com namespaces="git" ssh-ed25519 {pub}' in signers
    # the governance commit is signed and git verifies it with its own settings
    assert subprocess.run(["git", "verify-commit", "HEAD"], cwd=repo, capture_output=True).returncode == 0


def test_init_refuses_to_mix_in_staged_changes(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "forge")
    (repo / ".gitignore").write_text("*.tmp\n")
    git("add", ".gitignore", cwd=repo)
    head = git("rev-parse", "HEAD", cwd=repo)
    res = kavi("init", cwd=repo)
    assert res.code == 3 and "staged changes in the way: .gitignore" in res.stderr
    assert git("rev-parse", "HEAD", cwd=repo) == head
    assert not (repo / ".kavi").exists()
    assert not (repo / ".git/kavi").exists()


def test_init_in_an_empty_repository(tmp_path: Path) -> None:
    repo = tmp_path / "empty"
    git("init", "-q", "-b", "trunk", str(repo), cwd=tmp_path)
    data = kavi_json("init", cwd=repo)
    assert data["target_branch"] == "trunk"
    assert git("log", "--format=%s", cwd=repo) == "kavi: initialise forge governance"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--name", "Write_Note"], "invalid skill name"),
        (["--name", "../etc"], "invalid skill name"),
        (["--name", "class"], "keyword"),
        (["--name", "test_thing"], "pytest"),
        (["--name", "a" * 65], "invalid skill name"),
        (["--side-effect", "TELEPORT"], "unknown side-effect class"),
        (["--io-schema-json", "{not json"], "not valid JSON"),
        (["--io-schema-json", '{"input": {}}'], "exactly the keys"),
        (["--io-schema-json", '{"input": {"a": "tuple"}, "output": {"b": "str"}}'], "unsupported type"),
        (["--io-schema-json", '{"input": {"a": "str"}, "output": {}}'], "no fields"),
        (["--io-schema-json", '{"input": {"model_x": "str"}, "output": {"b": "str"}}'], "invalid field"),
        (["--desc", "   "], "description is empty"),
        (["--secret", "lower"], "invalid secret name"),
    ],
)
def test_propose_rejects_bad_input_and_leaves_nothing(tmp_path: Path, args: list[str], fragment: str) -> None:
    repo = make_forge(tmp_path)
    base = {
        "--name": "write_note",
        "--desc": "Write a note",
        "--side-effect": "FILE_WRITE",
        "--io-schema-json": WRITE_NOTE_SCHEMA,
    }
    extra: list[str] = []
    for flag, value in zip(args[::2], args[1::2], strict=True):
        if flag in base:
            base[flag] = value
        else:
            extra += [flag, value]
    argv = [x for kv in base.items() for x in kv] + extra
    res = kavi("propose-skill", *argv, "--format", "json", cwd=repo)
    assert res.code == 2, res.output
    err = res.json
    assert fragment in (err["message"] + (err["why"] or ""))
    assert err["remedy"] or err["why"]
    assert kavi_json("list-proposals", cwd=repo)["proposals"] == []
    assert not (repo / "vault_out/kavi").exists()


def test_propose_writes_spec_artifact_and_row(tmp_path: Path) -> None:
    repo = make_forge(tmp_path)
    data = kavi_json(
        "propose-skill",
        "--name",
        "summarize_notes",
        "--desc",
        "Summarise notes",
        "--side-effect",
        "read_only",
        "--io-schema-json",
        '{"input": {"tag": "string", "limit": "Optional[int]", "tags": "list[ str ]"},'
        ' "output": {"summary": "str"}}',
        "--secret",
        "NOTION_TOKEN",
        cwd=repo,
    )
    assert data["status"] == "PROPOSED"
    assert data["io_schema"]["input"] == {"tag": "str", "limit": "int | None", "tags": "list[str]"}
    assert data["required_secrets"] == ["NOTION_TOKEN"]
    spec = repo / data["spec_artifact"]
    text = spec.read_text()
    front = yaml.safe_load(text.split("---\n")[1])
    assert front["kind"] == "SKILL_SPEC"
    assert front["proposal_id"] == data["proposal_id"]
    shown = kavi_json("show", data["proposal_id"][:6], cwd=repo)
    (artifact,) = shown["artifacts"]
    raw = spec.read_bytes()
    assert artifact["blake3"] == blake3_hex(raw) and artifact["sha256"] == sha256_hex(raw)
    listed = kavi_json("list-proposals", "--status", "proposed", cwd=repo)["proposals"]
    assert [p["name"] for p in listed] == ["summarize_notes"]


def test_build_log_links_its_packet_with_a_wikilink(tmp_path: Path) -> None:
    from support.forge import WRITE_NOTE_DIR

    repo = make_forge(tmp_path)
    pid = propose_write_note(repo)
    build = kavi_json("build-skill", pid, "--backend", "files", "--from", str(WRITE_NOTE_DIR), cwd=repo)
    log = (repo / build["log_artifact"]).read_text()
    packet = Path(build["packet_artifact"]).stem
    assert f"[[{packet}]]" in log
    packet_text = (repo / build["packet_artifact"]).read_text()
    for fragment in ("skills/write_note.py", "tests/test_skill_write_note.py", "class BaseSkill", "ruff"):
        assert fragment in packet_text


def test_every_command_prints_exactly_one_json_object(tmp_path: Path) -> None:
    repo = make_forge(tmp_path)
    pid = propose_write_note(repo)
    for argv in (["status"], ["list-proposals"], ["show", pid], ["init"]):
        res = kavi(*argv, "--format", "json", cwd=repo)
        assert res.code == 0, res.output
        json.loads(res.stdout)  # exactly one object, nothing else on stdout
    bad = kavi("show", "ffffffff", "--format", "json", cwd=repo)
    assert bad.code == 2 and json.loads(bad.stdout)["code"] == "KAVI-NOT-FOUND"


def test_git_finds_the_git_kavi_subcommand(tmp_path: Path) -> None:
    repo = make_forge(tmp_path)
    bindir = Path(os.environ.get("VIRTUAL_ENV", "")) / "bin"
    import sys

    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{bindir}{os.pathsep}{os.environ['PATH']}",
    }
    proc = subprocess.run(
        ["git", "kavi", "status", "--format", "json"], cwd=repo, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["target_branch"] == "main"
    help_proc = subprocess.run(["git-kavi", "--help"], env=env, capture_output=True, text=True)
    assert "propose-skill" in help_proc.stdout


def test_usage_errors_are_json_too_when_asked(tmp_path: Path) -> None:
    repo = make_forge(tmp_path)
    res = kavi("propose-skill", "--name", "x", "--format", "json", cwd=repo)
    assert res.code == 2
    assert json.loads(res.stdout)["message"].startswith("Missing option")
    res = kavi("show", "no_such_skill", "--format", "json", cwd=repo)
    assert res.code == 2 and res.json["code"] == "KAVI-NOT-FOUND"


def test_the_man_page_names_every_command() -> None:
    """``git kavi --help`` shows man/git-kavi.1 (git turns it into ``git help kavi``)."""
    import re

    from typer.main import get_command

    from kavi.cli.app import build_app

    root = Path(__file__).resolve().parents[1]
    page = (root / "man" / "git-kavi.1").read_text()
    assert '"share/man/man1" = ["man/git-kavi.1"]' in (root / "pyproject.toml").read_text()
    group = get_command(build_app())
    names = list(group.commands)  # type: ignore[attr-defined]
    assert len(names) > 10
    missing = [n for n in names if not re.search(rf"\\fB{re.escape(n)}\b|^\.B {re.escape(n)}\b", page, re.M)]
    assert missing == [], f"commands missing from man/git-kavi.1: {missing}"
