"""verify-skill wall time vs. its slowest single gate run alone.

On a forge with a built write_note, this measures (in one run):

* the first and the second verification (the second reuses mypy's cache, which lives
  under the git dir, so it is faster);
* each external gate run alone on the same two files with the same arguments (ruff,
  mypy with its warm cache, pytest confined by the OS boundary with the runtime guard);
* verification with the generated tests confined (namespaces, fresh root, limits) and
  without namespaces (``KAVI_TEST_NO_NAMESPACES=1``: a plain process under the guard),
  interleaved: the cost of the boundary.

The figure: median verify wall time / median time of the slowest single gate.
Goal: ≤ 1.3 (the static gates run concurrently, pytest starts as soon as the policy
scan and the invariants have passed).

    python bench/bench_verify.py [--rounds 5]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="kavi-bench-verify-"))
    home = root / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[user]\n\tname = Bench\n\temail = bench@example.com\n")
    os.environ["HOME"] = str(home)
    for key in [k for k in os.environ if k.startswith("GIT_")]:
        del os.environ[key]
    try:
        repo = root / "forge"
        repo.mkdir()
        run = lambda *a: subprocess.run(a, cwd=repo, check=True, capture_output=True, text=True).stdout  # noqa: E731
        run("git", "init", "-q", "-b", "main", ".")
        (repo / "README.md").write_text("bench\n")
        run("git", "add", "-A")
        run("git", "commit", "-q", "-m", "init")
        kavi = [sys.executable, "-m", "kavi"]
        run(*kavi, "init")
        pid = json.loads(
            run(
                *kavi,
                "propose-skill",
                "--name",
                "write_note",
                "--desc",
                "bench",
                "--side-effect",
                "FILE_WRITE",
                "--io-schema-json",
                json.dumps(SCHEMA),
                "--format",
                "json",
            )
        )["proposal_id"]
        run(*kavi, "build-skill", pid, "--backend", "files", "--from", str(EXAMPLE))
        os.chdir(repo)
        from kavi.backends.env import scrubbed_env
        from kavi.forge import gates
        from kavi.forge.context import Forge
        from kavi.forge.verify import verify_skill
        from kavi.policy.guard import GuardPolicy

        def verify_once() -> float:
            forge = Forge.open(repo)
            start = time.perf_counter()
            outcome = verify_skill(forge, pid)
            elapsed = time.perf_counter() - start
            forge.close()
            if outcome.verification.status.value != "PASSED":
                raise SystemExit(f"verification failed: {outcome.verification.gates}")
            return elapsed

        first = verify_once()
        second = verify_once()
        verify_times = [second]
        plain_times = []
        for _ in range(args.rounds - 1):
            verify_times.append(verify_once())
            os.environ["KAVI_TEST_NO_NAMESPACES"] = "1"
            plain_times.append(verify_once())
            del os.environ["KAVI_TEST_NO_NAMESPACES"]

        forge = Forge.open(repo)
        policy = forge.policy
        cache = forge.kavi_dir / "mypy-cache"
        box = root / "alone"
        work, tmp, home2 = box / "work", box / "tmp", box / "home"
        for d in (work, tmp, home2):
            d.mkdir(parents=True)
        for rel in ("skills/write_note.py", "tests/test_skill_write_note.py"):
            (work / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(EXAMPLE / rel, work / rel)
        env = scrubbed_env(os.environ, home=home2, tmp=tmp)
        test_env = {**env, "KAVI_GUARD": GuardPolicy(write_roots=(work.resolve(), tmp.resolve())).to_json()}
        test_box = gates.TestBox(work=work.resolve(), tmp=tmp.resolve(), home=home2.resolve(), confine=True)
        alone: dict[str, list[float]] = {"ruff": [], "mypy": [], "pytest": []}
        for _ in range(args.rounds):
            for name, fn in (
                (
                    "ruff",
                    lambda: gates.ruff_gate(
                        work, ["skills/write_note.py", "tests/test_skill_write_note.py"], policy, env
                    ),
                ),
                ("mypy", lambda: gates.mypy_gate(work, "skills/write_note.py", policy, env, cache)),
                (
                    "pytest",
                    lambda: gates.pytest_gate(
                        work, "tests/test_skill_write_note.py", policy, test_env, test_box
                    ),
                ),
            ):
                start = time.perf_counter()
                result = fn()
                alone[name].append(time.perf_counter() - start)
                if not result.ok:
                    raise SystemExit(f"{name} failed alone: {result.findings}")
        medians = {k: statistics.median(v) for k, v in alone.items()}
        slowest = max(medians, key=lambda k: medians[k])
        v = statistics.median(verify_times)
        print(f"first verification (cold mypy cache) : {first * 1000:7.0f} ms")
        print(f"second verification (warm cache)     : {second * 1000:7.0f} ms")
        for name, t in medians.items():
            print(f"gate alone: {name:<7}                  : {t * 1000:7.0f} ms")
        print(f"verify (median of {args.rounds})                : {v * 1000:7.0f} ms")
        if plain_times:
            p = statistics.median(plain_times)
            print(f"verify without namespaces (median)   : {p * 1000:7.0f} ms   (boundary: {v / p:.2f}x)")
        print(f"ratio verify / slowest gate ({slowest}) = {v / medians[slowest]:.2f}x   (goal <= 1.3x)")
    finally:
        os.chdir(tempfile.gettempdir())
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
