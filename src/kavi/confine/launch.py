"""The first steps of confinement, cheap enough to take before anything else is imported.

``run-skill`` starts its confined worker before it opens the forge (the worker imports
pydantic and the skill contract while Kavi checks trust and policy), so everything that
start needs lives here, with nothing but :mod:`os`, :mod:`sys` and :mod:`subprocess`
imported: which tools confine (``unshare``, ``setpriv``), the commands that start the
jail's PID 1 (:mod:`kavi.confine.init`), the confined child's environment, the
parent-death signal, a scratch file for its stderr. :mod:`kavi.confine.jail` and
:mod:`kavi.confine.session` build on these; nothing here decides what a program may see.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import IO

# Set to 1 (in Kavi's own environment) to behave as on a kernel without user namespaces:
# for tests of that mode only. It can only take confinement away where the policy allows
# running without it, and every record says so; confined programs never see it.
FORCE_UNAVAILABLE_ENV = "KAVI_TEST_NO_NAMESPACES"
INIT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "init.py")  # stdlib only
LOCALE = ("LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_MESSAGES", "LC_NUMERIC", "LC_TIME", "TZ")
UNSHARE = (
    "--user",
    "--map-root-user",
    "--pid",
    "--fork",
    "--kill-child",
    "--mount",
    "--mount-proc",
    "--propagation",
    "private",
    "--ipc",
)


def which(name: str) -> str | None:
    """``name`` as found on ``PATH`` (an executable regular file), as :func:`shutil.which`
    finds a bare command name — without importing :mod:`shutil`."""
    for directory in os.environ.get("PATH", os.defpath).split(os.pathsep):
        path = os.path.join(directory or ".", name)
        if os.access(path, os.X_OK) and os.path.isfile(path):
            return path
    return None


_TOOLS: dict[str, tuple[str, str] | None] = {}  # by PATH: one search per PATH and process


def tools() -> tuple[str, str] | None:
    """``unshare`` and ``setpriv`` (util-linux), if this machine has both."""
    path = os.environ.get("PATH", os.defpath)
    if path not in _TOOLS:
        unshare, setpriv = which("unshare"), which("setpriv")
        _TOOLS[path] = None if unshare is None or setpriv is None else (unshare, setpriv)
    return _TOOLS[path]


def forced_unavailable() -> bool:
    return os.environ.get(FORCE_UNAVAILABLE_ENV) == "1"


def unshare_argv(*, own_network: bool) -> list[str]:
    found = tools()
    if found is None:
        raise OSError("unshare/setpriv not found")
    return [found[0], *UNSHARE, *(["--net"] if own_network else []), "--"]


def init_argv(*args: str) -> list[str]:
    return [sys.executable, "-I", "-S", INIT, *args]


def prestart_command(argv: Sequence[str], *, own_network: bool, status_fd: int) -> list[str]:
    """The command that starts ``argv`` at once in fresh namespaces, its view to follow on
    stdin (see :mod:`kavi.confine.init`)."""
    found = tools()
    if found is None:
        raise OSError("unshare/setpriv not found")
    init = init_argv("--status-fd", str(status_fd), "--setpriv", found[1], "--prestart", "--")
    return [*unshare_argv(own_network=own_network), *init, *argv]


def child_env(source: Mapping[str, str], *, tmp: str) -> dict[str, str]:
    """A confined child's whole environment: locale and time zone, a private ``HOME`` and
    ``TMPDIR``, a plain ``PATH``. Nothing else of Kavi's (secrets come with the request)."""
    env = {k: source[k] for k in LOCALE if k in source}
    env.setdefault("LANG", "C.UTF-8")
    env.update(
        {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": tmp, "TMPDIR": tmp, "PYTHONDONTWRITEBYTECODE": "1"}
    )
    return env


def prctl(option: int, value: int) -> int:
    """``prctl(option, value)`` on Linux; -1 elsewhere or on failure."""
    if not sys.platform.startswith("linux"):
        return -1
    try:
        import ctypes

        return int(ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0))
    except (OSError, AttributeError):
        return -1


def die_with_parent() -> None:
    """In the child, before exec: SIGKILL it when Kavi dies, however Kavi dies."""
    prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL


def not_dumpable() -> None:
    """PR_SET_DUMPABLE=0: same-user processes can no longer read our /proc entries."""
    prctl(4, 0)


def scratch_file() -> IO[bytes]:
    """An anonymous temporary file (no name on disk, gone when closed): ``O_TMPFILE`` in
    the temporary directory where the kernel has it, else :func:`tempfile.TemporaryFile`."""
    flag = getattr(os, "O_TMPFILE", 0)
    if flag:
        directory = os.environ.get("TMPDIR") or "/tmp"
        try:
            return open(os.open(directory, flag | os.O_RDWR, 0o600), "w+b")
        except OSError:
            pass
    import tempfile

    return tempfile.TemporaryFile()
