"""Fourth adversarial review of the build step (helper-11): attacks that worked, now fixed.

Same harness as ``tests/test_build_adversarial.py`` (``Arena``, a fake ``claude`` running a
snippet, evidence over loopback TCP). Each docstring names the guarantee the attack broke
and the fix.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kavi.backends import jail
from support.arena import Arena, open_arena


@pytest.fixture(params=["jail", "tripwire"])
def arena(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Arena]:
    confined = request.param == "jail"
    if confined and not jail.available():
        pytest.skip("this machine has no user namespaces")
    with open_arena(tmp_path, monkeypatch, confined=confined) as a:
        yield a


@pytest.fixture
def open_arena_unconfined(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Arena]:
    with open_arena(tmp_path, monkeypatch, confined=False) as a:
        yield a


_WEIRD_RESULTS = {
    "denials_not_a_list": 'RESULT["permission_denials"] = 5',
    "huge_number": 'RESULT["num_turns"] = 10 ** 5000',
    "deep_nesting": (
        'EMIT = False\nprint(\'{"type": "result", "x": \' + "[" * 100000 + "]" * 100000 + "}", flush=True)'
    ),
    "object_fields": 'RESULT["subtype"] = {"nested": ["success"]}\nRESULT["result"] = [1, 2, 3]',
}


@pytest.mark.parametrize("kind", sorted(_WEIRD_RESULTS))
def test_malformed_result_event_is_a_failed_build_not_a_crash(arena: Arena, kind: str) -> None:
    """A result event with a non-list ``permission_denials``, a 5,000-digit number, 100,000
    levels of nesting or objects where strings belong crashed Kavi (``TypeError``,
    ``ValueError``, ``RecursionError``: exit 3, "a bug in Kavi"). Fix: the transcript parser
    skips what it cannot decode, keeps only scalars, and refuses malformed denials."""
    arena.agent("write_good()\nsys.set_int_max_str_digits(0)\n" + _WEIRD_RESULTS[kind])
    out = arena.build()
    arena.require(out)
    assert "bug in Kavi" not in out.stdout + out.stderr


def test_tripwire_runs_even_when_the_backend_step_raises(open_arena_unconfined: Arena) -> None:
    """Unconfined, the agent plants ``core.fsmonitor`` in ``.git/config`` and a hook, then
    makes the backend step raise. ``tripwire.check`` ran after ``backend.run`` returned, so
    nothing was restored and the next ``git status`` ran the payload. Fix: the tripwire runs
    in a ``finally`` around the backend step (and the parser no longer raises)."""
    arena = open_arena_unconfined
    arena.agent(
        """
        write_good()
        repo = main_repo()
        if repo:
            with open(os.path.join(repo, ".git", "config"), "a") as fh:
                fh.write("[core]\\n\\tfsmonitor = touch " + str(PWNED) + "-fsmonitor\\n")
        RESULT["permission_denials"] = 5
        """
    )
    out = arena.build()
    arena.require(out, (".git/config", "tripwire"))


def test_submodule_config_is_watched(open_arena_unconfined: Arena) -> None:
    """Unconfined, the agent writes ``core.fsmonitor`` into ``.git/modules/vendor/config``:
    ``git status`` in the main repository recurses into the submodule and runs it. The
    tripwire did not look under ``modules/`` and the build SUCCEEDED. Fix: submodules'
    git dirs (config, hooks, info; not objects or refs) are part of the snapshot."""
    arena = open_arena_unconfined
    module = arena.repo / ".git" / "modules" / "vendor"
    (module / "hooks").mkdir(parents=True)
    (module / "config").write_text("[core]\n\trepositoryformatversion = 0\n")
    arena.agent(
        """
        write_good()
        repo = main_repo()
        if repo:
            module = os.path.join(repo, ".git", "modules", "vendor")
            with open(os.path.join(module, "config"), "a") as fh:
                fh.write("[core]\\n\\tfsmonitor = touch " + str(PWNED) + "-submodule\\n")
            hook = os.path.join(module, "hooks", "post-checkout")
            with open(hook, "w") as fh:
                fh.write("#!/bin/sh\\ntouch " + str(PWNED) + "-hook\\n")
        """
    )
    out = arena.build()
    arena.require(
        out,
        (".git/modules/vendor/config", "tripwire"),
        (".git/modules/vendor/hooks/post-checkout", "tripwire"),
    )
    assert (module / "config").read_text() == "[core]\n\trepositoryformatversion = 0\n"
    assert not (module / "hooks" / "post-checkout").exists()


_LEAVE_THE_GROUP = """
write_good()
import ctypes
ctypes.CDLL(None).prctl(1, 0, 0, 0, 0)  # PR_SET_PDEATHSIG = 0: do not die with the parent
try:
    os.setsid()  # leave the process group Kavi kills (unconfined it already leads its own)
except OSError:
    pass
for i in range(600):
    report("tick", i)
    time.sleep(0.1)
"""


def test_agent_that_leaves_the_process_group_dies_at_the_timeout(arena: Arena) -> None:
    """The agent clears its parent-death signal and calls ``setsid``: killing the process
    group of ``unshare`` (or of the agent, unconfined) missed it, and it kept running — with
    the backend's credential and the network — after Kavi reported the timeout. Fix: on
    timeout (and after any exit) Kavi kills every descendant of the backend process, found
    through ``/proc``; killing a PID namespace's init ends everything inside it."""
    arena.agent(_LEAVE_THE_GROUP)
    out = arena.build("--timeout", "2")
    seen = len(arena.evidence.all("tick"))
    time.sleep(1.5)
    later = len(arena.evidence.all("tick"))
    extra = (
        [f"ALIVE: the agent kept reporting after the build ({seen} → {later} ticks)"] if later > seen else []
    )
    arena.require(out, summary="did not finish within 2s", extra=extra)
