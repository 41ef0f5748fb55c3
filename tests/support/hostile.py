"""A forge of promoted skills that misbehave when they run (the boundary tests share it).

Each skill passed every static gate on a forge whose policy lets network code through the
scanner (so a READ_ONLY skill that connects passes too; reads and writes go through the
scanner's documented blind spots — a wholly unknown read path, a run-time tail joined
onto the sanctioned write root — so that the operating system is what answers), allows
NETWORK skills, and sets small resource limits. Built once per session; every test gets a copy, with a private
key in its HOME and secrets in Kavi's environment.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from conftest import isolation
from support.forge import git, make_forge, ssh_key, use_signing_key
from support.skills import promote, skill_source, skill_tests_source

KEY_TEXT = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAAtheusersprivatekey\n"
TOKEN = "tok-declared-4f1d9c2b7a"
OTHER = "tok-undeclared-8e2a5c7d"
OPENAI = "sk-unrelated-credential-6b3f"

SKILLS: dict[str, tuple[str, dict[str, dict[str, str]], str, str, tuple[str, ...]]] = {
    "read_file": (
        "READ_ONLY",
        {"input": {"path": "str"}, "output": {"text": "str"}},
        # a wholly unknown path (relative ones resolve against the vault, the working
        # directory): the scanner's documented blind spot, so the OS is what answers
        "        return ReadFileOutput(text=Path(input.path).read_text())\n",
        "from pathlib import Path\n\n",
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
        # a run-time tail concatenated onto the sanctioned root: past the scanner (its
        # documented blind spot), so the OS is what keeps the write inside
        '        target = Path(str(ctx.resolve_write_path(".")) + "/" + input.path)\n'
        "        target.write_text(input.body)\n"
        "        return WriteAnyOutput(written=str(target))\n",
        "from pathlib import Path\n\n",
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
    "net_ping": (
        "NETWORK",
        {"input": {"port": "int"}, "output": {"reply": "str"}},
        '        with socket.create_connection(("127.0.0.1", input.port), timeout=2) as conn:\n'
        "            return NetPingOutput(reply=conn.recv(100).decode())\n",
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
    for rule in policy["runtime"]["rules"]:
        if rule["match"]["side_effect"] == "NETWORK":
            rule["decision"] = "ALLOW"
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    git("commit", "-q", "-S", "-am", "policy: network code allowed in the scanner; small limits", cwd=repo)


def build_template(root: Path) -> Path:
    """Build the forge under ``root`` (inside an isolated HOME); return ``root``."""
    with isolation(root):
        use_signing_key(ssh_key(root / "keys"))
        repo = make_forge(root)
        _policy(repo)
        for name, (effect, schema, body, imports, secrets) in SKILLS.items():
            inputs, outputs = schema["input"], schema["output"]
            source = skill_source(name, effect, inputs, outputs, body, imports=imports, secrets=secrets)
            promote(repo, root, name, effect, schema, source, skill_tests_source(name), secrets=secrets)
    return root


def copy_template(hostile_template: Path, tmp_path: Path, isolated_env: Path) -> Path:
    """A copy of the forge for one test, a private key in its HOME, secrets in the environment."""
    shutil.copytree(hostile_template / "forge", tmp_path / "forge", symlinks=True)
    shutil.copytree(hostile_template / "keys", tmp_path / "keys")
    use_signing_key(tmp_path / "keys" / "id_ed25519")
    key = isolated_env / ".ssh" / "id_ed25519"
    key.parent.mkdir(parents=True)
    key.write_text(KEY_TEXT)
    os.environ.update({"KAVI_SECRET_TOKEN": TOKEN, "KAVI_SECRET_OTHER": OTHER, "OPENAI_API_KEY": OPENAI})
    return tmp_path / "forge"


def everything_stored(repo: Path) -> str:
    """The ledger, the vault and every git object, as text to search."""
    parts = [(repo / ".git" / "kavi" / "ledger.db").read_bytes().decode("utf-8", "replace")]
    for path in sorted((repo / "vault_out").rglob("*")):
        if path.is_file() and not path.is_symlink():
            parts.append(path.read_text(errors="replace"))
    objects = git("cat-file", "--batch-all-objects", "--batch-check=%(objectname)", cwd=repo).split()
    parts += [git("cat-file", "-p", oid, cwd=repo) for oid in objects]
    return "\n".join(parts)


@contextmanager
def loopback_listener() -> Iterator[tuple[int, list[str]]]:
    """A TCP service on 127.0.0.1 (its port, and the peers it has seen)."""
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
