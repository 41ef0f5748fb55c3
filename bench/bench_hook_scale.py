"""The pre-receive hook where repositories are big, as a ratio to the same push without it.

Two bare repositories receive the same pushes; one has Kavi's hook installed. Each
figure is the median of ``--rounds`` timed pushes, in the same run, goal ≤ 1.5x.

1. A forge with 20,000 top-level files; push 30 small commits:
   a. ordinary commits (the hook's fast lane);
   b. the same, the first being a signed governance commit (the full check judges all
      30 commits: tree diffs, not listings of the 20,000-entry root).
2. A forge with a 100,000-commit history; a one-commit rewind of ``main``, forced: the
   hook rejects it (without the hook it is accepted and reset between rounds).

Histories are generated with ``git fast-import``.

    python bench/bench_hook_scale.py [--files 20000] [--commits 30] [--history 100000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KAVI = [sys.executable, "-m", "kavi"]


def sh(*argv: str, cwd: Path, env: dict[str, str], stdin: str | None = None, ok: bool = True) -> str:
    proc = subprocess.run(argv, cwd=cwd, env=env, input=stdin, capture_output=True, text=True)
    if ok and proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{proc.stderr}")
    return proc.stdout


def fast_import(repo: Path, env: dict[str, str], lines: list[str]) -> None:
    sh("git", "fast-import", "--quiet", "--force", cwd=repo, env=env, stdin="\n".join(lines) + "\n")


def commit_block(branch: str, i: int, message: str, changes: list[str], parent: str | None) -> list[str]:
    out = [f"commit refs/heads/{branch}", f"committer Bench <bench@example.com> {1700000000 + i} +0000"]
    out += [f"data {len(message)}", message]
    if parent:
        out.append(f"from {parent}")
    return out + changes


def inline(path: str, data: str) -> list[str]:
    return [f"M 100644 inline {path}", f"data {len(data.encode())}", data]


def new_forge(root: Path, name: str, env: dict[str, str], history: list[str]) -> Path:
    """``history`` (fast-import lines for refs/heads/main), then `git kavi init` signed on top;
    pushed to ``plain`` and ``hooked`` bare repositories."""
    repo = root / name
    sh("git", "init", "-q", "-b", "main", str(repo), cwd=root, env=env)
    fast_import(repo, env, history)
    sh("git", "reset", "-q", "--hard", "main", cwd=repo, env=env)
    key = root / f"{name}-key"
    sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key), cwd=root, env=env)
    sh("git", "config", "gpg.format", "ssh", cwd=repo, env=env)
    sh("git", "config", "user.signingkey", f"{key}.pub", cwd=repo, env=env)
    sh(*KAVI, "init", cwd=repo, env=env)
    for remote in ("plain", "hooked"):
        bare = root / f"{name}-{remote}.git"
        sh("git", "init", "-q", "--bare", str(bare), cwd=root, env=env)
        sh("git", "remote", "add", remote, str(bare), cwd=repo, env=env)
    sh(*KAVI, "hooks", "install", "--server", str(root / f"{name}-hooked.git"), cwd=repo, env=env)
    for remote in ("plain", "hooked"):
        sh("git", "push", "-q", remote, "main", cwd=repo, env=env)
    return repo


def timed(repo: Path, env: dict[str, str], *args: str, expect_ok: bool = True) -> float:
    start = time.perf_counter()
    proc = subprocess.run(["git", "push", "-q", *args], cwd=repo, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if (proc.returncode == 0) != expect_ok:
        raise SystemExit(f"git push {' '.join(args)}: unexpected exit {proc.returncode}\n{proc.stderr}")
    return elapsed


def report(label: str, with_hook: list[float], without: list[float]) -> None:
    w, wo = statistics.median(with_hook), statistics.median(without)
    print(f"{label}: without hook {wo * 1000:8.1f} ms, with hook {w * 1000:8.1f} ms, ratio {w / wo:.2f}x")


def part_one(root: Path, env: dict[str, str], files: int, commits: int, rounds: int) -> None:
    changes = [line for i in range(files) for line in inline(f"f{i:05d}.txt", f"{i}\n")]
    repo = new_forge(root, "wide", env, commit_block("main", 0, "wide tree", changes, None))
    results: dict[bool, tuple[list[float], list[float]]] = {False: ([], []), True: ([], [])}
    counter = 1
    for r in range(rounds + 1):  # the first round is a warm-up (caches, page cache)
        for governance in (False, True):
            tip = sh("git", "rev-parse", "main", cwd=repo, env=env).strip()
            if governance:
                attrs = repo / ".gitattributes"
                text = attrs.read_text() if attrs.exists() else ""
                attrs.write_text(text + f"round{r}.txt text\n")
                sh("git", "add", ".gitattributes", cwd=repo, env=env)
                sh("git", "commit", "-q", "-S", "-m", "attributes (signed governance)", cwd=repo, env=env)
                tip = sh("git", "rev-parse", "HEAD", cwd=repo, env=env).strip()
            lines: list[str] = []
            n = commits - 1 if governance else commits
            for i in range(n):
                counter += 1
                change = inline(f"f{counter % files:05d}.txt", f"v{counter}\n")
                lines += commit_block(
                    "main", counter, f"small change {counter}", change, tip if i == 0 else None
                )
            fast_import(repo, env, lines)
            sh("git", "reset", "-q", "--hard", "main", cwd=repo, env=env)
            without = timed(repo, env, "plain", "main")
            with_hook = timed(repo, env, "hooked", "main")
            if r:
                results[governance][0].append(with_hook)
                results[governance][1].append(without)
    print(f"[1] {commits} commits onto {files:,} top-level files (median of {rounds}):")
    report("    a. ordinary (fast lane)             ", *results[False])
    report("    b. first one signed governance (full)", *results[True])


def part_two(root: Path, env: dict[str, str], history: int, rounds: int) -> None:
    lines: list[str] = []
    for i in range(history):
        lines += commit_block("main", i, f"history {i}", inline(f"h/{i % 100}/{i}.txt", f"{i}\n"), None)
    repo = new_forge(root, "deep", env, lines)
    tip = sh("git", "rev-parse", "main", cwd=repo, env=env).strip()
    rewind = sh("git", "rev-parse", "main~1", cwd=repo, env=env).strip()
    plain = root / "deep-plain.git"
    with_hook, without = [], []
    for r in range(rounds + 1):
        w = timed(repo, env, "--force", "hooked", f"{rewind}:refs/heads/main", expect_ok=False)
        wo = timed(repo, env, "--force", "plain", f"{rewind}:refs/heads/main")
        sh("git", "--git-dir", str(plain), "update-ref", "refs/heads/main", tip, cwd=root, env=env)
        if r:
            with_hook.append(w)
            without.append(wo)
    print(f"[2] rejected one-commit rewind on {history:,} commits (median of {rounds}):")
    report("    forced rewind (rejected by the hook)  ", with_hook, without)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--commits", type=int, default=30)
    parser.add_argument("--history", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="kavi-bench-hook-scale-"))
    home = root / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[user]\n\tname = Bench\n\temail = bench@example.com\n")
    # a user's normal setup: bytecode caching on (this sandbox sets PYTHONDONTWRITEBYTECODE,
    # which would make the hook compile its modules from source on every push)
    env = {
        **{
            k: v for k, v in os.environ.items() if not k.startswith("GIT_") and k != "PYTHONDONTWRITEBYTECODE"
        },
        "HOME": str(home),
    }
    try:
        part_one(root, env, args.files, args.commits, args.rounds)
        part_two(root, env, args.history, args.rounds)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
