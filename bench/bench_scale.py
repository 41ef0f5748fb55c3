"""A forge of 1,000 trusted skills and 100,000 ledger events against one of 1 skill and 100 events.

Both forges are built in the same run (``scale_forge.py``: Kavi's own promote and run
recorder, in-process signatures, a few minutes for the big one), mirrored, and served
from bare repositories with Kavi's pre-receive hook. Then, on each forge, the median of
``--rounds`` timed runs (after a warm-up round) of:

* ``git kavi run-skill skill_0000`` (goal ≤ 1.2× the small forge),
* ``git kavi audit skill_0000`` (≤ 1.5×),
* ``git kavi list-skills`` (≤ 2×),
* the pre-receive hook's own time in a ``git push`` of an ordinary commit to the hooked
  server (≤ 1.2×; taken from git's trace2 events — the whole push is printed too, most of
  it git's own work, which grows with the number of tags);

and ``git kavi ledger import`` in a fresh clone of the big forge, every signature checked,
in events per second (goal ≥ 2,000 on 2 cores). ``--profile CMD`` runs one command on the
big forge under pyinstrument instead (e.g. ``--profile "audit skill_0000"``).

    python bench/bench_scale.py [--skills 1000] [--events 100000] [--rounds 5] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

KAVI = [sys.executable, "-m", "kavi"]
GOALS = {
    "run-skill": 1.2,
    "audit <skill>": 1.5,
    "list-skills": 2.0,
    "hook, ordinary push": 1.2,
    "git push (whole, for reference)": 0,  # no goal: most of it is git's own work
}


def sh(*argv: str, cwd: Path, env: dict[str, str], ok: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    if ok and proc.returncode != 0:
        raise SystemExit(f"{shlex.join(argv)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    sh(*argv, cwd=cwd, env=env)
    return time.perf_counter() - start


def serve(root: Path, repo: Path, env: dict[str, str]) -> Path:
    """A bare copy of ``repo`` with Kavi's hook, and ``repo``'s origin pointing at it."""
    server = root / f"{repo.name}.git"
    sh("git", "clone", "-q", "--mirror", str(repo), str(server), cwd=root, env=env)
    sh("git", "remote", "add", "origin", str(server), cwd=repo, env=env)
    sh(*KAVI, "hooks", "install", "--server", str(server), cwd=repo, env=env)
    return server


def measure(repos: dict[str, Path], env: dict[str, str], rounds: int) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, list[float]]] = {name: {k: [] for k in GOALS} for name in repos}
    for r in range(rounds + 1):
        for name, repo in repos.items():
            results = out[name]
            t = {
                "run-skill": timed([*KAVI, "run-skill", "skill_0000", "--json", '{"text": "hi"}'], repo, env),
                "audit <skill>": timed([*KAVI, "audit", "skill_0000"], repo, env),
                "list-skills": timed([*KAVI, "list-skills"], repo, env),
            }
            (repo / "NOTES.md").write_text(f"round {r}\n")
            sh("git", "add", "NOTES.md", cwd=repo, env=env)
            sh("git", "commit", "-q", "-m", f"notes {r}", cwd=repo, env=env)
            trace = repo.parent / f"{name}-push.trace2.json"
            trace.unlink(missing_ok=True)
            start = time.perf_counter()
            sh("git", "push", "-q", "origin", "main", cwd=repo, env={**env, "GIT_TRACE2_EVENT": str(trace)})
            t["git push (whole, for reference)"] = time.perf_counter() - start
            t["hook, ordinary push"] = hook_seconds(trace)
            if r:  # the first round warms caches and the page cache
                for k, v in t.items():
                    results[k].append(v)
    return {name: {k: statistics.median(v) for k, v in res.items()} for name, res in out.items()}


def hook_seconds(trace: Path) -> float:
    """The pre-receive hook's own wall time in a push, from git's trace2 events (what Kavi
    adds to the push; the rest — ref advertisement, pack transfer, connectivity check over
    every ref — is git's, and grows with the number of tags whatever the hook does)."""
    import json

    starts: dict[tuple[str, int], bool] = {}
    for line in trace.read_text().splitlines():
        ev = json.loads(line)
        key = (ev.get("sid", ""), ev.get("child_id", -1))
        if ev.get("event") == "child_start" and ev.get("hook_name") == "pre-receive":
            starts[key] = True
        elif ev.get("event") == "child_exit" and key in starts:
            return float(ev["t_rel"])
    raise SystemExit(f"no pre-receive hook in {trace}")


def import_rate(root: Path, server: Path, env: dict[str, str]) -> tuple[int, float, float]:
    """A fresh clone: (events imported, seconds for ``ledger import``, seconds its first
    command spent verifying the target branch's history from the trust root — every
    promotion's merge, tag and registry; done once per clone, then cached)."""
    import json

    clone = root / "fresh-clone"
    shutil.rmtree(clone, ignore_errors=True)
    sh("git", "clone", "-q", str(server), str(clone), cwd=root, env=env)
    sh(
        "git",
        "fetch",
        "-q",
        "origin",
        "refs/kavi/*:refs/kavi/*",
        "refs/notes/kavi:refs/notes/kavi",
        cwd=clone,
        env=env,
    )
    start = time.perf_counter()
    sh(*KAVI, "trust", "show", "--format", "json", cwd=clone, env=env)
    first_use = time.perf_counter() - start
    start = time.perf_counter()
    proc = sh(*KAVI, "ledger", "import", "--format", "json", cwd=clone, env=env)
    elapsed = time.perf_counter() - start
    return int(json.loads(proc.stdout)["imported"]), elapsed, first_use


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skills", type=int, default=1000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="build the forges here and keep them (reused when present)")
    parser.add_argument("--profile", help="a kavi command to run on the big forge under pyinstrument")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="kavi-bench-scale-"))
    root.mkdir(parents=True, exist_ok=True)
    from scale_forge import build_forge, environment

    env = environment(root)
    os.environ.update({k: v for k, v in env.items() if k in ("HOME", "GIT_CONFIG_NOSYSTEM")})
    for k in [k for k in os.environ if k.startswith(("GIT_", "KAVI_"))]:
        if k != "GIT_CONFIG_NOSYSTEM":
            del os.environ[k]
    try:
        repos: dict[str, Path] = {}
        for name, skills, events in (("small", 1, 100), ("big", args.skills, args.events)):
            repo = root / name
            if not (repo / ".kavi").exists():
                print(f"building the {name} forge ({skills} skills, {events} events)…", flush=True)
                build_forge(root, name, skills, events, log=lambda m: print(m, flush=True))
                serve(root, repo, env)
            repos[name] = repo
        if args.profile:
            argv = [sys.executable, "-m", "pyinstrument", "-m", "kavi", *shlex.split(args.profile)]
            subprocess.run(argv, cwd=repos["big"], env=env, check=False)
            return
        results = measure(repos, env, args.rounds)
        small, big = results["small"], results["big"]
        print(f"\n{args.skills:,} skills / {args.events:,} events against 1 skill / 100 events ", end="")
        print(f"(median of {args.rounds}):")
        for k, goal in GOALS.items():
            ratio = big[k] / small[k]
            mark = "ok" if ratio <= goal else "OVER"
            if goal == 0:
                print(
                    f"  {k:<22} {small[k] * 1000:8.1f} ms → {big[k] * 1000:8.1f} ms  {ratio:5.2f}x  (git's)"
                )
                continue
            print(
                f"  {k:<22} {small[k] * 1000:8.1f} ms → {big[k] * 1000:8.1f} ms"
                f"  {ratio:5.2f}x  (goal ≤ {goal}x, {mark})"
            )
        count, elapsed, first_use = import_rate(root, root / "big.git", env)
        rate = count / elapsed
        mark = "ok" if rate >= 2000 else "UNDER"
        print(
            f"  fresh clone, first command (`trust show`): the target branch verified from the root "
            f"in {first_use:.1f}s ({args.skills:,} promotions; once per clone)"
        )
        print(f"  ledger import (fresh clone, every signature checked): {count:,} events in {elapsed:.1f}s")
        print(f"    = {rate:,.0f} events/s (goal ≥ 2,000, {mark}) on {os.cpu_count()} cores")
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
