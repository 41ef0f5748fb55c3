"""build-skill with a fake `claude` on PATH: a well-behaved agent and agents that misbehave.

Every misbehaviour must end in a FAILED build with a precise reason, the target
branch and the main repository's config, hooks and refs untouched, no sandbox or
worktree left behind, and no secret sentinel anywhere Kavi wrote.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import fake_claude
from support.evidence import Evidence
from support.forge import git, git_state, kavi, make_forge, propose_write_note

SECRET = "sentinel-kavi-secret-7f3a9c"
CREDENTIAL = "sentinel-anthropic-key-51d2e8"


@pytest.fixture
def forge(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    repo = make_forge(tmp_path)
    monkeypatch.setenv("KAVI_SECRET_TOKEN", SECRET)
    monkeypatch.setenv("ANTHROPIC_API_KEY", CREDENTIAL)
    monkeypatch.setenv("SOME_OTHER_VAR", "not-for-the-agent")
    return repo


@pytest.fixture
def evidence() -> Iterator[Evidence]:
    """What the fake claude reports back (see support.evidence)."""
    server = Evidence()
    yield server
    server.close()


def _install(
    evidence: Evidence, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str, repo: Path
) -> None:
    fake_claude.install(tmp_path / "bin", mode, evidence=evidence, main_repo=repo)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")


def _build(repo: Path, proposal: str, *extra: str) -> tuple[int, dict[str, object]]:
    res = kavi("build-skill", proposal, "--backend", "claude", *extra, "--format", "json", cwd=repo)
    return res.code, res.json


def _assert_no_secret_anywhere(repo: Path, tmp_path: Path, build: dict[str, object]) -> None:
    for value in (SECRET, CREDENTIAL):
        for path in (repo / "vault_out").rglob("*"):
            if path.is_file():
                assert value not in path.read_text(errors="replace"), path
        db = repo / ".git" / "kavi" / "ledger.db"
        con = sqlite3.connect(db)
        dump = "\n".join(con.iterdump())
        con.close()
        assert value not in dump
        assert value not in json.dumps(build)
        if build.get("commit"):
            blobs = git("grep", "-I", "-l", value, str(build["commit"]), cwd=repo, check=False)
            assert blobs == "", f"secret committed in {blobs}"


def _assert_clean(repo: Path, tmp_path: Path) -> None:
    worktrees = git("worktree", "list", "--porcelain", cwd=repo)
    assert worktrees.count("worktree ") == 1, worktrees
    leftovers = [p.name for p in (tmp_path / "tmp").iterdir() if p.name.startswith("kavi-build-")]
    assert leftovers == []


def test_well_behaved_agent_builds(
    evidence: Evidence, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forge: Path
) -> None:
    _install(evidence, tmp_path, monkeypatch, "good", forge)
    pid = propose_write_note(forge)
    before = git_state(forge)
    code, build = _build(forge, pid)
    assert code == 0, build
    assert build["status"] == "SUCCEEDED"
    assert build["violations"] == []
    assert str(build["branch"]).startswith("skill/write_note-")
    changed = git("diff", "--name-only", "main", str(build["commit"]), cwd=forge).splitlines()
    assert changed == ["skills/write_note.py", "tests/test_skill_write_note.py"]
    trailers = git("log", "-1", "--format=%B", str(build["commit"]), cwd=forge)
    assert f"Kavi-Proposal: {pid}" in trailers
    assert f"Kavi-Build: {build['build_id']}" in trailers
    assert "Kavi-Packet: blake3:" in trailers
    assert git_state(forge) == before
    _assert_clean(forge, tmp_path)
    _assert_no_secret_anywhere(forge, tmp_path, build)
    # what the agent saw: a scrubbed environment, sandbox cwd outside the repo, the right flags
    seen = fake_claude.recorded(evidence)
    env = seen["env"]
    assert isinstance(env, dict)
    assert "KAVI_SECRET_TOKEN" not in env and "SOME_OTHER_VAR" not in env
    assert env["ANTHROPIC_API_KEY"] == CREDENTIAL  # its own credential only
    assert env["HOME"] != os.environ["HOME"]
    assert not str(seen["cwd"]).startswith(str(forge))
    argv = seen["argv"]
    assert isinstance(argv, list)
    for flag in ("-p", "--output-format", "--permission-mode", "--max-turns", "--max-budget-usd"):
        assert flag in argv
    for flag in (
        "--strict-mcp-config",
        "--safe-mode",
        "--disable-slash-commands",
        "--no-session-persistence",
    ):
        assert flag in argv
    assert argv[argv.index("--tools") + 1] == "Read,Glob,Grep,Edit,Write"
    assert argv[argv.index("--setting-sources") + 1] == ""
    assert argv[argv.index("--allowedTools") + 1] == (
        "Read(./**),Edit(./skills/write_note.py),Edit(./tests/test_skill_write_note.py)"
    )
    assert "--disallowedTools" not in argv  # the allowlist is --tools; no denylist to age
    assert argv[argv.index("--permission-mode") + 1] == "dontAsk"
    show = kavi("show", pid, "--format", "json", cwd=forge).json
    assert show["proposal"]["status"] == "BUILT"
    kinds = sorted(a["kind"] for a in show["artifacts"])
    assert kinds == ["BUILD_LOG", "BUILD_PACKET", "SKILL_SPEC"]


MISBEHAVIOUR = {
    "third_file": [("notes.txt", "outside-allowlist")],
    "symlink": [("skills/write_note.py", "symlink"), ("skills/write_note.py", "mode")],
    "exec_bit": [("skills/write_note.py", "mode")],
    "delete_tracked": [("README.md", "deleted")],
    "rename_tracked": [("README.md", "deleted"), ("docs/README.md", "outside-allowlist")],
    "nested_repo": [("vendor/inner", "nested-repo")],
    "git_dir_in_sandbox": [(".git", "nested-repo")],
    # unconfined: the tripwire finds the writes in the real repository and restores it;
    # confined, the forge is out of the agent's sight (the test checks that instead)
    "main_repo_tamper": [(".git/config", "tripwire"), (".git/hooks/pre-push", "tripwire")],
    "env_dump": [("env.txt", "outside-allowlist"), ("skills/write_note.py", "secret")],
    "ignored_file": [("vault_out/leak.md", "outside-allowlist")],
}

SUMMARY_ONLY = {
    "is_error": "claude stopped (error_during_execution): API Error: 500 internal error",
    "bash_attempt": "Bash (not offered; unavailable)",
    "read_outside": "Read (denied; outside the sandbox)",
    "max_turns": "claude stopped (error_max_turns): Reached maximum number of turns (2)",
    "not_logged_in": "claude stopped (success): Not logged in · Please run /login",
    "no_result": "without a final result event",
}


@pytest.mark.parametrize("mode", sorted(MISBEHAVIOUR))
def test_misbehaving_agent_fails_with_precise_reason(
    evidence: Evidence, mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forge: Path
) -> None:
    _install(evidence, tmp_path, monkeypatch, mode, forge)
    pid = propose_write_note(forge)
    before = git_state(forge)
    code, build = _build(forge, pid)
    assert code == 1, build
    assert build["status"] == "FAILED"
    found = {(v["path"], v["rule"]) for v in build["violations"]}  # type: ignore[union-attr]
    hidden = evidence.get("main_repo") == "hidden"
    for path, rules in MISBEHAVIOUR[mode]:
        if hidden and rules == "tripwire":
            continue
        assert any(p == path and r in rules.split("|") for p, r in found), f"{path} not in {found}"
    assert git_state(forge) == before, "main repository changed"
    _assert_clean(forge, tmp_path)
    _assert_no_secret_anywhere(forge, tmp_path, build)
    status = kavi("show", pid, "--format", "json", cwd=forge).json["proposal"]["status"]
    assert status == "PROPOSED"


def test_rename_is_named_as_such(
    evidence: Evidence, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forge: Path
) -> None:
    _install(evidence, tmp_path, monkeypatch, "rename_tracked", forge)
    _code, build = _build(forge, propose_write_note(forge))
    reasons = {v["path"]: v["reason"] for v in build["violations"]}  # type: ignore[union-attr]
    assert "renamed from README.md" in reasons["docs/README.md"]


@pytest.mark.parametrize("mode", sorted(SUMMARY_ONLY))
def test_agent_reporting_failure_fails_the_build(
    evidence: Evidence, mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forge: Path
) -> None:
    _install(evidence, tmp_path, monkeypatch, mode, forge)
    code, build = _build(forge, propose_write_note(forge))
    assert code == 1
    assert build["status"] == "FAILED"
    assert SUMMARY_ONLY[mode] in str(build["summary"])
    _assert_clean(forge, tmp_path)


def test_hanging_agent_is_killed_with_its_children(
    evidence: Evidence, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forge: Path
) -> None:
    _install(evidence, tmp_path, monkeypatch, "hang", forge)
    start = time.monotonic()
    code, build = _build(forge, propose_write_note(forge), "--timeout", "2")
    assert time.monotonic() - start < 15
    assert code == 1
    assert "did not finish within 2s" in str(build["summary"])
    assert evidence.wait("alive", 4) is None  # the background child would have reported by now
    _assert_clean(forge, tmp_path)


def test_withheld_secret_files_never_reach_the_sandbox(
    evidence: Evidence, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forge: Path
) -> None:
    (forge / ".env").write_text(f"TOKEN={SECRET}\n")
    git("add", "-f", ".env", cwd=forge)
    git("commit", "-q", "-m", "oops, a committed .env", cwd=forge)
    _install(evidence, tmp_path, monkeypatch, "read_withheld", forge)
    code, build = _build(forge, propose_write_note(forge))
    assert code == 1
    listing = git("show", f"{build['commit']}:listing.txt", cwd=forge)
    assert ".env" not in listing.split()
    # the withheld file is not reported as deleted: Kavi withheld it, the agent did not delete it
    paths = {v["path"] for v in build["violations"]}  # type: ignore[union-attr]
    assert paths == {"listing.txt"}


def test_missing_claude_executable_is_refused_before_any_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forge: Path
) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    pid = propose_write_note(forge)
    before = git_state(forge)
    res = kavi("build-skill", pid, "--backend", "claude", cwd=forge)
    assert res.code == 3
    assert "not found on PATH" in res.stderr
    assert "fix:" in res.stderr
    assert git_state(forge) == before
    assert kavi("show", pid, "--format", "json", cwd=forge).json["builds"] == []


def test_unconfined_builds_fall_back_to_the_tripwire(
    evidence: Evidence, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forge: Path
) -> None:
    policy = forge / ".kavi/policy.yaml"
    policy.write_text(policy.read_text().replace("confine: auto", "confine: 'off'"))
    git("commit", "-q", "-am", "no namespace jail for builds", cwd=forge)
    _install(evidence, tmp_path, monkeypatch, "main_repo_tamper", forge)
    pid = propose_write_note(forge)
    before = git_state(forge)
    code, build = _build(forge, pid)
    assert code == 1
    rules = {(v["path"], v["rule"]) for v in build["violations"]}  # type: ignore[union-attr]
    assert (".git/config", "tripwire") in rules and (".git/hooks/pre-push", "tripwire") in rules
    assert git_state(forge) == before  # restored


def _path_without_namespace_tools(tmp_path: Path) -> str:
    """A PATH holding the fake claude, git, ssh-keygen and python, but no unshare/setpriv."""
    import shutil
    import sys

    tools = tmp_path / "tools"
    tools.mkdir()
    for name in ("git", "ssh-keygen", "sh", "env"):
        found = shutil.which(name)
        assert found, name
        (tools / name).symlink_to(found)
    (tools / "python3").symlink_to(sys.executable)
    return f"{tmp_path / 'bin'}{os.pathsep}{tools}"


def test_required_confinement_refuses_to_build_where_namespaces_are_missing(
    evidence: Evidence, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forge: Path
) -> None:
    import subprocess
    import sys

    policy = forge / ".kavi/policy.yaml"
    policy.write_text(policy.read_text().replace("confine: auto", "confine: required"))
    git("commit", "-q", "-am", "builds must be confined", cwd=forge)
    _install(evidence, tmp_path, monkeypatch, "good", forge)
    pid = propose_write_note(forge)
    before = git_state(forge)
    env = {**os.environ, "PATH": _path_without_namespace_tools(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "kavi", "build-skill", pid, "--backend", "claude"],
        cwd=forge,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "cannot confine processes" in proc.stderr and "sandbox.confine: auto" in proc.stderr
    assert git_state(forge) == before
    assert kavi("show", pid, "--format", "json", cwd=forge).json["builds"] == []
    _assert_clean(forge, tmp_path)


def test_the_transcript_says_how_the_backend_was_confined(
    evidence: Evidence, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forge: Path
) -> None:
    from kavi.backends import jail

    _install(evidence, tmp_path, monkeypatch, "good", forge)
    pid = propose_write_note(forge)
    code, build = _build(forge, pid)
    assert code == 0, build
    log = (forge / str(build["log_artifact"])).read_text()
    expected = "confinement: namespaces" if jail.available() else "confinement: none (tripwire only)"
    assert expected in log
