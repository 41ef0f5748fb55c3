"""Kill -9 anywhere: every state-changing call of promote, revoke, sync, build and verify.

An LD_PRELOAD shim (tests/support/crashshim.c, compiled here) numbers every write,
rename, fsync, mkdir, create-open, unlink… the command (and the git it runs) makes, and
SIGKILLs it at a chosen number. After ``doctor --repair`` and the same command again,
the forge must be in the state an uninterrupted run leaves — same ledger outcome, same
target-branch tree, same refs — with ``doctor`` and ``audit`` clean, ``git fsck`` clean,
no journal or lock file left and nothing that existed before lost.

Every run tests a sample of points per command (one random point in each of a few
bins; the seed is printed and can be fixed with CRASH_SEED); the full sweep over
every point runs with ``-m crash_sweep`` (and prints points recovered / total).
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any

import pytest

from support import crash
from support.forge import WRITE_NOTE_DIR, kavi_json, new_repo, use_signing_key

pytestmark = pytest.mark.slow

SCENARIOS = {
    "promote": crash.Scenario(
        "promote",
        "verified",
        ("promote-skill", "write_note", "--yes"),
        ("proposals", "promotions", "revocations", "unmirrored", "refs", "main", "head"),
    ),
    "revoke": crash.Scenario(
        "revoke",
        "promoted",
        ("revoke-skill", "write_note", "--reason", "crash test", "--yes"),
        ("proposals", "promotions", "revocations", "unmirrored", "refs", "main", "head"),
    ),
    "sync": crash.Scenario(
        "sync",
        "promoted",
        ("ledger", "sync"),
        ("proposals", "promotions", "unmirrored", "refs", "main"),
    ),
    "build": crash.Scenario(
        "build",
        "verified",
        ("build-skill", "write_note", "--backend", "files", "--from", str(WRITE_NOTE_DIR)),
        ("proposals", "refs", "main", "head"),
        publish=True,
    ),
    "verify": crash.Scenario(
        "verify",
        "verified",
        ("verify-skill", "write_note"),
        ("proposals", "latest_verification", "refs", "main", "head"),
        publish=True,
    ),
}
SCENARIOS["init"] = crash.Scenario(
    "init", "plain", ("init",), ("proposals", "unmirrored", "refs", "main", "head")
)
SAMPLE = {"promote": 3, "revoke": 2, "sync": 1, "build": 2, "verify": 1, "init": 1}
DISK_FULL_SAMPLE = {"promote": 2, "revoke": 1}


@pytest.fixture(scope="session")
def shim() -> Path:
    found = crash.build_shim()
    if found is None:
        pytest.skip(crash.shim_problem())
    return found


@pytest.fixture(scope="session")
def starting_states(
    verified_template: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """verified: write_note VERIFIED; promoted: write_note TRUSTED, with one run not yet mirrored."""
    from conftest import isolation

    root, _pid = verified_template
    base = tmp_path_factory.mktemp("crash-states")
    states = {"verified": root}
    promoted = base / "promoted"
    promoted.mkdir()
    with isolation(base / "env"):
        use_signing_key(root / "keys" / "id_ed25519")
        repo = crash.copy_forge(root, promoted / "forge")
        kavi_json("promote-skill", "write_note", "--yes", cwd=repo)
        kavi_json(
            "run-skill", "write_note", "--json", '{"path": "a.md", "title": "A", "body": "B"}', cwd=repo
        )
    states["promoted"] = promoted
    plain = base / "plain"
    plain.mkdir()
    with isolation(base / "env-plain"):
        new_repo(plain / "forge")
    states["plain"] = plain
    return states


def _seed() -> int:
    return int(os.environ.get("CRASH_SEED") or random.SystemRandom().randrange(1 << 30))


def _reference(
    scenario: crash.Scenario, template: Path, work: Path, shim: Path
) -> tuple[dict[str, Any], list[str]]:
    repo = crash.copy_forge(template, work)
    run = crash.run_kavi([*scenario.args, "--format", "json"], cwd=repo, shim=shim, log=True)
    assert run.code == 0, run.stderr
    assert run.calls == len(run.log) > 0
    if scenario.publish:
        kavi_json("ledger", "sync", cwd=repo)
    return crash.state(repo), run.log


def sweep(
    name: str,
    points: list[int] | None,
    tmp_path: Path,
    shim: Path,
    states: dict[str, Path],
    mode: str = "kill",
) -> list[crash.Point]:
    scenario = SCENARIOS[name]
    template = states[scenario.template]
    use_signing_key(states["verified"] / "keys" / "id_ed25519")
    reference, log = _reference(scenario, template, tmp_path / "reference", shim)
    chosen = points if points is not None else list(range(1, len(log) + 1))
    results = []
    for at in chosen:
        if at > len(log):
            continue
        op = log[at - 1].split(" ", 2)[2]
        results.append(
            crash.recover_at(
                scenario,
                template,
                tmp_path / f"p{at}",
                shim=shim,
                at=at,
                mode=mode,
                reference=reference,
                op=op,
            )
        )
        shutil.rmtree(tmp_path / f"p{at}", ignore_errors=True)
    return results


def _report(name: str, mode: str, results: list[crash.Point], total: int | None = None) -> str:
    bad = [r for r in results if r.problems]
    lines = [f"{name} ({mode}): {len(results) - len(bad)}/{len(results)} points recovered by themselves"]
    for r in bad:
        lines.append(f"  point {r.at} ({r.op}, {r.outcome}): " + " | ".join(r.problems))
    return "\n".join(lines)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_kill_at_sampled_points_recovers(
    name: str, tmp_path: Path, shim: Path, starting_states: dict[str, Path]
) -> None:
    seed = _seed()
    scenario = SCENARIOS[name]
    template = starting_states[scenario.template]
    use_signing_key(starting_states["verified"] / "keys" / "id_ed25519")
    _, log = _reference(scenario, template, tmp_path / "count", shim)
    points = crash.spread(len(log), SAMPLE[name], seed)
    results = sweep(name, points, tmp_path, shim, starting_states)
    print(f"CRASH_SEED={seed}: " + _report(name, "kill", results))
    assert all(not r.problems for r in results), f"CRASH_SEED={seed}\n" + _report(name, "kill", results)


CHUNKS = 4  # each sweep in parts, so that -n N spreads it over N workers


@pytest.mark.parametrize("name", list(DISK_FULL_SAMPLE))
def test_disk_full_at_sampled_points_is_named_and_recovered(
    name: str, tmp_path: Path, shim: Path, starting_states: dict[str, Path]
) -> None:
    """From a sampled call on, every state-changing call fails with ENOSPC (a disk that
    filled up): the command ends with exit 1 or 2 (KAVI-DISK-FULL), never "a bug", and once
    there is room again doctor --repair and the command finish the job."""
    seed = _seed()
    scenario = SCENARIOS[name]
    use_signing_key(starting_states["verified"] / "keys" / "id_ed25519")
    _, log = _reference(scenario, starting_states[scenario.template], tmp_path / "count", shim)
    points = crash.spread(len(log), DISK_FULL_SAMPLE[name], seed)
    results = sweep(name, points, tmp_path, shim, starting_states, mode="enospc")
    print(f"CRASH_SEED={seed}: " + _report(name, "enospc", results))
    assert all(not r.problems for r in results), f"CRASH_SEED={seed}\n" + _report(name, "enospc", results)


@pytest.mark.crash_sweep
@pytest.mark.parametrize("part", range(CHUNKS))
@pytest.mark.parametrize("mode", ["kill", "enospc"])
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_full_sweep(
    name: str, mode: str, part: int, tmp_path: Path, shim: Path, starting_states: dict[str, Path]
) -> None:
    scenario = SCENARIOS[name]
    use_signing_key(starting_states["verified"] / "keys" / "id_ed25519")
    _, log = _reference(scenario, starting_states[scenario.template], tmp_path / "count", shim)
    points = [at for at in range(1, len(log) + 1) if at % CHUNKS == part]
    results = sweep(name, points, tmp_path, shim, starting_states, mode=mode)
    text = _report(name, mode, results) + f" (part {part + 1} of {CHUNKS}, {len(log)} points in all)"
    print(text)
    report = os.environ.get("CRASH_SWEEP_REPORT")
    if report:
        with open(report, "a", encoding="utf-8") as fh:
            fh.write(text + "\n")
    assert all(not r.problems for r in results), text
