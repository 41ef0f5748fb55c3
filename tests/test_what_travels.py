"""What travels with the repository: digests, not data — checked on a real server's objects.

A skill is run with secret-looking input and output (a private diary line, an API key, a
private key block); after ``ledger sync`` and a real ``git push``, ``git cat-file
--batch-all-objects --batch`` on the bare server holds none of it, while the digests of
the input and output are there; a fresh clone rebuilds an equivalent ledger from the
mirror and can list, show, audit and run.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from support.forge import git, kavi, kavi_json, make_forge, ssh_key, use_signing_key
from support.skills import promote, skill_source, skill_tests_source

pytestmark = pytest.mark.slow

DIARY = "dear diary 7f3a91: the launch slips to friday"
API_KEY = "sk-ant-api03-" + "Qw7" * 14
PEM_BODY = "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW"
PEM = f"-----BEGIN OPENSSH PRIVATE KEY-----\n{PEM_BODY}\n-----END OPENSSH PRIVATE KEY-----\n"
SCHEMA = {"input": {"text": "str"}, "output": {"text": "str", "length": "int"}}


def _echo_forge(tmp_path: Path) -> Path:
    use_signing_key(ssh_key(tmp_path / "keys"))
    repo = make_forge(tmp_path)
    body = "        return EchoTextOutput(text=input.text, length=len(input.text))\n"
    promote(
        repo,
        tmp_path,
        "echo_text",
        "READ_ONLY",
        SCHEMA,
        skill_source("echo_text", "READ_ONLY", SCHEMA["input"], SCHEMA["output"], body),
        skill_tests_source("echo_text"),
    )
    return repo


def _server_objects(server: Path) -> bytes:
    done = subprocess.run(
        ["git", "cat-file", "--batch-all-objects", "--batch"], cwd=server, capture_output=True, check=True
    )
    return done.stdout


def test_a_runs_data_never_reaches_the_server_its_digests_do(tmp_path: Path) -> None:
    repo = _echo_forge(tmp_path)
    text = f"{DIARY}\nkey: {API_KEY}\n{PEM}"
    ran = kavi_json("run-skill", "echo_text", "--json", json.dumps({"text": text}), cwd=repo)
    assert ran["status"] == "SUCCEEDED" and DIARY in ran["output"]["text"]  # the caller gets the output
    kavi_json("run-skill", "echo_text", "--json", '{"text": 5}', cwd=repo, expect=2)  # a FAILED run too
    run = kavi_json("show", ran["run_id"], cwd=repo)
    sealed = run["run"]["sealed"]
    assert set(sealed) == {"input", "output"} and run["run"]["input"]["text"].startswith(DIARY)
    # the local record keeps the data, never the credentials
    record = (repo / run["artifact"]["path"]).read_text()
    assert DIARY in record and API_KEY not in record and PEM_BODY not in record
    assert "[REDACTED PRIVATE KEY]" in record and sealed["input"] in record

    server = tmp_path / "server.git"
    git("init", "-q", "--bare", str(server), cwd=tmp_path)
    git("remote", "add", "origin", str(server), cwd=repo)
    kavi_json("ledger", "sync", cwd=repo)
    pushed = kavi_json("push", "origin", cwd=repo)
    assert "refs/kavi/ledger" in pushed["pushed"]
    objects = _server_objects(server)
    for private in (DIARY, "7f3a91", API_KEY, PEM_BODY, "launch slips"):
        assert private.encode() not in objects, private
    for value in sealed.values():
        assert value.encode() in objects  # the digests travelled
    assert b"RUN_RECORD" in objects  # the record's own digest travelled (not its bytes)

    # a fresh clone rebuilds an equivalent ledger and works in it
    clone = tmp_path / "clone"
    git("clone", "-q", str(server), str(clone), cwd=tmp_path)
    git("fetch", "-q", "origin", "refs/kavi/*:refs/kavi/*", "refs/notes/kavi:refs/notes/kavi", cwd=clone)
    assert kavi_json("list-skills", cwd=clone) == kavi_json("list-skills", cwd=repo)
    there = kavi_json("show", ran["run_id"], cwd=clone)["run"]
    here = run["run"]
    assert there["input"] is None and there["output"] is None and there["sealed"] == sealed
    assert {k: v for k, v in there.items() if k not in ("input", "output")} == {
        k: v for k, v in here.items() if k not in ("input", "output")
    }
    audit = kavi_json("audit", "echo_text", cwd=clone)
    assert audit["ok"] is True, audit
    runs = next(s for s in audit["skills"]["echo_text"] if s["title"].startswith("runs"))
    assert all(c["ok"] for c in runs["checks"]) and sealed["input"][:12] in json.dumps(runs)
    assert kavi("show", "echo_text", cwd=clone).code == 0
    again = kavi_json("run-skill", "echo_text", "--json", '{"text": "hello"}', cwd=clone)
    assert again["status"] == "SUCCEEDED"
    # the originating clone can still prove its data is what the digests say
    assert kavi_json("doctor", cwd=repo)["ok"] is True


def test_policy_opts_into_mirroring_run_data(tmp_path: Path) -> None:
    import yaml

    repo = _echo_forge(tmp_path)
    policy = repo / ".kavi/policy.yaml"
    data = yaml.safe_load(policy.read_text())
    data["mirror"] = {"run_data": True, "artifacts": ["SKILL_SPEC", "RUN_RECORD"]}
    policy.write_text(yaml.safe_dump(data))
    git("commit", "-q", "-S", "-am", "policy: runs travel in full", cwd=repo)
    ran = kavi_json("run-skill", "echo_text", "--json", json.dumps({"text": DIARY}), cwd=repo)
    kavi_json("ledger", "sync", cwd=repo)
    message = git("log", "-1", "--format=%B", "refs/kavi/ledger", cwd=repo)
    assert DIARY in message and ran["run_id"] in message
    record = git("ls-tree", "-r", "--name-only", "refs/kavi/ledger", cwd=repo)
    assert len(record.splitlines()) >= 2  # SKILL_SPEC and the RUN_RECORD's bytes
