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
import os
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from conftest import isolation
from kavi.confine import jail
from support.forge import git, kavi, kavi_json, make_forge, ssh_key, use_signing_key
from support.skills import promote, skill_source, skill_tests_source

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not jail.available(), reason="no user namespaces here: see test_confine_fallback.py"),
]

KEY_TEXT = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAAtheusersprivatekey\n"
TOKEN = "tok-declared-4f1d9c2b7a"
OTHER = "tok-undeclared-8e2a5c7d"
OPENAI = "sk-unrelated-credential-6b3f"

SKILLS: dict[str, tuple[str, dict[str, dict[str, str]], str, str, tuple[str, ...]]] = {
    "read_file": (
        "READ_ONLY",
        {"input": {"path": "str"}, "output": {"text": "str"}},
        "        return ReadFileOutput(text=(ctx.vault_root / input.path).read_text())\n",
        "",
        (),
    ),
    "use_token": (
        "READ_ONLY",
        {"input": {"note": "str"}, "output": {"digest": "str", "raw": "str"}},
        '        token = ctx.secrets["TOKEN"]\n'
        "        return UseTokenOutput(digest=hashlib.sha256(token.encode()).hexdigest(), raw=token)\n",
        "import hashlib\n\n",
        ("TOKEN",),
    ),
    "write_any": (
        "FILE_WRITE",
        {"input": {"path": "str", "body": "str"}, "output": {"written": "str"}},
        "        target = ctx.vault_root / input.path\n"
        "        target.write_text(input.body)\n"
        "        return WriteAnyOutput(written=str(target))\n",
        "",
        (),
    ),
    "ping_local": (
        "READ_ONLY",
        {"input": {"port": "int"}, "output": {"reply": "str"}},
        '        with socket.create_connection(("127.0.0.1", input.port), timeout=2) as conn:\n'
        "            return PingLocalOutput(reply=conn.recv(100).decode())\n",
        "import socket\n\n",
        (),
    ),
    "burn": (
        "READ_ONLY",
        {"input": {"mode": "str"}, "output": {"n": "int"}},
        '        if input.mode == "alloc":\n'
        "            return BurnOutput(n=len(bytearray(10 * 1024**3)))\n"
        "        n = 0\n"
        '        while input.mode == "loop":\n'
        "            n += 1\n"
        "        return BurnOutput(n=n)\n",
        "",
        (),
    ),
}


def _policy(repo: Path) -> None:
    path = repo / ".kavi" / "policy.yaml"
    policy = yaml.safe_load(path.read_text())
    policy["scanner"]["network"] = True  # network code passes the static gates here
    policy["runtime"]["timeout_seconds"] = 20
    policy["runtime"]["limits"].update({"cpu_seconds": 2, "memory_mb": 1024})
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    git("commit", "-q", "-S", "-am", "policy: network code allowed in the scanner; small limits", cwd=repo)


@pytest.fixture(scope="session")
def hostile_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    with isolation(root):
        use_signing_key(ssh_key(root / "keys"))
        repo = make_forge(root)
        _policy(repo)
        for name, (effect, schema, body, imports, secrets) in SKILLS.items():
            inputs, outputs = schema["input"], schema["output"]
            source = skill_source(name, effect, inputs, outputs, body, imports=imports, secrets=secrets)
            promote(repo, root, name, effect, schema, source, skill_tests_source(name), secrets=secrets)
    return root


@pytest.fixture
def forge(tmp_path: Path, hostile_template: Path, isolated_env: Path) -> Path:
    shutil.copytree(hostile_template / "forge", tmp_path / "forge", symlinks=True)
    shutil.copytree(hostile_template / "keys", tmp_path / "keys")
    use_signing_key(tmp_path / "keys" / "id_ed25519")
    key = isolated_env / ".ssh" / "id_ed25519"
    key.parent.mkdir(parents=True)
    key.write_text(KEY_TEXT)
    os.environ.update({"KAVI_SECRET_TOKEN": TOKEN, "KAVI_SECRET_OTHER": OTHER, "OPENAI_API_KEY": OPENAI})
    return tmp_path / "forge"


def _run(repo: Path, name: str, payload: dict[str, object]) -> tuple[int, dict]:
    res = kavi("run-skill", name, "--json", json.dumps(payload), "--format", "json", cwd=repo)
    return res.code, res.json


def _everything_stored(repo: Path) -> str:
    """The ledger, the vault and every git object, as text to search."""
    parts = [(repo / ".git" / "kavi" / "ledger.db").read_bytes().decode("utf-8", "replace")]
    for path in sorted((repo / "vault_out").rglob("*")):
        if path.is_file() and not path.is_symlink():
            parts.append(path.read_text(errors="replace"))
    objects = git("cat-file", "--batch-all-objects", "--batch-check=%(objectname)", cwd=repo).split()
    parts += [git("cat-file", "-p", oid, cwd=repo) for oid in objects]
    return "\n".join(parts)


