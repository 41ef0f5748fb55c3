"""Crash injection: run the real ``git kavi`` under an LD_PRELOAD shim that numbers every
state-changing libc call and kills the process (or fails the call with ENOSPC, or stops
the process) at a chosen number; then check that ``doctor --repair`` and the same command
again reach the state an uninterrupted run reaches.

The shim (``crashshim.c``) is compiled at test time with the system's C compiler; without
one the tests that need it are skipped with a message saying so.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from support.forge import git, kavi

SHIM_SOURCE = Path(__file__).with_name("crashshim.c")
_BUILT: dict[str, Path | None] = {}


def build_shim() -> Path | None:
    """Compile the shim once per process; None (and a reason in ``shim_problem``) without gcc."""
    if "shim" in _BUILT:
        return _BUILT["shim"]
    cc = shutil.which("gcc") or shutil.which("cc")
    out: Path | None = None
    if cc:
        target = Path(tempfile.mkdtemp(prefix="kavi-crashshim-")) / "crashshim.so"
        proc = subprocess.run(
            [cc, "-shared", "-fPIC", "-O2", "-o", str(target), str(SHIM_SOURCE), "-ldl"],
            capture_output=True,
            text=True,
            check=False,
        )
        out = target if proc.returncode == 0 else None
        _BUILT["error"] = None if out else Path(proc.stderr[:200] or "compiler failed")  # type: ignore[assignment]
    _BUILT["shim"] = out
    return out


def shim_problem() -> str:
    if not (shutil.which("gcc") or shutil.which("cc")):
        return "no C compiler (gcc/cc) on PATH: the crash-injection shim cannot be built"
    return f"the crash-injection shim did not compile: {_BUILT.get('error')}"


@dataclass
class Run:
    code: int  # the exit status; -9 when killed, -19 when stopped
    stdout: str
    stderr: str
    calls: int
    log: list[str] = field(default_factory=list)

    @property
    def json(self) -> Any:
        return json.loads(self.stdout)


def kavi_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"})
    env.update(extra or {})
    return env


def start_kavi(
    args: list[str],
    *,
    cwd: Path,
    shim: Path,
    mode: str = "count",
    at: int = 0,
    log: Path | None = None,
    git_children: bool = True,
) -> tuple[subprocess.Popen[str], Path]:
    counter = Path(tempfile.mkstemp(prefix="kavi-crash-counter-")[1])
    counter.write_bytes(b"\0" * 8)
    extra = {
        "LD_PRELOAD": str(shim),
        "KAVI_CRASH_COUNTER": str(counter),
        "KAVI_CRASH_MODE": mode,
        "KAVI_CRASH_AT": str(at),
        "KAVI_CRASH_GIT": "1" if git_children else "0",
    }
    if log is not None:
        extra["KAVI_CRASH_LOG"] = str(log)
    proc = subprocess.Popen(
        [sys.executable, "-m", "kavi", *args],
        cwd=cwd,
        env=kavi_env(extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    return proc, counter


def read_counter(counter: Path) -> int:
    try:
        return int.from_bytes(counter.read_bytes()[:8], "little")
    finally:
        counter.unlink(missing_ok=True)


def run_kavi(
    args: list[str], *, cwd: Path, shim: Path, mode: str = "count", at: int = 0, log: bool = False
) -> Run:
    log_path = Path(tempfile.mkstemp(prefix="kavi-crash-log-")[1]) if log else None
    proc, counter = start_kavi(args, cwd=cwd, shim=shim, mode=mode, at=at, log=log_path)
    out, err = proc.communicate(timeout=600)
    lines: list[str] = []
    if log_path is not None:
        lines = log_path.read_text(errors="replace").splitlines()
        log_path.unlink()
    return Run(proc.returncode, out, err, read_counter(counter), lines)


# -- starting states and copies ---------------------------------------------------------------


def copy_forge(template: Path, dest: Path) -> Path:
    """A private copy of ``template/forge`` (its git config pointed at the copy)."""
    shutil.copytree(template / "forge", dest, symlinks=True)
    git("config", "gpg.ssh.allowedSignersFile", str(dest / ".kavi/allowed_signers"), cwd=dest)
    return dest


# -- what a forge looks like, for comparing ends ------------------------------------------------


def ledger_rows(repo: Path, sql: str) -> list[tuple[Any, ...]]:
    if not (repo / ".git/kavi/ledger.db").exists():
        return []
    con = sqlite3.connect(f"file:{repo / '.git/kavi/ledger.db'}?mode=ro", uri=True)
    try:
        return [tuple(r) for r in con.execute(sql)]
    finally:
        con.close()


def main_tree(repo: Path) -> dict[str, Any]:
    """The target branch's tree, with the registry's per-promotion ids left out."""
    out: dict[str, Any] = {}
    listing = git("ls-tree", "-r", "main", cwd=repo).splitlines()
    for line in listing:
        meta, path = line.split("\t", 1)
        if path.endswith("registry.yaml"):
            data = yaml.safe_load(git("show", f"main:{path}", cwd=repo)) or {}
            for entry in (data.get("skills") or {}).values():
                entry.pop("promotion_id", None)
            out[path] = data
        else:
            out[path] = meta.split()[2]
    return out


def state(repo: Path) -> dict[str, Any]:
    """What an interrupted-and-recovered run must agree on with an uninterrupted one."""
    refs = git("for-each-ref", "--format=%(refname)", cwd=repo).splitlines()
    return {
        "proposals": ledger_rows(repo, "SELECT name, status FROM skill_proposals ORDER BY created_at, id"),
        "promotions": ledger_rows(
            repo,
            "SELECT skill_name, version, tag_name, build_id, verification_id FROM promotions "
            "ORDER BY version",
        ),
        "revocations": ledger_rows(repo, "SELECT skill_name, tag_name, promotion_id FROM revocations"),
        "succeeded_builds": ledger_rows(
            repo, "SELECT count(*), max(tree_id) FROM builds WHERE status = 'SUCCEEDED' GROUP BY proposal_id"
        ),
        "latest_verification": ledger_rows(
            repo,
            "SELECT v.status, v.commit_id FROM verifications v ORDER BY v.created_at DESC, v.id LIMIT 1",
        ),
        "unmirrored": (
            ledger_rows(repo, "SELECT count(*) FROM events WHERE mirror_commit IS NULL") or [(0,)]
        )[0][0],
        "refs": sorted(r for r in refs if not r.startswith("refs/heads/skill/")),
        "main": main_tree(repo),
        "head": git("symbolic-ref", "HEAD", cwd=repo),
    }


def before(repo: Path) -> dict[str, Any]:
    """What must survive any interruption untouched: events, tags, and where refs were."""
    return {
        "events": ledger_rows(repo, "SELECT seq, hash FROM events ORDER BY seq"),
        "refs": dict(
            line.split(" ", 1)
            for line in git("for-each-ref", "--format=%(refname) %(objectname)", cwd=repo).splitlines()
        ),
    }


def is_ancestor(repo: Path, old: str, new: str) -> bool:
    proc = subprocess.run(
        ["git", "merge-base", "--is-ancestor", old, new], cwd=repo, capture_output=True, check=False
    )
    return proc.returncode == 0


def problems_after(repo: Path, reference: dict[str, Any], old: dict[str, Any]) -> list[str]:
    """Everything wrong with a forge that should have recovered (empty: recovered)."""
    found: list[str] = []
    doctor = kavi("doctor", "--format", "json", cwd=repo)
    if doctor.code != 0:
        found.append(f"doctor still finds: {[f['problem'] for f in doctor.json.get('findings', [])]}")
    audit = kavi("audit", "--format", "json", cwd=repo)
    if audit.code != 0:
        found.append(f"audit is not clean: {audit.output[-600:]}")
    fsck = subprocess.run(
        ["git", "fsck", "--no-dangling", "--no-progress"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    if fsck.returncode != 0:
        found.append(f"git fsck: {fsck.stdout[-300:]}{fsck.stderr[-300:]}")
    status = git("status", "--porcelain", cwd=repo)
    if status:
        found.append(f"working tree not clean: {status}")
    if (repo / ".git/kavi/journal.json").exists():
        found.append("journal left behind")
    locks = [
        str(p) for p in (repo / ".git").rglob("*.lock") if p.name != "forge.lock" and "objects" not in p.parts
    ]
    if locks:
        found.append(f"lock files left: {locks}")
    now = before(repo)
    if now["events"][: len(old["events"])] != old["events"]:
        found.append("pre-existing ledger events changed or lost")
    for ref, oid in old["refs"].items():
        if ref.startswith("refs/heads/skill/"):
            continue
        new = now["refs"].get(ref)
        if new is None:
            found.append(f"ref {ref} lost")
        elif new != oid and (ref.startswith("refs/tags/") or not is_ancestor(repo, oid, new)):
            found.append(f"ref {ref} rewritten")
    mine = state(repo)
    for key, want in reference.items():
        if mine.get(key) != want:
            found.append(f"{key}: {mine.get(key)!r} != uninterrupted {want!r}")
    return found


@dataclass(frozen=True)
class Scenario:
    name: str
    template: str  # key of the starting states
    args: tuple[str, ...]
    compare: tuple[str, ...]  # which parts of state() must equal the uninterrupted run's
    publish: bool = False  # mirror the ledger before judging (build and verify do not mirror)
    doctor_first: bool = True  # run doctor --repair before the command again (not for init: no forge yet)


@dataclass
class Point:
    at: int
    op: str
    outcome: str  # how the interrupted command ended
    problems: list[str]


def recover_at(
    scenario: Scenario,
    template: Path,
    work: Path,
    *,
    shim: Path,
    at: int,
    mode: str,
    reference: dict[str, Any],
    op: str = "",
    repair: Callable[[Path], list[str]] | None = None,
) -> Point:
    """Interrupt the command at call ``at``, repair, run it again, and judge the end."""
    repo = copy_forge(template, work)
    old = before(repo)
    args = [*scenario.args, "--format", "json"]
    run = run_kavi(args, cwd=repo, shim=shim, mode=mode, at=at)
    problems: list[str] = []
    outcome = {-9: "killed", 0: "completed"}.get(run.code, f"exit {run.code}")
    if mode == "enospc" and run.code not in (-9, 0):
        try:
            code = run.json.get("code", "?")
        except ValueError:
            code = "(no JSON)"
        outcome = f"exit {run.code} {code}"
        if run.code not in (1, 2):
            problems.append(
                f"disk full ended with exit {run.code} ({code}): {run.stdout[-400:]}{run.stderr[-400:]}"
            )
    elif mode == "kill" and run.code not in (-9, 0):
        problems.append(f"exit {run.code} instead of being killed: {run.stderr[-400:]}")
    if scenario.doctor_first:
        problems += (repair or default_repair)(repo)
    again = kavi(*scenario.args, "--format", "json", cwd=repo)
    if again.code != 0:
        problems.append(f"the command again: exit {again.code}: {again.output[-600:]}")
    if scenario.publish:
        synced = kavi("ledger", "sync", "--format", "json", cwd=repo)
        if synced.code != 0:
            problems.append(f"ledger sync: exit {synced.code}: {synced.output[-600:]}")
    problems += problems_after(repo, {k: reference[k] for k in scenario.compare}, old)
    return Point(at, op, outcome, problems)


def default_repair(repo: Path) -> list[str]:
    res = kavi("doctor", "--repair", "--format", "json", cwd=repo)
    if res.code != 0:
        return [f"doctor --repair: exit {res.code}: {res.output[-800:]}"]
    return []


def spread(total: int, count: int, seed: int) -> list[int]:
    """``count`` kill points across 1..total: one random point in each of ``count`` bins."""
    import random

    rng = random.Random(seed)
    if total <= count:
        return list(range(1, total + 1))
    bins = [(1 + i * total // count, (i + 1) * total // count) for i in range(count)]
    return [rng.randint(lo, max(lo, hi)) for lo, hi in bins]
