"""Misbehaving fake ``claude`` executables for the adversarial build tests.

:func:`install` writes an executable named ``claude`` that behaves like Claude Code's
headless mode (accepts exactly the real CLI's flags, works in its cwd = the sandbox, prints
``stream-json`` events of the real shapes ending in a ``result`` event; see
:mod:`support.fake_claude`) and, in between, runs one *attack*: a snippet of
Python given by the test. The snippet runs with these names in scope:

``CTX``         dict of test-provided values (paths inside the test's tmp dir only)
``report``      ``report(key, value)``: evidence for the test, sent over loopback TCP
                (a confined agent can write no file the test could read); ``ask(key)``
                waits for a value reported by the test or by another agent
``SKILL``       the allowed skill path (relative), ``TEST`` the allowed test path
``write_good``  writes correct contents to both allowed paths
``main_repo``   finds the repository Kavi runs in the way a same-user process can:
                ``/proc/<parent>/cwd``, else the parent's open ``ledger.db``
``proposal_id`` the proposal id, read from ``KAVI_BUILD_PACKET.md``
``daemon``      double-fork + ``setsid``: runs a function outside Kavi's process group
``make_deep``   nests directories level by level (``os.makedirs`` itself recurses)
``wait_gone``   polls until a path disappears (e.g. "Kavi has removed my sandbox")
``PWNED``       path prefix for proof-of-execution markers of planted payloads
``RESULT``      the success ``result`` event printed at the end (set ``EMIT = False``
                to print none)

Safety: ``main_repo()`` refuses any path outside ``CTX["fence"]`` (the test's tmp dir),
so a misfiring discovery can never touch a real repository. Every daemon reports its
pid (``daemon_pid``) so the test can kill it by pid (unconfined runs: confined, the pid
is one of the jail's own namespace and the jail's death takes the daemon with it).
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import Any

from support.fake_claude import cli_prelude, example_sources

PRELUDE = r'''
import base64, errno, re, shutil, signal, socket, stat, subprocess, zlib

CTX = json.loads({ctx!r})
ARGS = sys.argv[1:]
FENCE = Path(CTX["fence"]).resolve()
SANDBOX = Path.cwd()
PWNED = FENCE / "pwned"  # payloads planted by attacks only ever touch files inside the fence


def report(key, value):
    """Tell the test something (loopback TCP: the one channel a confined agent shares)."""
    try:
        with socket.create_connection(("127.0.0.1", int(CTX["evidence_port"])), timeout=5) as conn:
            conn.sendall((json.dumps({{"key": key, "value": value}}) + "\n").encode())
    except (OSError, KeyError, ValueError):
        pass


def ask(key, limit=20.0):
    """Wait for the test (or another agent) to report ``key``; its value, or None."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", int(CTX["evidence_port"])), timeout=5) as conn:
                conn.sendall((json.dumps({{"get": key}}) + "\n").encode())
                value = json.loads(conn.makefile("r").readline() or "null")
        except (OSError, KeyError, ValueError):
            value = None
        if value is not None:
            return value
        time.sleep(0.05)
    return None


SKILL, TEST = ALLOWED


def write_good(skill=None, test=None):
    # the example's contents travel in CTX: a confined agent cannot read the Kavi
    # checkout when it lives under /tmp (a CI clone)
    pairs = ((skill or SKILL, CTX["skill_source"]), (test or TEST, CTX["test_source"]))
    for target, text in pairs:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        Path(target).write_text(text)


def _fenced(path):
    path = Path(path).resolve()
    if path != FENCE and FENCE not in path.parents:
        raise SystemExit(f"evil agent: refusing to touch {{path}} (outside the test fence)")
    return path


def main_repo():
    """The repository Kavi runs in, found as any same-user process can find it — or, where
    Kavi's /proc is out of sight (the namespace jail), from a guess the test hands over
    (an agent can guess paths: it does not need /proc to write somewhere). Where even
    the guess shows no repository (the jail hides the forge), the agent reports
    ``main_repo: hidden`` and gives up."""
    found = _find_main_repo()
    if not (found / ".git").is_dir():
        report("main_repo", "hidden")
        raise SystemExit(f"evil agent: no repository at {{found}}")
    return found


def _find_main_repo():
    ppid = os.getppid()
    try:
        cwd = Path(os.readlink(f"/proc/{{ppid}}/cwd"))
        for cand in (cwd, *cwd.parents):
            if (cand / ".git").is_dir() and (cand / ".git" / "kavi").is_dir():
                return _fenced(cand)
        for fd in os.listdir(f"/proc/{{ppid}}/fd"):
            try:
                target = os.readlink(f"/proc/{{ppid}}/fd/{{fd}}")
            except OSError:
                continue
            if target.endswith("/.git/kavi/ledger.db"):
                return _fenced(Path(target).parents[2])
    except OSError:
        pass
    if CTX.get("repo"):
        return _fenced(Path(CTX["repo"]))
    raise SystemExit("evil agent: main repository not found")


def proposal_id():
    text = Path("KAVI_BUILD_PACKET.md").read_text()
    return re.search(r"of proposal `([0-9a-f-]+)`", text).group(1)


def make_deep(base, depth, leaf=None):
    """``base/d/d/.../d`` (depth levels), made one level at a time (os.makedirs recurses)."""
    fd = os.open(base, os.O_RDONLY)
    for _ in range(depth):
        os.mkdir("d", dir_fd=fd)
        inner = os.open("d", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = inner
    if leaf:
        os.close(os.open(leaf, os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=fd))
    os.close(fd)


def wait_gone(path, limit=20.0):
    end = time.monotonic() + limit
    while os.path.lexists(path) and time.monotonic() < end:
        time.sleep(0.02)


def daemon(fn, keep_stdio=False):
    """Run fn() in a grandchild that has left Kavi's process group (setsid).

    With keep_stdio it keeps the agent's stdout/stderr open (Kavi's capture files).
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.setsid()
            pid2 = os.fork()
            if pid2 > 0:
                os.write(w, str(pid2).encode())
                os._exit(0)
            os.close(w)
            if not keep_stdio:
                null = os.open(os.devnull, os.O_RDWR)
                for fd in (0, 1, 2):
                    os.dup2(null, fd)
            try:
                fn()
            finally:
                os._exit(0)
        except BaseException:
            os._exit(1)
    os.close(w)
    os.waitpid(pid, 0)
    grandchild = int(os.read(r, 32) or b"0")
    os.close(r)
    report("daemon_pid", grandchild)
    return grandchild


init()
assistant({{"type": "text", "text": "Writing the skill."}})
RESULT = result_event()
EMIT = True

# ---- attack ----
'''

POSTLUDE = r"""
# ---- end of attack ----
if EMIT:
    event(RESULT)
"""


def install(bin_dir: Path, attack: str, ctx: dict[str, Any]) -> Path:
    """Write ``bin_dir/claude`` running ``attack`` (Python source, dedented)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    sources = example_sources()
    full = {"skill_source": sources["skill"], "test_source": sources["test"], **ctx}
    script = bin_dir / "claude"
    script.write_text(
        cli_prelude(sys.executable)
        + PRELUDE.format(ctx=json.dumps(full))
        + textwrap.dedent(attack).strip("\n")
        + "\n"
        + POSTLUDE
    )
    script.chmod(0o755)
    return script