def test_read_only_skill_reads_nothing_outside_its_roots(forge: Path, isolated_env: Path) -> None:
    (forge / "vault_out" / "notes").mkdir(parents=True, exist_ok=True)
    (forge / "vault_out" / "notes" / "hello.md").write_text("hello vault\n")
    (forge / "vault_out" / "escape").symlink_to(isolated_env / ".ssh" / "id_ed25519")
    git("config", "kavi.test-secret", "git-config-secret-value", cwd=forge)
    code, out = _run(forge, "read_file", {"path": "notes/hello.md"})
    assert code == 0 and out["output"]["text"] == "hello vault\n"  # control
    for path in (str(isolated_env / ".ssh" / "id_ed25519"), "../.git/config", "escape"):
        code, err = _run(forge, "read_file", {"path": path})
        assert code == 1, (path, err)
        assert err["code"] == "KAVI-RUN-FAILED" and "FileNotFoundError" in err["message"], err
    stored = _everything_stored(forge)
    assert "theusersprivatekey" not in stored and "git-config-secret-value" not in stored
    records = sorted((forge / "vault_out" / "kavi" / "run_record").glob("*.md"))
    assert len(records) == 4 and all("confinement: namespaces" in r.read_text() for r in records)


def test_secrets_reach_only_the_skill_that_declared_them(forge: Path) -> None:
    code, out = _run(forge, "read_file", {"path": "/proc/self/environ"})
    assert code == 0, out
    environ = out["output"]["text"]
    assert TOKEN not in environ and OTHER not in environ and OPENAI not in environ
    assert "KAVI_SECRET" not in environ and "OPENAI" not in environ and "HOME=/tmp" in environ
    code, out = _run(forge, "use_token", {"note": "hi"})
    assert code == 0, out
    assert out["output"]["digest"] == hashlib.sha256(TOKEN.encode()).hexdigest()  # it had the secret
    assert out["output"]["raw"] == "[REDACTED]"  # and returned it: redacted before anything is stored
    stored = _everything_stored(forge)
    for value in (TOKEN, OTHER, OPENAI):
        assert value not in stored


def test_file_write_skill_cannot_touch_kavi_artifacts(forge: Path) -> None:
    (forge / "vault_out" / "notes").mkdir(parents=True)
    code, out = _run(forge, "write_any", {"path": "notes/ok.md", "body": "fine"})
    assert code == 0 and (forge / "vault_out" / "notes" / "ok.md").read_text() == "fine"
    artifacts = forge / "vault_out" / "kavi"
    before = {p: p.read_bytes() for p in artifacts.rglob("*") if p.is_file()}
    victim = sorted(artifacts.rglob("RUN_RECORD_*.md"))[0].relative_to(forge / "vault_out")
    for path in (str(victim), "kavi/planted.md", "../.git/hooks/post-checkout", "../.kavi/policy.yaml"):
        code, err = _run(forge, "write_any", {"path": path, "body": "pwned"})
        assert code == 1, (path, err)
    assert not (artifacts / "planted.md").exists() and not (forge / ".git/hooks/post-checkout").exists()
    after = {p: p.read_bytes() for p in before}
    assert after == before
    assert "pwned" not in (forge / ".kavi" / "policy.yaml").read_text()


@pytest.fixture
def listener() -> Iterator[tuple[int, list[str]]]:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    server.settimeout(0.2)
    seen: list[str] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, addr = server.accept()
            except OSError:
                continue
            seen.append(str(addr))
            conn.sendall(b"loopback service")
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], seen
    stop.set()
    thread.join()
    server.close()


def test_read_only_skill_cannot_reach_a_loopback_listener(forge: Path, listener: tuple[int, list[str]]) -> None:
    port, seen = listener
    code, err = _run(forge, "ping_local", {"port": port})
    assert code == 1, err
    assert not seen, "the listener was reached"


@pytest.mark.parametrize(("mode", "limit"), [("loop", "cpu_seconds"), ("alloc", "memory_mb")])
def test_runaway_skill_is_killed_and_recorded(forge: Path, mode: str, limit: str) -> None:
    code, err = _run(forge, "burn", {"mode": mode})
    assert code == 1, err
    assert err["code"] == "KAVI-RUN-LIMIT" and f"runtime.limits.{limit}" in err["message"], err
    record = sorted((forge / "vault_out" / "kavi" / "run_record").glob("*.md"))[-1].read_text()
    assert "**FAILED**" in record and f"limit exceeded: {limit}" in record
