"""Run a program confined (the verify gate's pytest on generated tests).

:func:`run_program` starts ``argv`` in fresh namespaces with the given allowlist view
(:mod:`kavi.confine.views`) and resource limits, with a hard wall time; the whole
process tree is killed at the end whatever happened. Where the machine has no
namespaces (or the caller passes no view), it runs as a plain process that takes on the
same rlimits (the process count aside: without a PID namespace it would count the
user's other processes). The result says how it was confined and which limit, if any,
ended it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kavi.confine import jail
from kavi.confine.proc import ProcResult, run_bounded


@dataclass(frozen=True)
class ProgramResult:
    proc: ProcResult
    confined: bool
    status: dict[str, Any] = field(default_factory=dict)

    @property
    def limit(self) -> str | None:
        if self.proc.timed_out:
            return "wall_seconds"
        found = self.status.get("limit")
        if found:
            return str(found)
        code = self.proc.returncode
        if code is not None and code < 0:  # unconfined: the signal itself says it
            return {-24: "cpu_seconds", -25: "file_size_mb"}.get(code)
        return None

    @property
    def cannot_confine(self) -> str | None:
        if self.confined and self.status.get("exit") == 97:
            return str(self.status.get("error") or "cannot confine")
        return None


def run_program(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    limits: Mapping[str, Any],
    view: Mapping[str, Any] | None,
    spec_file: Path,
    own_network: bool = True,
) -> ProgramResult:
    """Run ``argv`` to completion or ``timeout``, confined to ``view`` when it is given and
    this machine can (``spec_file``: where the jail's spec is written; keep it out of the
    view)."""
    if view is None or not jail.available():
        proc = run_bounded(argv, cwd=cwd, env=env, timeout=timeout, limits=limits)
        return ProgramResult(proc, confined=False)
    status_r, status_w = os.pipe()
    try:
        spec = {**view, "argv": list(argv), "limits": dict(limits)}
        command = jail.spec_command(spec, spec_file, own_network=own_network, status_fd=status_w)
        proc = run_bounded(command, cwd=cwd, env=env, timeout=timeout, pass_fds=(status_w,))
    finally:
        os.close(status_w)
    try:
        os.set_blocking(status_r, False)
        raw = os.read(status_r, 65536)
    except OSError:
        raw = b""
    finally:
        os.close(status_r)
    status: dict[str, Any] = {}
    if raw.strip():
        try:
            parsed = json.loads(raw.decode("utf-8", "replace").splitlines()[0])
            status = parsed if isinstance(parsed, dict) else {}
        except ValueError:
            status = {}
    return ProgramResult(proc, confined=True, status=status)
