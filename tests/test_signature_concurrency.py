"""Signature checks are safe under concurrency.

The hook verifies a push's signatures from eight threads. The allowed-signers file they
share used to be (re)written by whichever thread needed it first, and a thread whose
``ssh-keygen`` read it while another truncated it saw "no such signer": 2–5 % of valid
ledger pushes were refused.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from support.forge import git, kavi_json, new_repo, ssh_key, use_signing_key


def _signed(tmp_path: Path) -> tuple[bytes, str, str]:
    key = ssh_key(tmp_path / "keys")
    payload = b"a payload\n"
    (tmp_path / "payload").write_bytes(payload)
    subprocess.run(
        ["ssh-keygen", "-Y", "sign", "-n", "git", "-f", str(key), str(tmp_path / "payload")],
        check=True,
        capture_output=True,
    )
    line = f'ada@example.com namespaces="git" {key.with_suffix(".pub").read_text()}'
    return payload, (tmp_path / "payload.sig").read_text(), line


def test_many_threads_verifying_against_new_signers_files(tmp_path: Path) -> None:
    """Eight threads released at once against a signers text no thread has seen yet,
    fifty times over: every verdict is good."""
    from kavi.sshsig import verify

    payload, signature, line = _signed(tmp_path)
    bad: list[str] = []
    for round_ in range(50):
        signers = f"# round {round_}\n{line}"
        start = threading.Barrier(8)

        def check(signers: str = signers, start: threading.Barrier = start) -> None:
            start.wait()
            verdict = verify(payload, signature, signers)
            if not verdict.ok:
                bad.append(verdict.detail)

        with ThreadPoolExecutor(max_workers=8) as pool:
            for future in [pool.submit(check) for _ in range(8)]:
                future.result()
    assert bad == []


def test_the_signers_file_is_never_seen_half_written(tmp_path: Path) -> None:
    """The root cause, observed directly: eight threads ask for the file of a text none of
    them has seen and read it back at once. Before the fix about one read in six saw it
    truncated by another thread rewriting it; now the file is written once, atomically."""
    from kavi.sshsig import _signers_file

    torn = 0
    for round_ in range(100):
        text = f"# round {round_}\n" + "x" * 200_000
        start = threading.Barrier(8)

        def read(_: int, text: str = text, start: threading.Barrier = start) -> bool:
            start.wait()
            return _signers_file(text).read_text() == text

        with ThreadPoolExecutor(max_workers=8) as pool:
            torn += sum(not ok for ok in pool.map(read, range(8)))
    assert torn == 0


@pytest.mark.slow
def test_200_concurrent_ledger_only_pushes_are_all_accepted(tmp_path: Path) -> None:
    """200 valid ledger pushes (nine signed events each, verified by the hook's threads),
    four at a time into hooked servers: zero rejections."""
    use_signing_key(ssh_key(tmp_path / "keys"))
    repo = new_repo(tmp_path / "forge")
    kavi_json("init", cwd=repo)
    template = tmp_path / "template.git"
    git("init", "-q", "--bare", str(template), cwd=tmp_path)
    kavi_json("hooks", "install", "--server", str(template), cwd=repo)
    assert subprocess.run(["git", "push", "-q", str(template), "main"], cwd=repo).returncode == 0
    for i in range(4):
        kavi_json(
            "propose-skill", "--name", f"skill_{i}", "--desc", "d", "--side-effect", "READ_ONLY",
            "--io-schema-json", '{"input": {"a": "str"}, "output": {"b": "str"}}', cwd=repo,
        )  # fmt: skip
    assert kavi_json("ledger", "sync", cwd=repo)["mirrored"] >= 8
    servers = []
    for i in range(200):
        server = tmp_path / f"srv{i}.git"
        shutil.copytree(template, server, symlinks=True)
        servers.append(server)

    def push(server: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["git", "push", "--porcelain", str(server), "refs/kavi/ledger"],
            cwd=repo,
            capture_output=True,
            text=True,
        )

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(push, servers))
    refused = [r.stderr for r in results if r.returncode != 0]
    assert refused == [], f"{len(refused)} of 200 refused; first:\n{refused[0] if refused else ''}"
    tip = git("rev-parse", "refs/kavi/ledger", cwd=repo)
    assert all(
        git("--git-dir", str(s), "rev-parse", "refs/kavi/ledger", cwd=tmp_path) == tip for s in servers
    )
