"""CLI start-up: `git kavi --help` (and `--version`) vs. `python -c "import typer"`.

Goal: ratio ≤ 1.3. Also checks that help and version import neither pygit2, httpx
nor pydantic (the lazy-import rule), and prints the median of N runs of each.

    python bench/bench_startup.py [--runs 21]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HEAVY = ("pygit2", "httpx", "pydantic", "yaml")


# Bytecode is written, as in any installation: with PYTHONDONTWRITEBYTECODE set (some CI
# images set it) every edited module would be recompiled on each run, and typer's (compiled
# by pip at install time) would not.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def interleaved_medians(commands: dict[str, list[str]], runs: int) -> dict[str, float]:
    """Median wall time of each command after one warm-up run, runs interleaved (a, b, c,
    a, b, c, …) so that load on a shared machine falls on all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    for argv in commands.values():
        subprocess.run(argv, check=True, capture_output=True, env=ENV)
    for _ in range(runs):
        for name, argv in commands.items():
            start = time.perf_counter()
            subprocess.run(argv, check=True, capture_output=True, env=ENV)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def heavy_modules(args: list[str]) -> list[str]:
    probe = (
        "import sys\n"
        "from kavi.cli.main import main\n"
        "try:\n"
        f"    main({args!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print('HEAVY:' + ','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True)
    line = next(x for x in out.stdout.splitlines() if x.startswith("HEAVY:"))
    return [m for m in line[len("HEAVY:") :].split(",") if m]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args()
    py = sys.executable
    script = Path(py).with_name("git-kavi")  # the console script `git kavi` runs
    entry = [str(script)] if script.exists() else [py, "-m", "kavi"]
    medians = interleaved_medians(
        {
            "baseline python -c 'import typer'": [py, "-c", "import typer"],
            "git-kavi --help": [*entry, "--help"],
            "git-kavi --version": [*entry, "--version"],
            "git kavi -h (through git)": ["git", "kavi", "-h"],
        },
        args.runs,
    )
    base = next(iter(medians.values()))
    for name, seconds in medians.items():
        ratio = "" if seconds is base else f"   ratio {seconds / base:.2f}x"
        print(f"{name:<36}: {seconds * 1000:7.1f} ms{ratio}")
    print("goal: ratio <= 1.3x")
    for argv in (["--help"], ["--version"]):
        loaded = heavy_modules(argv)
        verdict = "none" if not loaded else ", ".join(loaded) + "  <-- should be lazy"
        print(f"heavy modules imported by kavi {' '.join(argv)}: {verdict}")


if __name__ == "__main__":
    main()
