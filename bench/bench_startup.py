"""CLI start-up: `git kavi --help` (and `--version`) vs. `python -c "import typer"`.

Goal: ratio ≤ 1.3. Also checks that help and version import neither pygit2, httpx
nor pydantic (the lazy-import rule), and prints the median of N runs of each.

    python bench/bench_startup.py [--runs 21]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

HEAVY = ("pygit2", "httpx", "pydantic", "yaml")


def median_seconds(argv: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


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
    base = median_seconds([py, "-c", "import typer"], args.runs)
    help_t = median_seconds([py, "-m", "kavi", "--help"], args.runs)
    version_t = median_seconds([py, "-m", "kavi", "--version"], args.runs)
    print(f"baseline python -c 'import typer' : {base * 1000:7.1f} ms")
    print(f"kavi --help                        : {help_t * 1000:7.1f} ms   ratio {help_t / base:.2f}x")
    print(f"kavi --version                     : {version_t * 1000:7.1f} ms   ratio {version_t / base:.2f}x")
    print("goal: ratio <= 1.3x")
    for argv in (["--help"], ["--version"]):
        loaded = heavy_modules(argv)
        verdict = "none" if not loaded else ", ".join(loaded) + "  <-- should be lazy"
        print(f"heavy modules imported by kavi {' '.join(argv)}: {verdict}")


if __name__ == "__main__":
    main()
