"""The pre-receive hook's cost, in the same run, against the same pushes without it.

1. Push 1,000 new commits without protected changes onto a 10,000-commit history:
   wall time with the hook as a ratio to without it (goal ≤ 1.5x). Two bare
   repositories hold the same history; one has the hook installed. Each round pushes
   a fresh set of 1,000 commits to both.
2. Push 50 promotions at once (the branch, 50 signed tags, the notes and the ledger
   mirror), made by the real pipeline (propose, build, verify, promote): the hook's
   time per promotion.

    python bench/bench_hook.py [--history 10000] [--push 1000] [--rounds 3] [--promotions 50]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "src" / "kavi" / "examples" / "write_note"
KAVI = [sys.executable, "-m", "kavi"]


def sh(*argv: str, cwd: Path, env: dict[str, str], stdin: str | None = None) -> str:
    proc = subprocess.run(argv, cwd=cwd, env=env, input=stdin, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{proc.stderr}")
    return proc.stdout


def fast_import_commits(repo: Path, env: dict[str, str], branch: str, count: int, tag: str) -> None:
    """Append ``count`` small commits (one new file each, outside protected paths) to ``branch``."""
    parent = sh("git", "rev-parse", f"refs/heads/{branch}", cwd=repo, env=env).strip()
    lines = []
    for i in range(count):
        data = f"{tag} {i}\n"
        msg = f"{tag}: commit {i}"
        lines += [
            f"commit refs/heads/{branch}",
            f"committer Bench <bench@example.com> {1700000000 + i} +0000",
            f"data {len(msg)}",
            msg,
        ]
        if i == 0:
            lines.append(f"from {parent}")
        lines += [f"M 100644 inline data/{tag}/{i % 100}/{i}.txt", f"data {len(data)}", data]
    sh("git", "fast-import", "--quiet", cwd=repo, env=env, stdin="\n".join(lines) + "\n")


def timed_push(repo: Path, remote: str, env: dict[str, str], *refs: str) -> float:
    start = time.perf_counter()
    sh("git", "push", "-q", remote, *refs, cwd=repo, env=env)
    return time.perf_counter() - start


def forge_with_remotes(root: Path, name: str, env: dict[str, str], history: int = 0) -> Path:
    """A signed forge (optionally with ``history`` extra commits), pushed to a plain and a
    hooked bare repository (remotes ``plain`` and ``hooked``)."""
    repo = root / name
    sh("git", "init", "-q", "-b", "main", str(repo), cwd=root, env=env)
    key = root / f"{name}-key"
    sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key), cwd=root, env=env)
    sh("git", "config", "gpg.format", "ssh", cwd=repo, env=env)
    sh("git", "config", "user.signingkey", f"{key}.pub", cwd=repo, env=env)
    (repo / "README.md").write_text("bench\n")
    sh("git", "add", "-A", cwd=repo, env=env)
    sh("git", "commit", "-q", "-m", "init", cwd=repo, env=env)
    sh(*KAVI, "init", cwd=repo, env=env)
    if history:
        fast_import_commits(repo, env, "main", history, "history")
    plain, hooked = root / f"{name}-plain.git", root / f"{name}-hooked.git"
    for bare in (plain, hooked):
        sh("git", "init", "-q", "--bare", str(bare), cwd=root, env=env)
    sh(*KAVI, "hooks", "install", "--server", str(hooked), cwd=repo, env=env)
    sh("git", "remote", "add", "plain", str(plain), cwd=repo, env=env)
    sh("git", "remote", "add", "hooked", str(hooked), cwd=repo, env=env)
    timed_push(repo, "plain", env, "main")
    timed_push(repo, "hooked", env, "main")
    return repo


def part_one(root: Path, env: dict[str, str], history: int, push: int, rounds: int) -> None:
    repo = forge_with_remotes(root, "forge", env, history)
    # one untimed round: the hook parses the committed config once and caches it by blob id
    fast_import_commits(repo, env, "main", 10, "warmup")
    timed_push(repo, "plain", env, "main")
    timed_push(repo, "hooked", env, "main")
    with_hook, without = [], []
    for r in range(rounds):
        fast_import_commits(repo, env, "main", push, f"round{r}")
        without.append(timed_push(repo, "plain", env, "main"))
        with_hook.append(timed_push(repo, "hooked", env, "main"))
    w, wo = statistics.median(with_hook), statistics.median(without)
    print(
        f"[1] push {push} commits onto {history}: without hook {wo * 1000:7.1f} ms, "
        f"with hook {w * 1000:7.1f} ms"
    )
    print(f"    ratio with/without = {w / wo:.2f}x   (goal <= 1.5x, median of {rounds})")


def variant(i: int) -> tuple[str, str, str]:
    name = f"note_{i}"
    camel = f"Note{i}"
    skill = (
        (EXAMPLE / "skills/write_note.py").read_text().replace("write_note", name).replace("WriteNote", camel)
    )
    test = (EXAMPLE / "tests/test_skill_write_note.py").read_text().replace("write_note", name)
    return name, skill, test.replace("WriteNote", camel)


def part_two(root: Path, env: dict[str, str], promotions: int) -> None:
    repo = forge_with_remotes(root, "forge2", env)
    start = time.perf_counter()
    for i in range(promotions):
        name, skill, test = variant(i)
        src = root / "variants" / name
        (src / "skills").mkdir(parents=True)
        (src / "tests").mkdir(parents=True)
        (src / "skills" / f"{name}.py").write_text(skill)
        (src / "tests" / f"test_skill_{name}.py").write_text(test)
        schema = {
            "input": {"path": "str", "title": "str", "body": "str"},
            "output": {"written_path": "str", "sha256": "str"},
        }
        pid = json.loads(
            sh(
                *KAVI,
                "propose-skill",
                "--name",
                name,
                "--desc",
                "bench",
                "--side-effect",
                "FILE_WRITE",
                "--io-schema-json",
                json.dumps(schema),
                "--format",
                "json",
                cwd=repo,
                env=env,
            )
        )["proposal_id"]
        sh(*KAVI, "build-skill", pid, "--backend", "files", "--from", str(src), cwd=repo, env=env)
        sh(*KAVI, "verify-skill", pid, cwd=repo, env=env)
        sh(*KAVI, "promote-skill", pid, "--yes", cwd=repo, env=env)
        print(
            f"    made promotion {i + 1}/{promotions} ({time.perf_counter() - start:.0f}s)", file=sys.stderr
        )
    refs = ["main", "refs/tags/kavi/*:refs/tags/kavi/*", "refs/notes/kavi", "refs/kavi/ledger"]
    without = timed_push(repo, "plain", env, *refs)
    with_hook = timed_push(repo, "hooked", env, *refs)
    per = (with_hook - without) / promotions
    print(
        f"[2] push {promotions} promotions at once: without hook {without * 1000:7.1f} ms, "
        f"with hook {with_hook * 1000:7.1f} ms"
    )
    print(f"    hook cost per promotion = {per * 1000:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, default=10_000)
    parser.add_argument("--push", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--promotions", type=int, default=50)
    parser.add_argument("--skip-promotions", action="store_true")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="kavi-bench-hook-"))
    home = root / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[user]\n\tname = Bench\n\temail = bench@example.com\n")
    env = {
        **{
            k: v for k, v in os.environ.items() if not k.startswith("GIT_") and k != "PYTHONDONTWRITEBYTECODE"
        },
        "HOME": str(home),
    }
    try:
        part_one(root, env, args.history, args.push, args.rounds)
        if not args.skip_promotions:
            part_two(root, env, args.promotions)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
