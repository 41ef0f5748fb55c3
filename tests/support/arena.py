"""The adversarial build harness: a forge, a proposal, a fake agent, and every check.

``Arena`` runs the real CLI against a misbehaving fake ``claude``
(:mod:`support.evil_agent`) and turns every broken guarantee into one line of a
verdict: the build's outcome and named reasons, the main repository (config, hooks,
refs, index, working tree, objects), the ledger, the vault, secrets anywhere Kavi
wrote, and leftovers (sandboxes, worktrees, branches, processes). Used by
``test_build_adversarial`` and the jail reviews.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from support import evil_agent
from support.evidence import Evidence
from support.forge import git, git_state, kavi, make_forge, propose_write_note

SECRET = "sentinel-kavi-secret-7f3a9c"
CREDENTIAL = "sentinel-anthropic-key-51d2e8"
DOTENV_SECRET = "sentinel-dotenv-password-93be41"
SENTINELS = (SECRET, CREDENTIAL)


# ---------------------------------------------------------------------------------------
# the arena: a forge, a proposal, a fake agent, and everything we check afterwards
# ---------------------------------------------------------------------------------------


@dataclass
class Outcome:
    code: int | None
    stdout: str
    stderr: str
    duration: float

    @property
    def json(self) -> dict[str, Any]:
        try:
            data = json.loads(self.stdout)
        except json.JSONDecodeError:
            return {}
        return data if isinstance(data, dict) else {}

    @property
    def found(self) -> set[tuple[str, str]]:
        return {(v["path"], v["rule"]) for v in self.json.get("violations", [])}


def find_paths(root: Path, *tests: str) -> list[str]:
    """Relative paths under ``root`` matching find(1) ``tests`` (iterative: any depth)."""
    if not root.exists():
        return []
    out = subprocess.run(
        ["find", ".", "-mindepth", "1", *tests, "-printf", "%P\\0"],
        cwd=root,
        capture_output=True,
        check=False,
    ).stdout
    return sorted(os.fsdecode(p) for p in out.split(b"\0") if p)


def tree_files(root: Path) -> dict[str, bytes]:
    return {rel: (root / rel).read_bytes() for rel in find_paths(root, "-type", "f")}


def _dir_facts(path: Path) -> tuple[bool, int, str]:
    st = os.lstat(path)
    return (stat.S_ISLNK(st.st_mode), stat.S_IMODE(st.st_mode), os.path.realpath(path))


def ledger_events(repo: Path) -> list[tuple[int, str, str]]:
    con = sqlite3.connect(repo / ".git" / "kavi" / "ledger.db")
    try:
        return [tuple(r) for r in con.execute("SELECT seq, kind, actor FROM events ORDER BY seq")]
    finally:
        con.close()


def deep_state(repo: Path) -> dict[str, Any]:
    """``git_state`` plus what a same-user agent could change beside config/hooks/refs."""
    gitdir = repo / ".git"
    objects = {rel: hashlib.sha256(data).hexdigest() for rel, data in tree_files(gitdir / "objects").items()}
    listing = [  # every non-directory entry, outside the places Kavi itself writes to
        rel
        for rel in find_paths(gitdir, "!", "-type", "d")
        if not rel.startswith(("objects/", "logs/", "kavi/", "refs/heads/skill/"))
    ]
    return {
        "git": git_state(repo),
        "gitdir_listing": listing,
        "dirs": {
            d: _dir_facts(gitdir / d) if d else _dir_facts(gitdir)
            for d in ("", "hooks", "info", "refs", "refs/heads", "objects")
        },
        "index": git("ls-files", "--stage", cwd=repo),  # staged content, not stat data
        "objects": objects,
        "worktree": {
            rel: hashlib.sha256((repo / rel).read_bytes()).hexdigest()
            for rel in find_paths(repo, "-path", "./.git", "-prune", "-o", "-type", "f")
        },
        "effective_config": git("config", "--list", cwd=repo),
    }


@dataclass
class Arena:
    tmp: Path
    repo: Path
    proposal: str
    monkeypatch: pytest.MonkeyPatch
    evidence: Evidence
    confined: bool
    before: dict[str, Any] = field(default_factory=dict)
    events_before: list[tuple[int, str, str]] = field(default_factory=list)

    # -- set-up ---------------------------------------------------------------------

    def agent(self, attack: str, **ctx: Any) -> None:
        evil_agent.install(
            self.tmp / "bin",
            attack,
            {
                "fence": str(self.tmp),
                "evidence_port": str(self.evidence.port),
                "repo": str(self.repo),
                **{k: str(v) for k, v in ctx.items()},
            },
        )

    def snapshot(self) -> None:
        self.before = deep_state(self.repo)
        self.events_before = ledger_events(self.repo)

    # -- running Kavi ---------------------------------------------------------------

    def build(self, *extra: str, text: bool = False) -> Outcome:
        """The real CLI, in-process (the agent's parent is this process)."""
        self.snapshot()
        fmt = () if text else ("--format", "json")
        start = time.monotonic()
        res = kavi("build-skill", self.proposal, "--backend", "claude", *extra, *fmt, cwd=self.repo)
        return Outcome(res.code, res.stdout, res.stderr, time.monotonic() - start)

    def build_process(self, *extra: str, timeout: float = 60.0) -> Outcome:
        """The real CLI as its own process, started with the secrets in its environment."""
        self.snapshot()
        start = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "kavi", "build-skill", self.proposal, "--backend", "claude",
             *extra, "--format", "json"],
            cwd=self.repo,
            env=dict(os.environ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )  # fmt: skip
        try:
            out, err = proc.communicate(timeout=timeout)
            code: int | None = proc.returncode
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # our own child's process group, by id
            out, err = proc.communicate()
            code = None
        return Outcome(code, out, err, time.monotonic() - start)

    # -- what Kavi must guarantee: every broken guarantee becomes one line ----------------

    def verdict(
        self,
        out: Outcome,
        *expected: tuple[str, str],
        failed: bool = True,
        summary: str | None = None,
        secret_forms: dict[str, str] | None = None,
    ) -> list[str]:
        problems: list[str] = []
        build = out.json
        if failed:
            if out.code != 1 or build.get("status") != "FAILED":
                why = build.get("message") or build.get("summary") or (out.stdout + out.stderr)[-400:]
                problems.append(
                    f"OUTCOME: exit {out.code}, status {build.get('status')!r} (expected a FAILED "
                    f"build, exit 1): {why}"
                )
            hidden = self.confined and self.evidence.get("main_repo") == "hidden"
            for pair in expected:
                if pair in out.found or (hidden and pair[1] == "tripwire"):
                    continue  # confined, the repository the tripwire guards was out of sight
                problems.append(f"REASON: {pair} not among the violations {sorted(out.found)}")
            if summary is not None and summary not in str(build.get("summary")):
                problems.append(f"REASON: summary {build.get('summary')!r} lacks {summary!r}")
        problems += self.ledger_problems(out, failed=failed)
        problems += self.main_problems()
        problems += self.vault_problems()
        problems += self.secret_problems(out, forms=secret_forms)
        problems += self.leftover_problems()
        return problems

    def require(self, out: Outcome, *expected: tuple[str, str], extra: Sequence[str] = (), **kw: Any) -> None:
        problems = list(extra) + self.verdict(out, *expected, **kw)
        assert not problems, "broken guarantees:\n  - " + "\n  - ".join(problems)

    def alive(self) -> list[int]:
        """Daemons the agent started that still run (unconfined runs: pids are the host's;
        confined, the jail's death takes them and tests look for their late reports)."""
        if self.confined:
            return []
        return [pid for pid in self.evidence.all("daemon_pid") if _is_our_agent(int(pid), self.tmp)]

    def ledger_problems(self, out: Outcome, *, failed: bool) -> list[str]:
        problems = []
        show = kavi("show", self.proposal, "--format", "json", cwd=self.repo).json
        status = show["proposal"]["status"]
        if failed and status != "PROPOSED":
            problems.append(f"LEDGER: proposal is {status} after a failed build")
        for b in show["builds"]:
            if b["status"] == "STARTED":
                problems.append(f"LEDGER: build {b['id'][:8]} never finished (no build.finished event)")
        events = ledger_events(self.repo)
        if events[: len(self.events_before)] != self.events_before:
            problems.append("LEDGER: history rewritten")
        new = events[len(self.events_before) :]
        kinds = [k for _seq, k, _actor in new]
        expected = ["artifact.recorded", "build.started", "artifact.recorded", "build.finished"]
        if out.json.get("status") == "SUCCEEDED":
            expected.append("proposal.status_changed")
        if kinds != expected:
            problems.append(f"LEDGER: events written during the build {kinds}, expected {expected}")
        return problems

    def main_problems(self) -> list[str]:
        after = deep_state(self.repo)
        before = self.before
        problems = []
        if after["git"] != before["git"]:
            problems.append("MAIN: " + _diff("config/hooks/refs/HEAD/status", before["git"], after["git"]))
        if after["dirs"] != before["dirs"]:
            problems.append(
                "MAIN: " + _diff(".git dirs (is-symlink, mode, realpath)", before["dirs"], after["dirs"])
            )
        if after["gitdir_listing"] != before["gitdir_listing"]:
            added = sorted(set(after["gitdir_listing"]) - set(before["gitdir_listing"]))
            gone = sorted(set(before["gitdir_listing"]) - set(after["gitdir_listing"]))
            problems.append(f"MAIN: entries under .git added {added[:12]} / removed {gone[:12]}")
        if after["index"] != before["index"]:
            problems.append(
                f"MAIN: the index (staged content) changed: {before['index']!r} -> {after['index']!r}"
            )
        changed = sorted(k for k, v in before["objects"].items() if after["objects"].get(k) != v)
        if changed:
            problems.append(f"MAIN: existing objects rewritten or removed: {changed}")
        recorded = _artifact_paths(self.repo)
        worktree = {
            k: v for k, v in after["worktree"].items() if k in before["worktree"] or k not in recorded
        }
        if worktree != before["worktree"]:
            problems.append(
                "MAIN: "
                + _diff("working tree (incl. ignored files, e.g. the vault)", before["worktree"], worktree)
            )
        if after["effective_config"] != before["effective_config"]:
            problems.append(
                "MAIN: "
                + _diff("effective git config", before["effective_config"], after["effective_config"])
            )
        ran = sorted(p.name for p in self.tmp.glob("pwned*"))
        if ran:  # deep_state ran `git status` in the main repository: planted payloads fired
            problems.append(f"MAIN: a planted payload executed during a plain `git status`: {ran}")
        return problems

    def vault_problems(self) -> list[str]:
        from kavi.artifacts.vault import read_verified
        from kavi.ledger.store import Ledger

        with Ledger.open(self.repo / ".git" / "kavi" / "ledger.db") as ledger:
            bad = [a.path for a in ledger.artifacts() if read_verified(self.repo, a) is None]
        return [f"VAULT: artifacts no longer match their recorded hashes: {bad}"] if bad else []

    def secret_problems(self, out: Outcome, *, forms: dict[str, str] | None = None) -> list[str]:
        """No sentinel (or, with ``forms``, no encoded sentinel) anywhere Kavi wrote."""
        needles = forms or {f"literal {s}": s for s in SENTINELS}
        places: dict[str, str] = {"kavi output": out.stdout + out.stderr}
        for path, data in tree_files(self.repo / "vault_out").items():
            places[f"vault {path}"] = data.decode("utf-8", "replace")
        con = sqlite3.connect(self.repo / ".git" / "kavi" / "ledger.db")
        places["ledger"] = "\n".join(con.iterdump())
        con.close()
        for name, commit in build_commits(self.repo).items():
            places[f"{name} (paths, blobs, link targets)"] = commit_dump(self.repo, commit)
        problems = []
        for label, needle in needles.items():
            hits = [where for where, text in places.items() if needle in text]
            if hits:
                problems.append(f"SECRET: {label} found in {hits}")
        return problems

    def leftover_problems(self) -> list[str]:
        problems = []
        worktrees = git("worktree", "list", "--porcelain", cwd=self.repo)
        if worktrees.count("worktree ") != 1:
            problems.append(f"LEFTOVER: worktrees {worktrees!r}")
        meta = self.repo / ".git" / "worktrees"
        if meta.exists() and any(meta.iterdir()):
            problems.append(f"LEFTOVER: worktree metadata {sorted(p.name for p in meta.iterdir())}")
        left = sorted(p.name for p in (self.tmp / "tmp").iterdir() if p.name.startswith("kavi-build-"))
        if left:
            problems.append(f"LEFTOVER: sandbox directories {left}")
        for name, commit in build_commits(self.repo).items():
            if not git("log", "-1", "--format=%s", commit, cwd=self.repo).startswith("kavi build:"):
                problems.append(f"LEFTOVER: branch {name} without a build commit")
        alive = self.alive()
        if alive:
            problems.append(f"LEFTOVER: agent processes still running after the build: {alive}")
        return problems


