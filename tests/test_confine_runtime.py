"""Must show, at run time: skills that passed every static gate, and what they cannot do.

Each skill here is promoted through the real pipeline (``files`` backend, verify, promote)
on a forge whose policy allows network code in the scanner (so a READ_ONLY skill that
connects passes the static gates too) and sets small resource limits. What stops each
attempt is the confinement of ``run-skill``; nothing leaks into the output, the run
records, the ledger or git, and nothing outside the allowed roots changes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from kavi.confine import jail
from support.forge import git, kavi
from support.hostile import OPENAI, OTHER, TOKEN, everything_stored

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not jail.available(), reason="no user namespaces here: see test_confine_fallback.py"),
]


def _run(repo: Path, name: str, payload: dict[str, object]) -> tuple[int, dict]:
    res = kavi("run-skill", name, "--json", json.dumps(payload), "--format", "json", cwd=repo)
    return res.code, res.json


def test_read_only_skill_reads_nothing_outside_its_roots(hostile: Path, isolated_env: Path) -> None:
    (hostile / "vault_out" / "notes").mkdir(parents=True, exist_ok=True)
    (hostile / "vault_out" / "notes" / "hello.md").write_text("hello vault\n")
    (hostile / "vault_out" / "escape").symlink_to(isolated_env / ".ssh" / "id_ed25519")
    git("config", "kavi.test-secret", "git-config-secret-value", cwd=hostile)
    code, out = _run(hostile, "read_file", {"path": "notes/hello.md"})
    assert code == 0 and out["output"]["text"] == "hello vault\n"  # control
    for path in (str(isolated_env / ".ssh" / "id_ed25519"), "../.git/config", "escape"):
        code, err = _run(hostile, "read_file", {"path": path})
        assert code == 1, (path, err)
        assert err["code"] == "KAVI-RUN-FAILED" and "FileNotFoundError" in err["message"], err
    stored = everything_stored(hostile)
    assert "theusersprivatekey" not in stored and "git-config-secret-value" not in stored
    records = sorted((hostile / "vault_out" / "kavi" / "run_record").glob("*.md"))
    assert len(records) == 4 and all("confinement: namespaces" in r.read_text() for r in records)


def test_secrets_reach_only_the_skill_that_declared_them(hostile: Path) -> None:
    code, out = _run(hostile, "read_file", {"path": "/proc/self/environ"})
    assert code == 0, out
    environ = out["output"]["text"]
    assert TOKEN not in environ and OTHER not in environ and OPENAI not in environ
    assert "KAVI_SECRET" not in environ and "OPENAI" not in environ and "HOME=/tmp" in environ
    code, out = _run(hostile, "use_token", {"note": "hi"})
    assert code == 0, out
    assert out["output"]["digest"] == hashlib.sha256(TOKEN.encode()).hexdigest()  # it had the secret
    assert out["output"]["raw"] == "[REDACTED]"  # and returned it: redacted before anything is stored
    stored = everything_stored(hostile)
    for value in (TOKEN, OTHER, OPENAI):
        assert value not in stored


def test_file_write_skill_cannot_touch_kavi_artifacts(hostile: Path) -> None:
    (hostile / "vault_out" / "notes").mkdir(parents=True)
    code, out = _run(hostile, "write_any", {"path": "notes/ok.md", "body": "fine"})
    assert code == 0, out
    assert (hostile / "vault_out" / "notes" / "ok.md").read_text() == "fine"
    artifacts = hostile / "vault_out" / "kavi"
    before = {p: p.read_bytes() for p in artifacts.rglob("*") if p.is_file()}
    victim = sorted(artifacts.rglob("RUN_RECORD_*.md"))[0].relative_to(hostile / "vault_out")
    for path in (str(victim), "kavi/planted.md", "../.git/hooks/post-checkout", "../.kavi/policy.yaml"):
        code, err = _run(hostile, "write_any", {"path": path, "body": "pwned"})
        assert code == 1, (path, err)
    assert not (artifacts / "planted.md").exists() and not (hostile / ".git/hooks/post-checkout").exists()
    after = {p: p.read_bytes() for p in before}
    assert after == before
    assert "pwned" not in (hostile / ".kavi" / "policy.yaml").read_text()


def test_read_only_skill_cannot_reach_a_loopback_listener(
    hostile: Path, listener: tuple[int, list[str]]
) -> None:
    port, seen = listener
    code, err = _run(hostile, "ping_local", {"port": port})
    assert code == 1, err
    assert not seen, "the listener was reached"


@pytest.mark.parametrize(("mode", "limit"), [("loop", "cpu_seconds"), ("alloc", "memory_mb")])
def test_runaway_skill_is_killed_and_recorded(hostile: Path, mode: str, limit: str) -> None:
    code, err = _run(hostile, "burn", {"mode": mode})
    assert code == 1, err
    assert err["code"] == "KAVI-RUN-LIMIT" and f"runtime.limits.{limit}" in err["message"], err
    record = sorted((hostile / "vault_out" / "kavi" / "run_record").glob("*.md"))[-1].read_text()
    assert "**FAILED**" in record and f"limit exceeded: {limit}" in record
