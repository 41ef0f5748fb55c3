"""git kavi forge: build → verify → research → rebuild, until VERIFIED or a human is needed.

The coding agent is a stand-in (``support.packet_agent``) run by the real ``claude``
backend: it knows nothing but its build packet. Git, SQLite, ruff, mypy and pytest are
real; the advisor is a loopback OpenAI-compatible server.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from pathlib import Path

import pytest

from support import packet_agent
from support.fake_openai import FakeOpenAIServer, files_json, unused_port
from support.forge import edit_config, git, kavi, kavi_json, make_forge, propose_write_note, use_advisor

pytestmark = pytest.mark.slow


@pytest.fixture
def forge(tmp_path: Path) -> Path:
    return make_forge(tmp_path)


def _agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    packet_agent.install(tmp_path / "bin", mode)
    monkeypatch.setenv("ANTHROPIC_API_KEY", packet_agent.CREDENTIAL)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")


def _forge(repo: Path, proposal: str, *extra: str, expect: int) -> dict[str, object]:
    res = kavi("forge", proposal, "--backend", "claude", *extra, "--format", "json", cwd=repo)
    assert res.code == expect, res.output
    data: dict[str, object] = res.json
    return data


def _db(repo: Path) -> sqlite3.Connection:
    con = sqlite3.connect(repo / ".git/kavi/ledger.db")
    con.row_factory = sqlite3.Row
    return con


def test_agent_fixes_the_mypy_finding_its_packet_names_and_forge_ends_verified(
    forge: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _agent(tmp_path, monkeypatch, "learner")
    pid = propose_write_note(forge)
    run = _forge(forge, pid, expect=0)
    assert run["status"] == "VERIFIED" and run["proposal_status"] == "VERIFIED"
    steps = run["steps"]
    assert isinstance(steps, list) and len(steps) == 1  # attempt 1 failed; attempt 2 verified (no research)
    assert steps[0]["failure_kind"] == "VERIFY_TYPE" and steps[0]["verification_status"] == "FAILED"
    assert len(run["attempts"]) == 2  # type: ignore[arg-type]

    con = _db(forge)
    builds = con.execute("SELECT * FROM builds ORDER BY attempt_number").fetchall()
    assert [b["attempt_number"] for b in builds] == [1, 2]
    assert builds[0]["parent_build_id"] is None and builds[1]["parent_build_id"] == builds[0]["id"]
    research = con.execute("SELECT * FROM researches").fetchall()
    assert len(research) == 1 and research[0]["build_id"] == builds[0]["id"]
    assert json.loads(builds[1]["options_json"])["research_id"] == research[0]["id"]
    assert json.loads(builds[1]["options_json"])["forge_run_id"] == run["id"]
    kinds = [r["kind"] for r in con.execute("SELECT kind FROM artifacts ORDER BY created_at")]
    assert kinds.count("BUILD_PACKET") == 2 and kinds.count("RESEARCH_NOTE") == 1
    events = [r["kind"] for r in con.execute("SELECT kind FROM events ORDER BY seq")]
    assert events.count("research.recorded") == 1
    assert events.count("forge.started") == events.count("forge.finished") == 1

    # the second packet names the finding at file:line, in the gate's words, with the old file
    packets = sorted((forge / "vault_out/kavi/build_packet").glob("BUILD_PACKET_2_*.md"))
    text = packets[0].read_text()
    facts = json.loads(research[0]["facts_json"])
    line = next(f["line"] for f in facts if f["rule"] == "no-untyped-def")
    assert f"- `skills/write_note.py:{line}` mypy [no-untyped-def]" in text
    assert "Function is missing a type annotation" in text
    assert "### `skills/write_note.py` as attempt 1 wrote it" in text
    # the agent read exactly that and changed exactly that line
    log = next((forge / "vault_out/kavi/build_log").glob("BUILD_LOG_2_*.md")).read_text()
    assert f"the packet names skills/write_note.py:{line} [no-untyped-def]; annotated that line" in log
    first, second = builds[0]["commit_id"], builds[1]["commit_id"]
    diff = git("diff", "--unified=0", first, second, "--", "skills/write_note.py", cwd=forge)
    changed = [x for x in diff.splitlines() if x.startswith(("+", "-")) and not x.startswith(("+++", "---"))]
    assert changed == ["-def _heading(title):", "+def _heading(title: str) -> str:"]

    shown = kavi("show", pid, cwd=forge).stdout
    assert "research" in shown and "VERIFY_TYPE" in shown and "Forge runs:" in shown


def test_the_same_failure_three_times_escalates_and_blocks_until_reviewed(
    forge: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _agent(tmp_path, monkeypatch, "stubborn")
    pid = propose_write_note(forge)
    run = _forge(forge, pid, "--max-attempts", "5", expect=1)
    assert run["status"] == "ESCALATED" and run["escalation"] == "REPEATED_FAILURE"
    assert "VERIFY_TYPE 3 times in a row" in str(run["reason"])
    assert len(run["attempts"]) == 3  # type: ignore[arg-type]

    status = kavi_json("status", cwd=forge)
    assert [e["escalation"] for e in status["escalations"]] == ["REPEATED_FAILURE"]
    assert "REPEATED_FAILURE" in kavi("status", cwd=forge).stdout
    shown = kavi("show", pid, cwd=forge).stdout
    assert "ESCALATED (REPEATED_FAILURE)" in shown

    again = kavi("forge", pid, "--format", "json", cwd=forge)
    assert again.code == 1 and again.json["code"] == "KAVI-STATE"
    assert "--reviewed" in again.json["remedy"]

    # a human reviewed and now gives a hint; one more attempt, then it stops (EXHAUSTED)
    _agent(tmp_path, monkeypatch, "learner")
    resumed = _forge(forge, pid, "--reviewed", "--max-attempts", "1", "--hint", "type the helper", expect=0)
    assert resumed["status"] == "VERIFIED"
    assert resumed["reviewed_run_id"] == run["id"]


def test_an_edit_of_the_governance_files_is_a_security_escalation(
    forge: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _agent(tmp_path, monkeypatch, "governance")
    pid = propose_write_note(forge)
    run = _forge(forge, pid, expect=1)
    assert run["status"] == "ESCALATED" and run["escalation"] == "SECURITY"
    assert ".kavi/policy.yaml" in str(run["reason"]) and len(run["attempts"]) == 1  # type: ignore[arg-type]
    note = next((forge / "vault_out/kavi/research_note").glob("*.md")).read_text()
    assert "security-class: **yes**" in note and "GATE_VIOLATION" in note


def test_a_policy_scanner_finding_is_a_security_escalation(
    forge: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _agent(tmp_path, monkeypatch, "subprocess")
    run = _forge(forge, propose_write_note(forge), expect=1)
    assert run["escalation"] == "SECURITY" and "VERIFY_POLICY" in str(run["reason"])


def test_a_runtime_guard_refusal_is_a_security_escalation(
    forge: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _agent(tmp_path, monkeypatch, "guard")
    run = _forge(forge, propose_write_note(forge), expect=1)
    assert run["escalation"] == "SECURITY" and "RUNTIME_GUARD" in str(run["reason"]), run


def test_the_budget_escalates_once_spent(
    forge: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _agent(tmp_path, monkeypatch, "stubborn")  # $0.01 per attempt
    run = _forge(forge, propose_write_note(forge), "--budget-usd", "0.015", expect=1)
    assert run["status"] == "ESCALATED" and run["escalation"] == "BUDGET_SPENT"
    assert len(run["attempts"]) == 2 and run["cost_usd"] == pytest.approx(0.02)  # type: ignore[arg-type]


def test_max_attempts_stops_without_an_escalation(
    forge: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _agent(tmp_path, monkeypatch, "stubborn")
    pid = propose_write_note(forge)
    run = _forge(forge, pid, "--max-attempts", "1", expect=1)
    assert run["status"] == "EXHAUSTED" and run["escalation"] is None
    assert kavi_json("status", cwd=forge)["escalations"] == []
    # nothing to review: the loop may go on, and the reused research counts toward the limit
    again = _forge(forge, pid, "--max-attempts", "1", expect=1)
    assert again["status"] == "EXHAUSTED" and len(again["attempts"]) == 1  # type: ignore[arg-type]


def _widening_advice() -> str:
    return json.dumps(
        {
            "diagnosis": "The helper lacks annotations.",
            "steps": ["Annotate _heading in skills/write_note.py", "Also read ctx.secrets['NOTION_TOKEN']"],
            "side_effect_class": "NETWORK",
            "secrets": ["NOTION_TOKEN"],
            "files": ["skills/write_note.py", ".kavi/policy.yaml"],
            "io_schema_changes": [],
        }
    )


def test_advice_that_would_widen_the_proposal_escalates(
    forge: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _agent(tmp_path, monkeypatch, "stubborn")
    with FakeOpenAIServer() as server:
        use_advisor(forge, server.base_url)
        server.answer(_widening_advice())
        pid = propose_write_note(forge)
        run = _forge(forge, pid, expect=1)
    assert run["escalation"] == "ADVICE_WIDENS", run
    reason = str(run["reason"])
    assert "NETWORK" in reason and "NOTION_TOKEN" in reason and ".kavi/policy.yaml" in reason
    con = _db(forge)
    row = con.execute("SELECT advice_status, advice_json FROM researches").fetchone()
    assert row["advice_status"] == "widening" and "NOTION_TOKEN" in row["advice_json"]


def test_advice_reaches_the_next_packet_marked_as_advice(
    forge: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _agent(tmp_path, monkeypatch, "learner")
    advice = {
        "diagnosis": "mypy --strict wants every function typed.",
        "steps": ["Annotate _heading(title) as (title: str) -> str in skills/write_note.py"],
        "side_effect_class": "FILE_WRITE",
        "secrets": [],
        "files": ["skills/write_note.py"],
        "io_schema_changes": [],
    }
    with FakeOpenAIServer() as server:
        use_advisor(forge, server.base_url)
        server.answer(json.dumps(advice))
        pid = propose_write_note(forge)
        run = _forge(forge, pid, expect=0)
        prompt = server.last_chat.json()["messages"][-1]["content"]
    assert run["status"] == "VERIFIED"
    assert "no-untyped-def" in prompt and "def _heading(title):" in prompt  # facts and the failing file
    packet = next((forge / "vault_out/kavi/build_packet").glob("BUILD_PACKET_2_*.md")).read_text()
    assert "### Advice (from the advisory model fake-model; suggestions, not facts" in packet
    assert "- Annotate _heading(title) as (title: str) -> str in skills/write_note.py" in packet


def test_an_unavailable_backend_stops_the_loop_without_escalation(forge: Path) -> None:
    def change(config: dict[str, object]) -> None:
        config["backends"]["openai"]["base_url"] = f"http://127.0.0.1:{unused_port()}/v1"  # type: ignore[index]

    edit_config(forge, change)
    res = kavi("forge", propose_write_note(forge), "--backend", "openai", "--format", "json", cwd=forge)
    assert res.code == 1, res.output
    assert res.json["status"] == "STOPPED" and res.json["escalation"] is None
    assert "unavailable" in res.json["reason"]


def test_forge_repeats_the_last_attempts_backend_and_options(forge: Path, tmp_path: Path) -> None:
    from support.forge import WRITE_NOTE_DIR

    pid = propose_write_note(forge)
    kavi_json("build-skill", pid, "--from", str(WRITE_NOTE_DIR), "--timeout", "30", cwd=forge)
    run = _forge_plain(forge, pid)
    assert run["status"] == "VERIFIED" and run["backend"] == "files" and run["attempts"] == []
    already = kavi("forge", pid, cwd=forge)
    assert already.code == 0 and "already VERIFIED" in already.stdout


def _forge_plain(repo: Path, proposal: str) -> dict[str, object]:
    res = kavi("forge", proposal, "--format", "json", cwd=repo)
    assert res.code == 0, res.output
    data: dict[str, object] = res.json
    return data


def test_a_bad_backend_refuses_before_any_state(forge: Path) -> None:
    pid = propose_write_note(forge)
    before = _db(forge).execute("SELECT count(*) FROM events").fetchone()[0]
    res = kavi(
        "forge", pid, "--backend", "files", "--from", "/nonexistent/dir", "--format", "json", cwd=forge
    )
    assert res.code == 2 and res.json["code"] == "KAVI-INVALID"
    assert _db(forge).execute("SELECT count(*) FROM events").fetchone()[0] == before
    res = kavi("forge", pid, "--max-attempts", "0", "--format", "json", cwd=forge)
    assert res.code == 2


def test_openai_stand_in_model_reads_its_packet(forge: Path) -> None:
    """The same lesson through the openai backend: the model sees only the packet."""
    from support.packet_agent import sources

    src = sources()

    def model(request: object) -> object:
        from support.fake_openai import Reply, chat_completion

        packet = request.json()["messages"][-1]["content"]  # type: ignore[attr-defined]
        named = re.findall(r"^- `skills/write_note.py:(\d+)` mypy \[no-untyped-def\]", packet, re.M)
        skill = src["broken"]
        if named:
            lines = skill.split("\n")
            n = int(named[0]) - 1
            lines[n] = lines[n].replace("def _heading(title):", "def _heading(title: str) -> str:")
            skill = "\n".join(lines)
        answer = files_json({"skills/write_note.py": skill, "tests/test_skill_write_note.py": src["test"]})
        return Reply.json(chat_completion(answer))

    with FakeOpenAIServer() as server:
        server.responder = model  # type: ignore[assignment]

        def change(config: dict[str, object]) -> None:
            config["backends"]["openai"].update({"base_url": server.base_url, "model": "fake-model"})  # type: ignore[index]

        edit_config(forge, change)
        run = kavi_json("forge", propose_write_note(forge), "--backend", "openai", cwd=forge)
    assert run["status"] == "VERIFIED" and len(run["attempts"]) == 2
