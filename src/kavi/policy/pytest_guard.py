"""pytest plugin: run a whole test session under the Kavi runtime guard.

Load it with ``python -m pytest -p kavi.policy.pytest_guard ...`` and the policy in
the ``KAVI_GUARD`` environment variable (the JSON form of
:class:`kavi.policy.guard.GuardPolicy`). A missing or malformed ``KAVI_GUARD``
aborts the session (``ERROR: ...``, exit code 4): the plugin fails closed.

The guard is installed in ``pytest_load_initial_conftests`` (first), i.e. before
any ``conftest.py`` or test module is imported, with the pytest ``--basetemp``
directory added to the write roots. If :func:`tempfile.gettempdir` is outside the
roots, ``tempfile.tempdir`` is pointed at a write root so ``tmp_path``-free
temporary files keep working.

Reporting (three channels, so swallowing an exception does not hide anything):

* each refusal raises :class:`kavi.errors.GuardViolation` in the test (it fails);
* each refusal is written at once to the original stderr as
  ``KAVI-GUARD-LIVE: <what>`` (before pytest captures output, and even if the
  session is later cut short with ``os._exit``);
* at the end of the session every refusal is printed as ``KAVI-GUARD: <what>``,
  followed by one ``KAVI-GUARD-SESSION: clean`` or
  ``KAVI-GUARD-SESSION: violations=<n>`` line, and a session that would have
  passed exits 1 (``TESTS_FAILED``) instead.

A caller should treat the run as failed unless the exit code is 0 *and* the
``KAVI-GUARD-SESSION: clean`` line is present *and* no ``KAVI-GUARD`` line
reports a violation. Guarded code can write to inherited descriptors and call
``os._exit`` (neither raises an audit event), so in-process reporting can be cut
short or imitated; only refusals themselves are guaranteed.
"""

from __future__ import annotations

import getpass
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from kavi.errors import KaviError
from kavi.policy.guard import GuardHandle, GuardPolicy, install_process_guard, read_violations

ENV_VAR = "KAVI_GUARD"
LINE_PREFIX = "KAVI-GUARD: "
SESSION_PREFIX = "KAVI-GUARD-SESSION: "


def _read_policy() -> GuardPolicy:
    raw = os.environ.get(ENV_VAR)
    if raw is None or not raw.strip():
        raise pytest.UsageError(
            f"{ENV_VAR} is not set: kavi.policy.pytest_guard refuses to run tests unguarded"
        )
    try:
        return GuardPolicy.from_json(raw)
    except KaviError as exc:
        raise pytest.UsageError(f"{ENV_VAR} is malformed: {exc.message}") from None


# Parsed at import: a bad KAVI_GUARD stops pytest before anything else is loaded.
_POLICY = _read_policy()
# Python ignores SIGXFSZ; under a file-size limit the process must end instead (the
# limit is then named in the verdict, and a test cannot catch its way past it).
signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
# The real stderr, duplicated before pytest starts capturing output.
_LIVE_FD = os.dup(2)
os.set_inheritable(_LIVE_FD, False)

# One immutable record once installed: (handle,). A tuple in a one-slot list.
_INSTALLED: list[tuple[GuardHandle]] = []


def _inside(path: Path, roots: tuple[Path, ...]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def _default_basetemp() -> Path:
    """Where pytest puts ``tmp_path`` without ``--basetemp`` (see _pytest.tmpdir)."""
    root = os.environ.get("PYTEST_DEBUG_TEMPROOT") or tempfile.gettempdir()
    try:
        user = getpass.getuser()
    except (ImportError, KeyError, OSError):
        user = "unknown"
    return Path(root) / f"pytest-of-{user}"


def _install(basetemp: str | None) -> None:
    if _INSTALLED:
        return
    policy = _POLICY
    roots = list(policy.write_roots)
    tmp = Path(os.path.realpath(tempfile.gettempdir()))
    if not _inside(tmp, policy.write_roots):
        # keep tempfile (and pytest's own capture files) inside the roots
        candidates = []
        if basetemp:
            candidates.append(Path(os.path.realpath(Path(basetemp).parent)))
        candidates.extend(policy.write_roots)
        for candidate in candidates:
            if _inside(candidate, policy.write_roots) and candidate.is_dir():
                tempfile.tempdir = str(candidate)
                break
    extra = Path(os.path.abspath(basetemp)) if basetemp else _default_basetemp()
    roots.append(extra)
    full = GuardPolicy(
        write_roots=tuple(roots),
        allow_subprocess=policy.allow_subprocess,
        allow_network=policy.allow_network,
        allow_dynamic_code=policy.allow_dynamic_code,
        protected=policy.protected,
        read_roots=policy.read_roots,
    )
    handle = install_process_guard(full, report_fd=_LIVE_FD)
    _INSTALLED.append((handle,))


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    """Install before conftest.py files and test modules are imported."""
    _install(getattr(early_config.known_args_namespace, "basetemp", None))


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    _install(config.getoption("basetemp", None))


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    if not _INSTALLED:  # pragma: no cover - both install hooks always run first
        raise pytest.UsageError("kavi runtime guard was not installed; refusing to run tests")


def _violations(*, _read: Any = read_violations, _installed: Any = _INSTALLED) -> list[str]:
    # bound at import: tests in this session can re-assign module and class attributes
    if not _installed:
        return ["runtime guard was never installed"]
    found: list[str] = _read(_installed[0][0])
    return found


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int | pytest.ExitCode) -> None:
    found = _violations()
    if found and session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    lines = [LINE_PREFIX + " ".join(v.split()) for v in found]
    lines.append(SESSION_PREFIX + (f"violations={len(found)}" if found else "clean"))
    reporter: Any = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write("\n")  # -q leaves the cursor after "[100%]"
        reporter.write_sep("-", "kavi runtime guard")
        for line in lines:
            reporter.write_line(line)
    else:
        sys.stdout.write("\n" + "".join(line + "\n" for line in lines))
        sys.stdout.flush()