def _artifact_paths(repo: Path) -> set[str]:
    con = sqlite3.connect(repo / ".git" / "kavi" / "ledger.db")
    try:
        return {r[0] for r in con.execute("SELECT path FROM artifacts")}
    finally:
        con.close()


def _diff(what: str, before: Any, after: Any) -> str:
    if isinstance(before, dict) and isinstance(after, dict):
        keys = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        detail = {k: (before.get(k), after.get(k)) for k in keys}
        return f"{what} changed: {str(detail)[:1500]}"
    return f"{what} changed:\n--- before\n{str(before)[:700]}\n--- after\n{str(after)[:700]}"


def build_commits(repo: Path) -> dict[str, str]:
    out = git("for-each-ref", "--format=%(refname) %(objectname)", "refs/heads/skill/", cwd=repo)
    return dict(line.split(" ", 1) for line in out.splitlines() if line)


def commit_dump(repo: Path, commit: str) -> str:
    """Every path, mode, blob and symlink target of a commit, plus its message."""
    listing = subprocess.run(
        ["git", "ls-tree", "-r", "-z", "--full-tree", commit], cwd=repo, capture_output=True, check=True
    ).stdout
    parts = [git("log", "-1", "--format=%B", commit, cwd=repo)]
    oids = []
    for entry in listing.split(b"\0"):
        if not entry:
            continue
        meta, path = entry.split(b"\t", 1)
        parts.append(path.decode("utf-8", "surrogateescape"))
        oids.append(meta.split()[2].decode())
    if oids:
        blobs = subprocess.run(
            ["git", "cat-file", "--batch"], cwd=repo, input="\n".join(oids).encode() + b"\n",
            capture_output=True, check=True,
        ).stdout  # fmt: skip
        parts.append(blobs.decode("utf-8", "replace"))
    return "\n".join(parts)


