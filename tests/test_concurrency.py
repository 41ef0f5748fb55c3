"""Two Kavi commands at once on one forge: never damage, at worst one clean refusal.

Three pairs, 20 runs each: two promotions (of different skills), a promotion and a build
of the same skill, a promotion and a revocation. Each run forces an interleaving: the
first command is stopped (SIGSTOP, by the crash shim) at one of its numbered
state-changing calls — a different one each run, from before it takes the forge lock to
its last write — then the second command runs (refusing at once, or with ``--wait``
waiting for the first), then the first continues. Afterwards each command either did
its whole job or refused cleanly, and the forge is consistent: ``doctor`` finds nothing,
``audit`` is clean, ``git fsck`` is clean, every TRUSTED skill's merge is on the target
branch with its tag and notes, and the working tree is clean.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from support import crash
from support.forge import WRITE_NOTE_DIR, git, kavi, kavi_json, propose_write_note, use_signing_key

pytestmark = pytest.mark.slow

RUNS = 20
CLEAN_REFUSALS = {"KAVI-BUSY", "KAVI-STATE"}


def _renamed_skill(dest: Path, name: str) -> Path:
    """The write_note example as another skill (same code, another name)."""
    camel = "".join(part.title() for part in name.split("_"))
    for src in WRITE_NOTE_DIR.rglob("*.py"):
        rel = str(src.relative_to(WRITE_NOTE_DIR)).replace("write_note", name)
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(src.read_text().replace("write_note", name).replace("WriteNote", camel))
    return dest


@pytest.fixture(scope="session")
def trio(verified_template: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """write_note TRUSTED; write_memo and write_todo VERIFIED."""
    from conftest import isolation

    root, _ = verified_template
    base = tmp_path_factory.mktemp("trio")
    with isolation(base / "env"):
        use_signing_key(root / "keys" / "id_ed25519")
        repo = crash.copy_forge(root, base / "forge")
        kavi_json("promote-skill", "write_note", "--yes", cwd=repo)
        for name in ("write_memo", "write_todo"):
            pid = propose_write_note(repo, name)
            src = _renamed_skill(base / f"src-{name}", name)
            kavi_json("build-skill", pid, "--backend", "files", "--from", str(src), cwd=repo)
            assert kavi_json("verify-skill", pid, cwd=repo)["status"] == "PASSED"
    shutil.copytree(root / "keys", base / "keys")
    return base


PAIRS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "two-promotions": (("promote-skill", "write_memo", "--yes"), ("promote-skill", "write_todo", "--yes")),
    "promote-and-build": (
        ("promote-skill", "write_memo", "--yes"),
        ("build-skill", "write_memo", "--backend", "files", "--from", "{memo_src}"),
    ),
    "promote-and-revoke": (
        ("promote-skill", "write_memo", "--yes"),
        ("revoke-skill", "write_note", "--reason", "concurrency test", "--yes"),
    ),
}
_COUNTS: dict[tuple[str, int], int] = {}


def _stopped_or_gone(pid: int, deadline: float) -> bool:
    while time.monotonic() < deadline:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return True
        if fields[0] in ("T", "t", "Z"):
            return True
        time.sleep(0.01)
    return False


def _args(args: tuple[str, ...], work: Path) -> list[str]:
    return [a.replace("{memo_src}", str(work / "src-write_memo")) for a in args]


def _outcome(code: int, out: str) -> tuple[str, str]:
    import json

    if code == 0:
        return "ok", ""
    try:
        data = json.loads(out)
    except ValueError:
        return "broken", out[-400:]
    return ("refused" if code == 1 and data.get("code") in CLEAN_REFUSALS else "broken"), str(data)


def _consistent(repo: Path, *, audit_too: bool = True) -> list[str]:
    problems = []
    # the starting forge holds events no promotion mirrored yet: publish them, then judge
    synced = kavi("ledger", "sync", "--format", "json", cwd=repo)
    if synced.code != 0:
        problems.append("ledger sync: " + synced.output[-400:])
    doctor = kavi("doctor", "--format", "json", cwd=repo)
    if doctor.code != 0:
        problems.append(f"doctor: {[f['problem'] for f in doctor.json['findings']]}")
    if audit_too:
        audit = kavi("audit", "--format", "json", cwd=repo)
        if audit.code != 0:
            problems.append("audit not clean: " + audit.output[-500:])
    fsck = crash.subprocess.run(["git", "fsck", "--no-dangling"], cwd=repo, capture_output=True, text=True)
    if fsck.returncode != 0:
        problems.append("fsck: " + fsck.stdout + fsck.stderr)
    if git("status", "--porcelain", cwd=repo):
        problems.append("working tree not clean: " + git("status", "--porcelain", cwd=repo))
    if (repo / ".git/kavi/journal.json").exists():
        problems.append("a journal is left")
    main = git("rev-parse", "main", cwd=repo)
    for skill, tag, merge in crash.ledger_rows(
        repo,
        "SELECT p.skill_name, p.tag_name, p.merge_commit FROM promotions p "
        "JOIN skill_proposals s ON s.id = p.proposal_id WHERE s.status = 'TRUSTED'",
    ):
        if not crash.is_ancestor(repo, merge, main):
            problems.append(f"{skill} is TRUSTED but its merge {merge[:12]} is not on main")
        if git("rev-parse", f"{tag}^{{commit}}", cwd=repo, check=False) != merge:
            problems.append(f"tag {tag} does not point at the merge")
        if not (repo / f"skills/{skill}.py").exists():
            problems.append(f"skills/{skill}.py missing from the checkout")
    return problems


def _status(repo: Path, name: str) -> str:
    rows = crash.ledger_rows(
        repo, f"SELECT status FROM skill_proposals WHERE name = '{name}' ORDER BY created_at"
    )
    return str(rows[-1][0])


def _expected(pair: str, repo: Path, outcomes: dict[str, str]) -> list[str]:
    """Each command's outcome is visible in the ledger exactly as it reported it."""
    problems = []
    first, second = outcomes["first"], outcomes["second"]
    if pair == "two-promotions":
        for skill, got in (("write_memo", first), ("write_todo", second)):
            want = "TRUSTED" if got == "ok" else "VERIFIED"
            if _status(repo, skill) != want:
                problems.append(f"{skill} is {_status(repo, skill)} though its promotion said {got}")
    elif pair == "promote-and-build":
        status = _status(repo, "write_memo")
        if first == "ok" and second == "ok":
            problems.append("a promotion and a build of the same skill cannot both succeed")
        if first == "ok" and status != "TRUSTED":
            problems.append(f"promoted, but write_memo is {status}")
        if second == "ok" and status != "BUILT":
            problems.append(f"rebuilt, but write_memo is {status}")
    else:
        if (first == "ok") != (_status(repo, "write_memo") == "TRUSTED"):
            problems.append(f"write_memo is {_status(repo, 'write_memo')} though its promotion said {first}")
        if (second == "ok") != (_status(repo, "write_note") == "REVOKED"):
            problems.append(
                f"write_note is {_status(repo, 'write_note')} though its revocation said {second}"
            )
    return problems


