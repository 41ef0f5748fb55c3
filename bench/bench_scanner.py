"""Throughput of the policy scanner against bandit, on this machine's standard library.

Usage::

    .venv/bin/python bench/bench_scanner.py [--limit N] [--no-bandit]

Collects every ``*.py`` file of the standard library (``sysconfig`` "stdlib" path,
without ``site-packages``), scans them with :func:`kavi.policy.scanner.scan_paths`
under the default :class:`ScannerPolicy`, then runs ``python -m bandit -r -q -f json``
(the venv's bandit) on the same files in the same run, and prints lines per second
for both and the ratio (goal: the scanner at least 5x bandit). Wall-clock and CPU
time are both reported; CPU time is the fairer figure on a shared, busy machine.
Files that fail to parse are part of the set (both tools must cope with them).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections import Counter
from pathlib import Path

from kavi.policy.model import ScannerPolicy
from kavi.policy.scanner import scan_paths

GOAL = 5.0


def stdlib_files(limit: int | None) -> list[Path]:
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in root.rglob("*.py") if "site-packages" not in p.parts and p.is_file())
    return files[:limit] if limit else files


def count_lines(files: list[Path]) -> int:
    return sum(p.read_bytes().count(b"\n") for p in files)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_scanner(files: list[Path]) -> tuple[float, float, Counter[str]]:
    policy = ScannerPolicy()
    scan_paths(files[:20], policy)  # warm caches and imports outside the timing
    wall, cpu = time.perf_counter(), time.process_time()
    findings = scan_paths(files, policy)
    return time.perf_counter() - wall, time.process_time() - cpu, Counter(f.rule for f in findings)


def time_bandit(files: list[Path]) -> tuple[float, float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bandit.json"
        cmd = [sys.executable, "-m", "bandit", "-r", "-q", "-f", "json", "-o", str(out), *map(str, files)]
        wall, cpu = time.perf_counter(), children_cpu()
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        elapsed_wall, elapsed_cpu = time.perf_counter() - wall, children_cpu() - cpu
        if proc.returncode not in (0, 1) or not out.exists():
            raise SystemExit(f"bandit failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
        return elapsed_wall, elapsed_cpu, out.read_text().count('"test_id"')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="scan only the first N files")
    parser.add_argument("--no-bandit", action="store_true", help="time the scanner only")
    args = parser.parse_args(argv)

    files = stdlib_files(args.limit)
    lines = count_lines(files)
    print(f"corpus: {len(files)} files, {lines:,} lines from {sysconfig.get_paths()['stdlib']}")

    s_wall, s_cpu, rules = time_scanner(files)
    print(
        f"kavi scanner: {s_wall:7.2f} s wall {lines / s_wall:>10,.0f} lines/s | "
        f"{s_cpu:7.2f} s cpu {lines / s_cpu:>10,.0f} lines/s"
    )
    print(f"              findings by rule: {dict(sorted(rules.items()))}")
    if args.no_bandit:
        return 0

    b_wall, b_cpu, issues = time_bandit(files)
    print(
        f"bandit:       {b_wall:7.2f} s wall {lines / b_wall:>10,.0f} lines/s | "
        f"{b_cpu:7.2f} s cpu {lines / b_cpu:>10,.0f} lines/s ({issues} issues)"
    )
    ratio_wall, ratio_cpu = b_wall / s_wall, b_cpu / s_cpu
    verdict = "OK" if ratio_cpu >= GOAL else "BELOW GOAL"  # CPU time: robust on a busy machine
    print(
        f"ratio (scanner/bandit throughput): {ratio_wall:.1f}x wall, {ratio_cpu:.1f}x cpu "
        f"(goal >= {GOAL:.0f}x) {verdict}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