def _is_our_agent(pid: int, tmp: Path) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return state != "Z" and str(tmp / "bin" / "claude").encode() in cmdline


@contextmanager
def open_arena(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, confined: bool) -> Iterator[Arena]:
    """A forge with a proposal, secrets in the environment, and an evidence server.

    ``confined``: ``sandbox.confine: auto`` (the jail); else ``off`` (the tripwire fallback).
    """
    from kavi.confine import jail

    if confined and not jail.available():
        pytest.skip("this machine has no user namespaces: the jail is unavailable")
    repo = make_forge(tmp_path)
    if not confined:
        policy = repo / ".kavi" / "policy.yaml"
        policy.write_text(policy.read_text().replace("confine: auto", "confine: 'off'"))
        git("commit", "-q", "-am", "builds: confine off", cwd=repo)
    monkeypatch.setenv("KAVI_SECRET_TOKEN", SECRET)
    monkeypatch.setenv("ANTHROPIC_API_KEY", CREDENTIAL)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    pid = propose_write_note(repo)
    evidence = Evidence()
    arena = Arena(tmp_path, repo, pid, monkeypatch, evidence, confined=confined)
    try:
        yield arena
    finally:
        for p in arena.alive():  # kill what the agent left running, by pid
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        evidence.close()
        # Leftovers may be too deep for Python's recursive rmtree (pytest's own tmp
        # cleanup included): remove them with rm(1), which walks iteratively.
        doomed = [*(tmp_path / "tmp").glob("kavi-build-*"), repo / ".git" / "info" / "d"]
        doomed += list((tmp_path / "home").glob(".cache/kavi"))
        for path in doomed:
            if os.path.lexists(path):
                subprocess.run(["chmod", "-R", "u+rwx", "--", str(path)], capture_output=True, check=False)
                subprocess.run(["rm", "-rf", "--", str(path)], check=False)


def log_text(arena: Arena, out: Outcome) -> str:
    rel = out.json.get("log_artifact")
    assert rel, out.json
    return (arena.repo / str(rel)).read_text(encoding="utf-8", errors="replace")


def outside_fences(markdown: str) -> str:
    return re.sub(r"^```.*?^```", "", markdown, flags=re.S | re.M)


def outside_code(line: str) -> str:
    """``line`` without its code spans (a run of n backticks up to the next run of n)."""
    return re.sub(r"(`+)(?!`).*?(?<!`)\1(?!`)", "", line)
