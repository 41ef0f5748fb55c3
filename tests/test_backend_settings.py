"""Backend settings and records (issue 10), fast: credentials vs pass-through variables,
the switches Kavi sets, the preflight, agent configuration kept out of the sandbox, usage
in the ledger (and its migration), the per-proposal budget, the openai backend's usage.

The real CLI's side of each is in ``test_claude_contract``; here a fake ``claude`` (which
accepts only the real CLI's flags) stands in."""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from kavi.backends.env import CLAUDE_SWITCHES, scrubbed_env
from kavi.config import CLAUDE_PASSTHROUGH, ClaudeBackendConfig, parse_config
from kavi.errors import ConfigError, GovernanceError
from kavi.layout import is_agent_config
from kavi.ledger.models import Build, BuildUsage, Proposal
from kavi.secrets import redact, secret_values
from support import fake_claude
from support.evidence import Evidence
from support.fake_openai import FakeOpenAIServer
from support.forge import WRITE_NOTE_DIR, git, git_state, kavi, make_forge, propose_write_note

CREDENTIAL = "sentinel-anthropic-key-51d2e8"


@pytest.fixture
def evidence() -> Iterator[Evidence]:
    server = Evidence()
    yield server
    server.close()


@pytest.fixture
def forge(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    repo = make_forge(tmp_path)
    monkeypatch.setenv("ANTHROPIC_API_KEY", CREDENTIAL)
    return repo


def _fake(evidence: Evidence, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str = "good") -> None:
    fake_claude.install(tmp_path / "bin", mode, evidence=evidence)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")


def _configure(repo: Path, **claude: object) -> None:
    path = repo / ".kavi/config.yaml"
    data = yaml.safe_load(path.read_text())
    top = {k[4:]: claude.pop(k) for k in list(claude) if k.startswith("top_")}
    data["backends"]["claude"].update(claude)
    data.update(top)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    git("commit", "-q", "-am", "configure", cwd=repo)


# -- configuration ------------------------------------------------------------------------


def test_pass_through_names_and_credentials_are_separate_lists() -> None:
    config = ClaudeBackendConfig()
    assert "ANTHROPIC_BASE_URL" in config.env_passthrough and "HTTPS_PROXY" in config.env_passthrough
    assert {"ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN"} <= set(config.credential_env)
    with pytest.raises(ConfigError) as refused:
        parse_config("backends:\n  claude:\n    env_passthrough: [ANTHROPIC_API_KEY]\n")
    assert "ANTHROPIC_API_KEY cannot be both a credential" in str(refused.value.why)


@pytest.mark.parametrize(
    "name", ["HOME", "PATH", "KAVI_SECRET_X", "LD_PRELOAD", "CLAUDE_CONFIG_DIR", "DISABLE_TELEMETRY", "A B"]
)
def test_names_that_would_undo_the_fence_are_refused(name: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config(f"backends:\n  claude:\n    env_passthrough: [{json.dumps(name)}]\n")
    assert f"{name!r} cannot be given to the backend" in str(refused.value.why)


def test_a_forge_that_made_the_base_url_a_credential_keeps_loading() -> None:
    """Before env_passthrough, the only way to pass the base URL was credential_env."""
    config = parse_config(
        "backends:\n  claude:\n    credential_env: [ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL]\n"
    )
    claude = config.backends.claude
    assert (
        "ANTHROPIC_BASE_URL" in claude.credential_env and "ANTHROPIC_BASE_URL" not in claude.env_passthrough
    )
    assert set(claude.env_passthrough) == set(CLAUDE_PASSTHROUGH) - {"ANTHROPIC_BASE_URL"}


def test_the_scrubbed_environment_passes_settings_through(tmp_path: Path) -> None:
    source = {"PATH": "/bin", "ANTHROPIC_BASE_URL": "http://gw", "ANTHROPIC_API_KEY": "k", "OTHER": "x"}
    env = scrubbed_env(
        source,
        home=tmp_path,
        tmp=tmp_path,
        credentials=["ANTHROPIC_API_KEY"],
        passthrough=["ANTHROPIC_BASE_URL"],
    )
    assert env["ANTHROPIC_BASE_URL"] == "http://gw" and env["ANTHROPIC_API_KEY"] == "k"
    assert "OTHER" not in env


def test_a_proxy_password_is_a_secret_and_the_rest_of_the_url_is_not() -> None:
    env = {"HTTPS_PROXY": "http://bob:s3cr%40t-pass@proxy.corp:3128", "ANTHROPIC_BASE_URL": "http://gw:8080"}
    secrets = secret_values(env, [], url_names=["HTTPS_PROXY", "ANTHROPIC_BASE_URL"])
    assert redact("s3cr@t-pass s3cr%40t-pass http://gw:8080 proxy.corp", secrets) == (
        "[REDACTED] [REDACTED] http://gw:8080 proxy.corp"
    )


@pytest.mark.parametrize(
    ("path", "agent"),
    [
        ("CLAUDE.md", True),
        ("docs/claude.md", True),
        ("AGENTS.md", True),
        (".claude", True),
        (".claude/settings.json", True),
        ("sub/.claude/agents/x.md", True),
        (".mcp.json", True),
        (".cursor/rules/x.mdc", True),
        (".cursorrules", True),
        (".github/copilot-instructions.md", True),
        (".github/instructions/py.instructions.md", True),
        (".vscode/mcp.json", True),
        ("GEMINI.md", True),
        (".github/workflows/ci.yml", False),
        ("skills/claude_md.py", False),
        ("README.md", False),
        ("docs/agents/overview.md", False),
    ],
)
def test_agent_configuration_is_recognised(path: str, agent: bool) -> None:
    assert is_agent_config(path) is agent


# -- the preflight: refused before anything is written ------------------------------------


def _refused_before_any_state(repo: Path, pid: str, res: object, code: str) -> None:
    assert res.code == 2, res.output  # type: ignore[attr-defined]
    data = res.json  # type: ignore[attr-defined]
    assert data["code"] == code
    assert kavi("show", pid, "--format", "json", cwd=repo).json["builds"] == []
    assert git("branch", "--list", "skill/*", cwd=repo) == ""


def test_no_credential_is_refused_before_any_state(
    evidence: Evidence, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forge: Path
) -> None:
    _fake(evidence, tmp_path, monkeypatch)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "")  # set but empty is no credential
    pid = propose_write_note(forge)
    before = git_state(forge)
    res = kavi("build-skill", pid, "--backend", "claude", "--format", "json", cwd=forge)
    _refused_before_any_state(forge, pid, res, "KAVI-NO-CREDENTIAL")
    assert "ANTHROPIC_API_KEY, CLAUDE_CODE_OAUTH_TOKEN" in res.json["message"]
    assert git_state(forge) == before
    assert evidence.get("record") is None  # the CLI never ran
    text = kavi("build-skill", pid, "--backend", "claude", cwd=forge)
    assert "claude setup-token" in text.stderr and "fix:" in text.stderr


def test_extra_args_that_would_undo_the_fence_are_refused(
    evidence: Evidence, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forge: Path
) -> None:
    _fake(evidence, tmp_path, monkeypatch)
    _configure(forge, extra_args=["--dangerously-skip-permissions"])
    pid = propose_write_note(forge)
    res = kavi("build-skill", pid, "--backend", "claude", "--format", "json", cwd=forge)
    _refused_before_any_state(forge, pid, res, "KAVI-CONFIG")
    assert "--dangerously-skip-permissions" in res.json["message"]


def test_a_skill_path_the_permission_rules_would_read_as_a_glob_is_refused(
    evidence: Evidence, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forge: Path
) -> None:
    _fake(evidence, tmp_path, monkeypatch)
    path = forge / ".kavi/config.yaml"
    path.write_text(path.read_text().replace("skills_dir: skills", "skills_dir: 'sk*lls'"))
    git("commit", "-q", "-am", "a glob in the skills dir", cwd=forge)
    pid = propose_write_note(forge)
    res = kavi("build-skill", pid, "--backend", "claude", "--format", "json", cwd=forge)
    _refused_before_any_state(forge, pid, res, "KAVI-CONFIG")
    assert "cannot fence the path 'sk*lls/write_note.py'" in res.json["message"]


# -- what the CLI is given ----------------------------------------------------------------


def test_settings_pass_through_and_kavis_switches_always_win(
    evidence: Evidence, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forge: Path
) -> None:
    _fake(evidence, tmp_path, monkeypatch)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9/gateway")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("DISABLE_TELEMETRY", "0")
    monkeypatch.setenv("NOT_LISTED", "x")
    res = kavi("build-skill", propose_write_note(forge), "--backend", "claude", "--format", "json", cwd=forge)
    assert res.code == 0, res.output
    env = fake_claude.recorded(evidence)["env"]
    assert isinstance(env, dict)
    assert env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:9/gateway" and env["HTTPS_PROXY"].endswith(":3128")
    assert {k: env[k] for k in CLAUDE_SWITCHES} == CLAUDE_SWITCHES
    assert "NOT_LISTED" not in env


def test_agent_configuration_never_reaches_the_sandbox_and_is_not_a_deletion(
    evidence: Evidence, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forge: Path
) -> None:
    files = {
        "CLAUDE.md": "x",
        "AGENTS.md": "x",
        ".mcp.json": "{}",
        ".claude/settings.json": "{}",
        ".claude/agents/a.md": "x",
        "docs/CLAUDE.md": "x",
        ".cursor/rules/r.mdc": "x",
        ".github/copilot-instructions.md": "x",
    }
    for rel, text in files.items():
        (forge / rel).parent.mkdir(parents=True, exist_ok=True)
        (forge / rel).write_text(text)
    git("add", "-f", *files, cwd=forge)
    git("commit", "-q", "-m", "agent configuration", cwd=forge)
    _fake(evidence, tmp_path, monkeypatch, "read_withheld")
    res = kavi("build-skill", propose_write_note(forge), "--backend", "claude", "--format", "json", cwd=forge)
    listing = git("show", f"{res.json['commit']}:listing.txt", cwd=forge).split()
    assert not {"CLAUDE.md", "AGENTS.md", ".mcp.json"} & set(listing)
    assert [(v["path"], v["rule"]) for v in res.json["violations"]] == [("listing.txt", "outside-allowlist")]
    tree = git("ls-tree", "-r", "--name-only", res.json["commit"], cwd=forge).split()
    assert set(files) <= set(tree)  # kept in the build commit, untouched


def test_progress_lines_follow_the_stream_in_text_mode_only(
    evidence: Evidence, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forge: Path
) -> None:
    _fake(evidence, tmp_path, monkeypatch)
    pid = propose_write_note(forge)
    text = kavi("build-skill", pid, "--backend", "claude", cwd=forge)
    assert text.code == 0, text.output
    assert "Claude Code 2.1.197 started" in text.stderr
    assert "turn 2 · Write skills/write_note.py" in text.stderr and "finished (success)" in text.stderr
    assert "usage: $" in text.stdout and "version 2.1.197" in text.stdout
    quiet = kavi("build-skill", pid, "--backend", "claude", "--format", "json", cwd=forge)
    assert quiet.code == 0 and quiet.stderr == ""
    assert json.loads(quiet.stdout)["proposal_usage"]["turns"] == 8  # two attempts, four turns each


# -- usage in the ledger ------------------------------------------------------------------


def test_a_v1_ledger_is_migrated_and_old_builds_read_without_usage(tmp_path: Path) -> None:
    from kavi.ledger.schema import MIGRATIONS, SCHEMA_VERSION
    from kavi.ledger.store import Ledger

    path = tmp_path / "ledger.db"
    con = sqlite3.connect(path)
    con.executescript(MIGRATIONS[0])
    row = "('p1', 'n', 'd', '{}', 'READ_ONLY', '[]', 'PROPOSED', NULL, 't', 't')"
    con.execute(f"INSERT INTO skill_proposals VALUES {row}")
    con.execute(
        "INSERT INTO builds (id, proposal_id, attempt_number, branch_name, backend, base_commit, status, "
        "summary, violations_json, started_at) VALUES ('b1', 'p1', 1, 'skill/n-b1', 'claude', 'c', "
        "'FAILED', 's', '[]', 't')"
    )
    con.execute("PRAGMA user_version = 1")
    con.commit()
    con.close()
    with Ledger.open(path) as ledger:
        (version,) = ledger.conn.execute("PRAGMA user_version").fetchone()
        assert version == SCHEMA_VERSION
        [build] = ledger.builds_for("p1")
        assert build.usage == BuildUsage() and build.tool_attempts == []


def test_builds_are_summed_and_the_budget_refuses_when_used() -> None:
    from kavi.config import ForgeConfig
    from kavi.forge.budget import describe, remaining, spent

    def build(cost: float | None, turns: int) -> Build:
        usage = BuildUsage(cost_usd=cost, turns=turns, input_tokens=10, model="m", backend_version="1")
        return Build(
            id=str(uuid.uuid4()), proposal_id="p", attempt_number=1, branch_name="b", backend="claude",
            base_commit="c", started_at="t", usage=usage,
        )  # fmt: skip

    builds = [build(0.25, 3), build(None, 2), build(0.5, 4)]
    total = spent(builds)
    assert (total.cost_usd, total.turns, total.input_tokens) == (0.75, 9, 30)
    assert describe(total).startswith("$0.7500 · 9 turns · 30 in / 0 out tokens")
    proposal = Proposal(
        id="p" * 8, name="n", description="d", io_schema={}, side_effect_class="READ_ONLY",
        created_at="t", updated_at="t",
    )  # fmt: skip
    assert remaining(ForgeConfig(), proposal, builds) is None
    assert remaining(ForgeConfig(proposal_budget_usd=1.0), proposal, builds) == pytest.approx(0.25)
    with pytest.raises(GovernanceError) as refused:
        remaining(ForgeConfig(proposal_budget_usd=0.75), proposal, builds)
    assert refused.value.code == "KAVI-BUDGET" and refused.value.exit_code == 1


def test_the_openai_backend_records_its_usage_and_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_forge(tmp_path)
    files = {
        "skills/write_note.py": (WRITE_NOTE_DIR / "skills/write_note.py").read_text(),
        "tests/test_skill_write_note.py": (WRITE_NOTE_DIR / "tests/test_skill_write_note.py").read_text(),
    }
    with FakeOpenAIServer(models=("served-model",)) as server:
        path = repo / ".kavi/config.yaml"
        data = yaml.safe_load(path.read_text())
        data["backends"]["openai"].update(base_url=server.base_url, model="served-model")
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        git("commit", "-q", "-am", "openai", cwd=repo)
        usage = {
            "prompt_tokens": 900,
            "completion_tokens": 120,
            "total_tokens": 1020,
            "prompt_tokens_details": {"cached_tokens": 64},
            "cost": 0.0042,
        }
        server.answer(
            json.dumps({"files": [{"path": p, "content": c} for p, c in files.items()]}), usage=usage
        )
        res = kavi(
            "build-skill", propose_write_note(repo), "--backend", "openai", "--format", "json", cwd=repo
        )
        server.fail(503, "the model is overloaded")
        failed = kavi(
            "build-skill", res.json["proposal_id"], "--backend", "openai", "--format", "json", cwd=repo
        )
    assert res.code == 0, res.output
    recorded = res.json["usage"]
    assert (recorded["input_tokens"], recorded["output_tokens"], recorded["cache_read_tokens"]) == (
        900,
        120,
        64,
    )
    assert (recorded["cost_usd"], recorded["turns"], recorded["model"]) == (0.0042, 1, "served-model")
    assert (
        failed.code == 1 and "HTTP 503" in failed.json["summary"] and "overloaded" in failed.json["summary"]
    )
    assert failed.json["proposal_usage"]["cost_usd"] == 0.0042
