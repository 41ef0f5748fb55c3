"""Helpers for tests: real git repositories, the real Kavi CLI (in-process), real ssh keys."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parents[2] / "src" / "kavi" / "examples"
WRITE_NOTE_DIR = EXAMPLES / "write_note"
WRITE_NOTE_SCHEMA = json.dumps(
    {
        "input": {"path": "str", "title": "str", "body": "str"},
        "output": {"written_path": "str", "sha256": "str"},
    }
)


def git(*args: str, cwd: Path, check: bool = True, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        ["git", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc.stdout.strip()


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> Any:
        return json.loads(self.stdout)

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@contextlib.contextmanager
def _cwd(path: Path) -> Iterator[None]:
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def kavi(*args: str, cwd: Path, stdin: str = "") -> Result:
    """Run the real CLI entry point in-process and capture what it prints."""
    from kavi.cli import output
    from kavi.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    old_in = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        with _cwd(cwd), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(list(args))
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.stdin = old_in
        output.use(output.Format.text)
    return Result(code, out.getvalue(), err.getvalue())


def kavi_json(*args: str, cwd: Path, expect: int = 0) -> Any:
    res = kavi(*args, "--format", "json", cwd=cwd)
    assert res.code == expect, f"exit {res.code} (expected {expect}):\n{res.output}"
    return res.json


def new_repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git("init", "-q", "-b", "main", str(path), cwd=path.parent)
    (path / "README.md").write_text("# a forge\n")
    git("add", "README.md", cwd=path)
    git("commit", "-q", "-m", "initial commit", cwd=path)
    return path


def make_forge(tmp_path: Path, name: str = "forge") -> Path:
    repo = new_repo(tmp_path / name)
    res = kavi("init", cwd=repo)
    assert res.code == 0, res.output
    return repo


def propose_write_note(repo: Path, name: str = "write_note") -> str:
    data = kavi_json(
        "propose-skill",
        "--name",
        name,
        "--desc",
        "Write a markdown note into the vault",
        "--side-effect",
        "FILE_WRITE",
        "--io-schema-json",
        WRITE_NOTE_SCHEMA,
        cwd=repo,
    )
    return str(data["proposal_id"])


def ssh_key(directory: Path, name: str = "id_ed25519", comment: str = "test") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    key = directory / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(key)],
        check=True,
        capture_output=True,
    )
    return key


def use_signing_key(key: Path) -> None:
    """Configure the (test) global git config to sign with ``key``."""
    home = Path(os.environ["HOME"])
    with (home / ".gitconfig").open("a") as fh:
        fh.write(f"[gpg]\n\tformat = ssh\n[user]\n\tsigningkey = {key}.pub\n")


def refs(repo: Path) -> dict[str, str]:
    out = git("for-each-ref", "--format=%(refname) %(objectname)", cwd=repo)
    return dict(line.split(" ", 1) for line in out.splitlines() if line)


def git_state(repo: Path) -> dict[str, Any]:
    """Everything a misbehaving build must not change in the main repository."""
    gitdir = repo / ".git"
    hooks = {p.name: p.read_bytes() for p in sorted((gitdir / "hooks").iterdir()) if p.is_file()}
    return {
        "config": (gitdir / "config").read_bytes(),
        "hooks": hooks,
        "refs": {k: v for k, v in refs(repo).items() if not k.startswith("refs/heads/skill/")},
        "head": (gitdir / "HEAD").read_bytes(),
        "status": git("status", "--porcelain", cwd=repo),
    }


def edit_config(repo: Path, change: Any, message: str = "test: configure the forge") -> None:
    """Apply ``change(config_dict)`` to .kavi/config.yaml and commit it (Kavi reads the
    committed governance, never local edits)."""
    import yaml

    path = repo / ".kavi/config.yaml"
    config = yaml.safe_load(path.read_text())
    change(config)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    git("commit", "-q", "-am", message, cwd=repo)


def use_advisor(repo: Path, base_url: str, **extra: Any) -> None:
    """Point research.advisor at ``base_url`` (a loopback stand-in server)."""

    def change(config: dict[str, Any]) -> None:
        config.setdefault("research", {})["advisor"] = {
            "base_url": base_url,
            "model": "fake-model",
            "timeout_seconds": 5,
            "connect_timeout_seconds": 2,
            **extra,
        }

    edit_config(repo, change, "test: research advisor")


def forge_id(repo: Path) -> str:
    """The forge id (root commit) a clone pinned."""
    return str(json.loads((repo / ".git/kavi/trust-root.json").read_text())["forge_id"])


def other_forge(tmp_path: Path, name: str = "other") -> Path:
    """Another forge of the same signer: its own history (so its own root), same key."""
    other = new_repo(tmp_path / name)
    (other / "README.md").write_text(f"# {name}: another project of the same person\n")
    git("commit", "-q", "-am", "another project", cwd=other)
    res = kavi("init", cwd=other)
    assert res.code == 0, res.output
    return other