@pytest.mark.parametrize("run", range(RUNS))
@pytest.mark.parametrize("pair", list(PAIRS))
def test_two_commands_at_once(pair: str, run: int, trio: Path, tmp_path: Path) -> None:
    shim = crash.build_shim()
    if shim is None:
        pytest.skip(crash.shim_problem())
    use_signing_key(trio / "keys" / "id_ed25519")
    a_args, b_args = PAIRS[pair]
    if run % 4 >= 2:  # half the runs the other command goes first
        a_args, b_args = b_args, a_args
    wait = run % 2 == 1  # half the runs the second one waits for the first
    work = tmp_path
    shutil.copytree(trio / "src-write_memo", work / "src-write_memo")
    repo = crash.copy_forge(trio, work / "forge")
    key = (pair, run % 4 >= 2)
    if key not in _COUNTS:
        probe = crash.copy_forge(trio, work / "probe")
        counted = crash.run_kavi([*_args(a_args, work), "--format", "json"], cwd=probe, shim=shim)
        assert counted.code == 0, counted.stderr
        _COUNTS[key] = counted.calls
    calls = _COUNTS[key]
    stop_at = 1 + (run * 7919) % calls  # a different point each run, spread over the whole command
    proc, counter = crash.start_kavi(
        [*_args(a_args, work), "--format", "json"], cwd=repo, shim=shim, mode="stop", at=stop_at
    )
    try:
        assert _stopped_or_gone(proc.pid, time.monotonic() + 120), (
            "the first command neither stopped nor ended"
        )
        b_cmd = [*_args(b_args, work), *(["--wait", "60"] if wait else []), "--format", "json"]
        b_proc = crash.subprocess.Popen(
            [crash.sys.executable, "-m", "kavi", *b_cmd],
            cwd=repo,
            env=crash.kavi_env(),
            stdout=crash.subprocess.PIPE,
            stderr=crash.subprocess.PIPE,
            stdin=crash.subprocess.DEVNULL,
            text=True,
        )
        if wait:
            time.sleep(0.5)  # let it find the forge busy and start waiting
        else:
            b_proc.wait(timeout=120)
        os.kill(proc.pid, signal.SIGCONT)
        a_out, a_err = proc.communicate(timeout=300)
        b_out, b_err = b_proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
            proc.kill()
        crash.read_counter(counter)
    a_kind, a_why = _outcome(proc.returncode, a_out)
    b_kind, b_why = _outcome(b_proc.returncode, b_out)
    problems = []
    if "broken" in (a_kind, b_kind):
        problems.append(f"first: {a_kind} {a_why} {a_err[-300:]} | second: {b_kind} {b_why} {b_err[-300:]}")
    swapped = run % 4 >= 2
    outcomes: dict[str, Any] = {
        "first": b_kind if swapped else a_kind,
        "second": a_kind if swapped else b_kind,
    }
    # every signature is checked (audit) in a quarter of the runs and wherever anything looks off
    problems += _expected(pair, repo, outcomes)
    problems += _consistent(repo, audit_too=bool(problems) or run % 4 == 0)
    assert not problems, f"{pair} run {run} (stopped at call {stop_at}/{calls}, wait={wait}): {problems}"
