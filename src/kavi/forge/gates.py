"""The verify gates, each a function returning a :class:`GateResult`.

External tools run as subprocesses of this interpreter (``python -m ruff|mypy|pytest``),
with the repository's own tool configuration ignored (``ruff --isolated``, an empty mypy
config, ``pytest -c <empty> --noconftest``): a repository cannot relax a gate. Each
finding is one line starting ``file:line``.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from kavi.confine.proc import run_bounded
from kavi.ledger.models import GateResult
from kavi.policy.model import Policy

GATE_ORDER = ("scope", "policy", "invariants", "ruff", "mypy", "pytest")


def tool_version(dist: str) -> str:
    try:
        return f"{dist} {metadata.version(dist)}"
    except metadata.PackageNotFoundError:
        return f"{dist} (not installed)"


def timed(fn: Callable[[], GateResult]) -> GateResult:
    start = time.monotonic()
    result = fn()
    return result.model_copy(update={"duration_s": round(time.monotonic() - start, 3)})


def _python_tool(module: str) -> list[str]:
    return [sys.executable, "-m", module]


def ruff_gate(root: Path, files: Sequence[str], policy: Policy, env: dict[str, str]) -> GateResult:
    v = policy.verify
    argv = [
        *_python_tool("ruff"),
        "check",
        "--isolated",
        "--no-cache",
        "--output-format=json",
        "--target-version=py311",
        f"--line-length={v.line_length}",
        f"--select={','.join(v.ruff_select)}",
        *([f"--ignore={','.join(v.ruff_ignore)}"] if v.ruff_ignore else []),
        *files,
    ]
    proc = run_bounded(argv, cwd=root, env=env, timeout=v.tool_timeout_seconds)
    version = tool_version("ruff")
    if proc.timed_out:
        return GateResult(
            ok=False, findings=[f"ruff timed out after {v.tool_timeout_seconds:g}s"], tool_version=version
        )
    try:
        items = json.loads(proc.stdout)  # a finished ruff always prints its report, "[]" included
        if not isinstance(items, list):
            raise ValueError("not a list")
    except ValueError:
        return GateResult(
            ok=False,
            findings=[f"ruff failed (exit {proc.returncode}): {proc.stderr.strip()[:500]}"],
            tool_version=version,
        )
    findings = []
    for item in items:
        loc = item.get("location") or {}
        rel = Path(str(item.get("filename", ""))).resolve()
        try:
            name = rel.relative_to(root.resolve()).as_posix()
        except ValueError:
            name = rel.as_posix()
        findings.append(f"{name}:{loc.get('row', 0)}: {item.get('code')} {item.get('message')}")
    ok = proc.returncode == 0 and not findings
    if proc.returncode not in (0, 1) and not findings:
        findings.append(f"ruff failed (exit {proc.returncode}): {proc.stderr.strip()[:500]}")
    return GateResult(ok=ok, findings=sorted(findings), tool_version=version)


_PYTEST_PASSED = re.compile(r"\b\d+ passed\b")
_MYPY_LINE = re.compile(r"^(?P<file>[^:\n]+\.py):(?P<line>\d+):(?:\d+:)? (?P<kind>error|note): (?P<msg>.*)$")


def mypy_gate(
    root: Path, skill_file: str, policy: Policy, env: dict[str, str], cache_dir: Path
) -> GateResult:
    v = policy.verify
    empty_config = root.parent / "mypy.ini"
    empty_config.write_text("[mypy]\n")
    argv = [
        *_python_tool("mypy"),
        *(["--strict"] if v.mypy_strict else []),
        "--config-file",
        str(empty_config),
        "--cache-dir",
        str(cache_dir),
        "--show-column-numbers",
        "--no-color-output",
        "--hide-error-context",
        "--python-executable",
        sys.executable,
        skill_file,
    ]
    proc = run_bounded(argv, cwd=root, env=env, timeout=v.tool_timeout_seconds)
    version = tool_version("mypy")
    if proc.timed_out:
        return GateResult(
            ok=False, findings=[f"mypy timed out after {v.tool_timeout_seconds:g}s"], tool_version=version
        )
    findings = []
    for line in (proc.stdout + proc.stderr).splitlines():
        m = _MYPY_LINE.match(line.strip())
        if m and m.group("kind") == "error":
            findings.append(f"{m.group('file')}:{m.group('line')}: {m.group('msg')}")
    # success is what mypy says, not only its exit status (a process reaped elsewhere reads as 0)
    succeeded = proc.returncode == 0 and "Success: no issues found" in proc.stdout
    if not succeeded and not findings:
        findings.append(f"mypy failed (exit {proc.returncode}): {(proc.stdout + proc.stderr).strip()[:500]}")
    return GateResult(ok=succeeded and not findings, findings=findings, tool_version=version)


_PYTEST_TB_LINE = re.compile(r"^(?P<file>[^\s:]+\.py):(?P<line>\d+): (?P<msg>.+)$")
_PYTEST_SUMMARY = re.compile(r"^(FAILED|ERROR) (?P<rest>.+)$")


@dataclass(frozen=True)
class TestBox:
    """Where a generated test runs: its files (read-only), a scratch directory and a home
    (private, of a fixed size), and — confined — what must stay hidden around them."""

    work: Path
    tmp: Path
    home: Path
    confine: bool
    hidden: tuple[Path, ...] = ()

    def view(self, ini: Path, tmp_mb: int) -> dict[str, Any] | None:
        from kavi.confine.views import allowlist_view

        if not self.confine:
            return None
        return allowlist_view(
            read_roots=(self.work, ini),
            private=[(self.tmp, tmp_mb), (self.home, 16)],
            hidden=self.hidden,
            cwd=self.work,
        )


def pytest_gate(root: Path, test_file: str, policy: Policy, env: dict[str, str], box: TestBox) -> GateResult:
    from kavi.confine.program import run_program

    v = policy.verify
    tmp = box.tmp
    empty_ini = root.parent / "pytest.ini"
    empty_ini.write_text("[pytest]\n")
    argv = [
        *_python_tool("pytest"),
        "-p",
        "kavi.policy.pytest_guard",
        "-p",
        "no:cacheprovider",
        "--noconftest",
        "-c",
        str(empty_ini),
        "--rootdir",
        str(root),
        "--basetemp",
        str(tmp / "pytest"),
        "-q",
        "--tb=line",
        "-rfE",
        "--color=no",
        test_file,
    ]
    ran = run_program(
        argv,
        cwd=root,
        env={**env, "COLUMNS": "240"},
        timeout=v.pytest_timeout_seconds,
        limits=v.limits.model_dump(),
        view=box.view(empty_ini, v.limits.tmp_mb),
        spec_file=root.parent / "jail.json",
    )
    proc = ran.proc
    version = tool_version("pytest")
    if ran.cannot_confine:
        return GateResult(
            ok=False,
            findings=[f"{test_file}:1: the tests could not be confined: {ran.cannot_confine}"],
            tool_version=version,
        )
    if proc.timed_out:
        return GateResult(
            ok=False,
            findings=[f"{test_file}:1: pytest timed out after {v.pytest_timeout_seconds:g}s (killed)"],
            tool_version=version,
        )
    findings: list[str] = []
    if ran.limit is not None:
        findings.append(f"{test_file}:1: {limit_finding(ran.limit, policy)}")
    if proc.returncode != 0 and "MemoryError" in proc.stdout + proc.stderr:
        findings.append(f"{test_file}:1: {limit_finding('memory_mb', policy)}")
    for raw in (proc.stdout + "\n" + proc.stderr).splitlines():
        line = raw.strip()
        if line.startswith("KAVI-GUARD:"):
            findings.append(f"{test_file}:1: runtime guard refused: {line[len('KAVI-GUARD:') :].strip()}")
            continue
        m = _PYTEST_TB_LINE.match(line)
        if m and not line.startswith(("FAILED", "ERROR")):
            where = f"{m.group('file')}:{m.group('line')}"
            msg = m.group("msg")
            if "GuardViolation" in msg:
                # the guard raised inside library code: report it against the test file
                detail = msg.split("GuardViolation:", 1)[-1].strip()
                findings.append(f"{test_file}:1: runtime guard refused: {detail} (raised at {where})")
            elif m.group("file") == test_file:
                findings.append(f"{where}: {msg}")
            else:
                findings.append(f"{test_file}:1: {msg} (raised at {where})")
            continue
        s = _PYTEST_SUMMARY.match(line)
        if s:
            findings.append(f"{test_file}:1: {s.group(1)} {s.group('rest')}")
    if proc.returncode == 5:
        findings.append(f"{test_file}:1: no tests were collected")
    if proc.returncode == 0 and not findings and not _PYTEST_PASSED.search(proc.stdout):
        findings.append(f"{test_file}:1: pytest reported no passing test (exit 0 without a summary)")
    if proc.returncode != 0 and not findings:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-5:]
        findings.append(f"{test_file}:1: pytest exited {proc.returncode}: {' | '.join(tail)[:500]}")
    return GateResult(
        ok=proc.returncode == 0 and not findings, findings=_dedupe(findings), tool_version=version
    )


def limit_finding(limit: str, policy: Policy) -> str:
    v = policy.verify
    if limit == "wall_seconds":
        setting = f"verify.pytest_timeout_seconds = {v.pytest_timeout_seconds:g}"
    else:
        setting = f"verify.limits.{limit} = {getattr(v.limits, limit, '?')}"
    return f"killed: {limit} limit exceeded ({setting}); the whole process tree was killed"


def _dedupe(items: list[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for item in items:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out
