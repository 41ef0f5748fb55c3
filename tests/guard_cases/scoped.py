"""Child process for tests/test_guard.py: the thread-scoped ``guarded()`` block.

Usage: ``python scoped.py ROOT OUT``. Prints one JSON object mapping a check name to
"allowed", "refused" or an error text.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from kavi.errors import GuardViolation
from kavi.policy.guard import GuardPolicy, guarded

ROOT, OUT = Path(sys.argv[1]), Path(sys.argv[2])
POLICY = GuardPolicy(write_roots=(ROOT,))
report: dict[str, object] = {}


def attempt(name: str) -> str:
    try:
        (OUT / name).write_text("x")
    except GuardViolation:
        return "refused"
    except OSError as exc:
        return f"error: {exc}"
    return "allowed"


def in_thread(fn: Callable[[], str]) -> threading.Thread:
    box: list[str] = []
    thread = threading.Thread(target=lambda: box.append(fn()))
    thread.box = box  # type: ignore[attr-defined]
    thread.start()
    return thread


report["before_block"] = attempt("before")

# A thread that exists before the block and writes while the block is active.
go, done = threading.Event(), threading.Event()
old_box: list[str] = []


def old_worker() -> None:
    go.wait()
    old_box.append(attempt("old_thread"))
    done.set()


old = threading.Thread(target=old_worker)
old.start()

late_go = threading.Event()
late_box: list[str] = []

with guarded(POLICY) as handle:
    report["inside_block"] = attempt("inside")
    go.set()
    done.wait()
    report["pre_existing_thread_during_block"] = old_box[0]
    spawned = in_thread(lambda: attempt("spawned"))
    spawned.join()
    report["thread_started_inside_block"] = spawned.box[0]  # type: ignore[attr-defined]

    def late_worker() -> None:
        late_go.wait()
        late_box.append(attempt("late"))

    late = threading.Thread(target=late_worker)
    late.start()

    try:
        import socket

        socket.socket()
        report["network_inside"] = "allowed"
    except GuardViolation:
        report["network_inside"] = "refused"

    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class Point:
        x: int

    report["dataclass_inside"] = repr(Point(1))
    with guarded(GuardPolicy(write_roots=(ROOT,), allow_network=True)):
        try:
            socket.socket().close()
            report["nested_looser_policy"] = "allowed"
        except GuardViolation:
            report["nested_looser_policy"] = "refused"

report["after_block"] = attempt("after")
late_go.set()
late.join()
report["thread_from_block_after_exit"] = late_box[0]
fresh = in_thread(lambda: attempt("fresh"))
fresh.join()
report["thread_started_after_block"] = fresh.box[0]  # type: ignore[attr-defined]
report["handle_violations"] = handle.violations


# Skill code (a deeper frame) leaving the block by hand is refused; the thread stays
# guarded. It finds the scope object by walking up to Kavi's frame.
def skill() -> str:
    found = sys._getframe(1).f_locals["scope"]
    try:
        found.__exit__(None, None, None)
    except GuardViolation:
        return "refused"
    return "allowed"


scope = guarded(POLICY)
with scope:
    report["forged_exit"] = skill()
    report["after_forged_exit"] = attempt("after_forged")
report["after_real_exit"] = attempt("after_real")

# A refusal propagating out of the block still ends it.
try:
    with guarded(POLICY):
        attempt_raise = (OUT / "raise").write_text("x")
except GuardViolation:
    report["exception_out_of_block"] = "propagated"
report["after_exception"] = attempt("after_exception")

time.sleep(0)
print(json.dumps(report))
