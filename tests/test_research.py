"""git kavi research-skill: the note, the ledger event, the advisor through the CLI, and
BUILD_PACKET_(N+1). Failed *builds* keep these tests fast (no verify run)."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from support.fake_openai import FakeOpenAIServer, unused_port
from support.forge import WRITE_NOTE_DIR, git, kavi, kavi_json, make_forge, propose_write_note, use_advisor

GOOD_ADVICE = {
    "diagnosis": "The test file is missing.",
    "steps": ["Write tests/test_skill_write_note.py with at least one test"],
    "side_effect_class": "FILE_WRITE",
    "secrets": [],
    "files": ["tests/test_skill_write_note.py"],
    "io_schema_changes": [],
}


def _half(tmp_path: Path) -> Path:
    """A --from directory holding only the skill file (the test file is missing)."""
    src = tmp_path / "half"
    (src / "skills").mkdir(parents=True)
    shutil.copy(WRITE_NOTE_DIR / "skills/write_note.py", src / "skills/write_note.py")
    return src


@pytest.fixture
def failed(tmp_path: Path) -> tuple[Path, str, str]:
    """A forge whose write_note proposal has one FAILED build."""
    repo = make_forge(tmp_path)
    pid = propose_write_note(repo)
    res = kavi("build-skill", pid, "--from", str(_half(tmp_path)), "--format", "json", cwd=repo)
    assert res.code == 1, res.output
    return repo, pid, str(res.json["build_id"])


def test_research_of_a_failed_build_writes_a_note_and_an_event(failed: tuple[Path, str, str]) -> None:
    repo, pid, build = failed
    out = kavi_json("research-skill", build[:8], "--hint", "ship both files", cwd=repo)
    assert out["kind"] == "BACKEND_ERROR" and out["build_id"] == build and out["verification_id"] is None
    assert out["advice_status"] == "not-configured" and out["hint"] == "ship both files"
    facts = out["facts"]
    assert any("has no tests/test_skill_write_note.py" in f["message"] for f in facts)
    note = (repo / out["note"]).read_text()
    assert note.startswith('---\nkind: "RESEARCH_NOTE"')
    assert '"failure_kind": ' not in note and 'failure_kind: "BACKEND_ERROR"' in note
    assert "[[BUILD_PACKET_1_write_note_" in note and "[[BUILD_LOG_1_write_note_" in note
    assert "> ship both files" in note
    con = sqlite3.connect(repo / ".git/kavi/ledger.db")
    kinds = [k for (k,) in con.execute("SELECT kind FROM events ORDER BY seq")]
    assert kinds[-2:] == ["artifact.recorded", "research.recorded"]
    # by proposal id and by skill name: the latest failure
    assert kavi_json("research-skill", pid, "--no-advise", cwd=repo)["build_id"] == build
    by_name = kavi_json("research-skill", "write_note", "--no-advise", cwd=repo)
    assert by_name["advice_status"] == "off" and "--no-advise" in by_name["advice_notice"]


def test_the_next_packet_carries_findings_hint_and_retry_repeats_the_options(
    failed: tuple[Path, str, str], tmp_path: Path
) -> None:
    repo, pid, _build = failed
    kavi_json("research-skill", pid, "--hint", "ship the test file too", cwd=repo)
    src = tmp_path / "half"
    (src / "tests").mkdir()
    shutil.copy(WRITE_NOTE_DIR / "tests/test_skill_write_note.py", src / "tests/test_skill_write_note.py")
    res = kavi("build-skill", pid, "--retry", "--format", "json", cwd=repo)
    assert res.code == 0, res.output
    assert res.json["backend"] == "files" and res.json["options"]["from_dir"] == str(src.resolve())
    assert res.json["attempt_number"] == 2 and res.json["parent_build_id"] == failed[2]
    packet = (repo / res.json["packet_artifact"]).read_text()
    assert "## Previous attempt (1: build FAILED — BACKEND_ERROR)" in packet
    assert "has no tests/test_skill_write_note.py" in packet
    assert "> ship the test file too" in packet
    assert "### `skills/write_note.py` as attempt" not in packet  # nothing was committed


def test_retry_needs_a_previous_attempt(tmp_path: Path) -> None:
    repo = make_forge(tmp_path)
    res = kavi("build-skill", propose_write_note(repo), "--retry", "--format", "json", cwd=repo)
    assert res.code == 2 and "nothing to retry" in res.json["message"]


def test_nothing_to_research_is_said_clearly(tmp_path: Path) -> None:
    repo = make_forge(tmp_path)
    pid = propose_write_note(repo)
    res = kavi("research-skill", pid, "--format", "json", cwd=repo)
    assert res.code == 1 and "no build yet" in res.json["message"]
    kavi_json("build-skill", pid, "--from", str(WRITE_NOTE_DIR), cwd=repo)
    res = kavi("research-skill", pid, "--format", "json", cwd=repo)
    assert res.code == 1 and "not verified yet" in res.json["message"]
    assert res.json["remedy"].startswith("verify it first: `git kavi verify-skill")
    res = kavi("research-skill", "ffffffff", "--format", "json", cwd=repo)
    assert res.code == 2 and res.json["code"] == "KAVI-NOT-FOUND"


def test_advisor_advice_lands_in_the_note_and_the_next_packet(
    failed: tuple[Path, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, pid, build = failed
    monkeypatch.setenv("KAVI_SECRET_TOKEN", "sentinel-research-secret-41")
    with FakeOpenAIServer() as server:
        use_advisor(repo, server.base_url, max_input_chars=3000)
        server.answer(json.dumps(GOOD_ADVICE))
        out = kavi_json(
            "research-skill", build[:8], "--hint", "the value is sentinel-research-secret-41", cwd=repo
        )
        prompt = server.last_chat.json()["messages"][-1]["content"]
    assert out["advice_status"] == "ok" and out["advice"]["steps"] == GOOD_ADVICE["steps"]
    assert "sentinel-research-secret-41" not in prompt and "[REDACTED]" in prompt
    assert len(prompt) <= 3000 and "has no tests/test_skill_write_note.py" in prompt
    note = (repo / out["note"]).read_text()
    assert "## Advice from fake-model (suggestions for the next attempt, not facts)" in note
    assert "sentinel-research-secret-41" not in note
    res = kavi("build-skill", pid, "--retry", "--format", "json", cwd=repo)
    packet = (repo / res.json["packet_artifact"]).read_text()
    assert "### Advice (from the advisory model fake-model" in packet
    assert "- Write tests/test_skill_write_note.py with at least one test" in packet


@pytest.mark.parametrize("failure", ["down", "slow", "garbage"])
def test_an_unusable_advisor_leaves_deterministic_findings(
    failed: tuple[Path, str, str], failure: str
) -> None:
    repo, _pid, build = failed
    with FakeOpenAIServer() as server:
        if failure == "down":
            use_advisor(repo, f"http://127.0.0.1:{unused_port()}/v1")
        else:
            use_advisor(repo, server.base_url, timeout_seconds=1)
        if failure == "slow":
            server.answer(json.dumps(GOOD_ADVICE), delay=4)
        elif failure == "garbage":
            server.answer("Sure! Just add the missing file :)")
        res = kavi("research-skill", build[:8], cwd=repo)
    assert res.code == 0, res.output
    notice = next(line for line in res.stdout.splitlines() if line.strip().startswith("advisor:"))
    assert notice.strip().endswith("deterministic findings only")
    expected = {"down": "unavailable at", "slow": "too slow", "garbage": "unusable"}[failure]
    assert expected in notice
    assert "has no tests/test_skill_write_note.py" in res.stdout


def test_widening_advice_is_rejected_and_kept_for_the_record(failed: tuple[Path, str, str]) -> None:
    repo, pid, build = failed
    widening = {
        **GOOD_ADVICE,
        "side_effect_class": "NETWORK",
        "files": ["skills/write_note.py", "conftest.py"],
    }
    with FakeOpenAIServer() as server:
        use_advisor(repo, server.base_url)
        server.answer(json.dumps(widening))
        res = kavi("research-skill", build[:8], cwd=repo)
    assert res.code == 0
    assert "REJECTED: it would widen the proposal" in res.stdout
    assert "needs a human — the advice would widen the proposal: side-effect class NETWORK" in res.stdout
    assert "Or: git kavi forge" not in res.stdout  # the loop would only escalate
    packet_res = kavi("build-skill", pid, "--retry", "--format", "json", cwd=repo)
    packet = (repo / packet_res.json["packet_artifact"]).read_text()
    assert "Advice" not in packet and "NETWORK" not in packet.split("## Previous attempt")[1]


def test_a_fresh_clone_rebuilds_researches_and_forge_runs_from_the_mirror(
    failed: tuple[Path, str, str], tmp_path: Path
) -> None:
    from support.forge import ssh_key, use_signing_key

    repo, pid, _build = failed
    key = ssh_key(tmp_path / "keys")
    use_signing_key(key)
    git("add", "-f", ".kavi/allowed_signers", cwd=repo)
    principal = "ada@example.com"
    signers = repo / ".kavi/allowed_signers"
    signers.write_text(
        signers.read_text() + f'{principal} namespaces="git" {(tmp_path / "keys/id_ed25519.pub").read_text()}'
    )
    git("commit", "-q", "-S", "-am", "trust the test key", cwd=repo)  # the root: signed by its key
    kavi_json("research-skill", pid, "--hint", "travels", cwd=repo)
    kavi("forge", pid, "--max-attempts", "1", cwd=repo)  # one more failed build: EXHAUSTED
    kavi_json("ledger", "sync", cwd=repo)
    clone = tmp_path / "clone"
    git("clone", "-q", str(repo), str(clone), cwd=tmp_path)
    git("fetch", "-q", "origin", "refs/kavi/*:refs/kavi/*", cwd=clone)
    kavi_json("ledger", "import", cwd=clone)

    def dump(where: Path) -> list[tuple[object, ...]]:
        con = sqlite3.connect(where / ".git/kavi/ledger.db")
        rows = [
            tuple(r)
            for t in ("researches", "forge_runs", "builds")
            for r in con.execute(f"SELECT * FROM {t}")
        ]
        con.close()
        return sorted(rows, key=repr)

    assert dump(clone) == dump(repo)
    shown = kavi_json("show", pid, cwd=clone)
    assert shown["researches"][0]["hint"] == "travels"
    assert shown["forge_runs"][0]["status"] == "EXHAUSTED"
