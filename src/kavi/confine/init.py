"""PID 1 of a confined process tree (see :mod:`kavi.confine.jail`).

Runs as root of fresh user, mount, PID and IPC namespaces (and, for skills and generated
tests, a network namespace of its own), with the standard library only (as a script,
``python -I -S``). It builds the confined program's world (:mod:`kavi.confine.mounts`
does the mounting), starts the program as its child through ``setpriv`` (no
capabilities, no new privileges), applies the resource limits, and stays PID 1: a small
reaper the program cannot touch. When the program exits, this process exits and the
kernel kills whatever else is left in the namespace (a ``setsid`` daemon included).

Two ways to start:

* ``init.py [--status-fd N] --spec FILE``: the spec (JSON) names the view, the limits and
  the program; the world is built first, then the program starts in it;
* ``init.py [--status-fd N] --setpriv PATH --prestart -- ARGV…``: the program starts at
  once (it imports what it needs while Kavi does its checks) and waits on its stdin; the
  spec arrives as the first line of this process's stdin, the world is built around the
  waiting program (``pivot_root`` moves its root and working directory too), its limits
  are set, and only then is the spec's ``payload`` written to its stdin.

Limits (``limits`` in the spec): CPU seconds, address space, processes, file size, no
core dumps, as rlimits of the program; the process count is also enforced here, by
counting the namespace's processes (root's processes ignore ``RLIMIT_NPROC``), and, on
Linux 6.14 and later, capped by the namespace's own ``pid_max``.

The last thing it does is write one JSON line to ``--status-fd``: the program's exit code
or signal, which limit (if any) ended it, or why the world could not be built (exit 97:
the program never ran confined). Any failure before the program may run exits 97.
"""

from __future__ import annotations

import os
import resource
import select
import signal
import sys

TYPE_CHECKING = False  # (typing, json and the rest load after the program has started)
if TYPE_CHECKING:
    from typing import Any

if __package__:
    from kavi.confine import mounts
else:  # run as a script: the sibling module by path (no site, no package)
    sys.path.append(os.path.dirname(os.path.abspath(__file__)))
    import mounts  # type: ignore[import-not-found,no-redef]

CANNOT_CONFINE = 97
CANNOT_EXEC = 98
MAX_SPEC_BYTES = 64 * 1024 * 1024
MIB = 1024 * 1024
POLL_SECONDS = 0.005  # how often the process count is checked while a limit is set


def apply_limits(pid: int, limits: dict[str, Any] | None) -> None:
    """Set ``limits`` as rlimits of ``pid`` (0: this process). CPU seconds count from now."""
    if not limits:
        return
    used = _cpu_seconds(pid)
    pairs: list[tuple[int, int]] = [(resource.RLIMIT_CORE, 0)]
    if limits.get("cpu_seconds"):
        pairs.append((resource.RLIMIT_CPU, int(limits["cpu_seconds"]) + used))
    if limits.get("memory_mb"):
        pairs.append((resource.RLIMIT_AS, int(limits["memory_mb"]) * MIB))
    if limits.get("file_size_mb"):
        pairs.append((resource.RLIMIT_FSIZE, int(limits["file_size_mb"]) * MIB))
    if limits.get("processes"):  # tasks of this user in the namespace: threads count too
        pairs.append((resource.RLIMIT_NPROC, int(limits["processes"]) + 2))
    for which, soft in pairs:
        # the CPU limit's hard value is a second later: SIGXCPU first, then SIGKILL
        hard = soft + 1 if which == resource.RLIMIT_CPU else soft
        resource.prlimit(pid, which, (soft, hard))


def _cpu_seconds(pid: int) -> int:
    """CPU seconds ``pid`` has used so far, rounded up."""
    try:
        with open(f"/proc/{pid or 'self'}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])  # utime, stime
    except (OSError, IndexError, ValueError):
        return 1
    return -(-ticks // os.sysconf("SC_CLK_TCK")) + 1


def _per_namespace_pid_max() -> bool:
    """Linux 6.14 made ``kernel.pid_max`` a property of each PID namespace; before, the
    file is global (and writable by host root), so it is never touched there."""
    try:
        major, minor = (int(x) for x in os.uname().release.split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= (6, 14)


def _cap_pids() -> None:
    """A hard cap on the number of processes (~300) this namespace can hold."""
    if _per_namespace_pid_max():
        try:
            with open("/proc/sys/kernel/pid_max", "w") as fh:
                fh.write("301")
        except OSError:
            pass


def _spawn(setpriv: str, argv: list[str], *, stdin: int | None, limits: dict[str, Any] | None) -> int:
    program = [setpriv, "--bounding-set=-all", "--inh-caps=-all", "--no-new-privs", "--", *argv]
    pid = os.fork()
    if pid == 0:
        try:
            if stdin is not None:
                os.dup2(stdin, 0)
            apply_limits(0, limits)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            os.execv(program[0], program)
        finally:
            os._exit(CANNOT_EXEC)
    return pid


def _count_processes() -> int:
    try:
        return sum(1 for name in os.listdir("/proc") if name.isdigit())
    except OSError:
        return 0


def _reap(child: int, limits: dict[str, Any] | None, wakeup: int) -> dict[str, Any]:
    """Reap every orphan; return how ``child`` ended (or that it had too many processes)."""
    most = int((limits or {}).get("processes") or 0)
    cpu = int((limits or {}).get("cpu_seconds") or 0)
    while True:
        while True:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return {"exit": CANNOT_EXEC, "error": "the confined program was lost"}
            except InterruptedError:
                continue
            if pid == 0:
                break
            if pid == child:
                if os.WIFEXITED(status):
                    return {"exit": os.WEXITSTATUS(status)}
                sig = os.WTERMSIG(status)
                out: dict[str, Any] = {"signal": sig}
                if sig == signal.SIGXCPU or (
                    sig == signal.SIGKILL and cpu and usage.ru_utime + usage.ru_stime >= cpu
                ):
                    out["limit"] = "cpu_seconds"
                elif sig == signal.SIGXFSZ:
                    out["limit"] = "file_size_mb"
                return out
        if most and _count_processes() - 1 > most:
            return {"signal": signal.SIGKILL, "limit": "processes"}
        try:
            select.select([wakeup], [], [], POLL_SECONDS if most else None)
            os.read(wakeup, 4096)
        except (BlockingIOError, InterruptedError):
            pass


def _report(fd: int | None, status: dict[str, Any]) -> int:
    if fd is not None:
        import json

        try:
            os.write(fd, (json.dumps(status) + "\n").encode())
        except OSError:
            pass
    if "exit" in status:
        return int(status["exit"])
    return 128 + int(status.get("signal", signal.SIGKILL))


def _read_spec_line() -> dict[str, Any] | None:
    import json

    chunks: list[bytes] = []
    size = 0
    while size <= MAX_SPEC_BYTES:
        chunk = os.read(0, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if b"\n" in chunk:
            break
    line = b"".join(chunks).split(b"\n", 1)[0]
    if not line.strip():
        return None
    spec: dict[str, Any] = json.loads(line)
    return spec


def _parse(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    opts: dict[str, str] = {}
    rest = list(argv)
    while rest and rest[0] != "--":
        flag = rest.pop(0)
        if flag == "--prestart":
            opts["prestart"] = "1"
        elif flag in ("--spec", "--status-fd", "--setpriv") and rest:
            opts[flag[2:]] = rest.pop(0)
        else:
            raise SystemExit(f"kavi-jail: unknown argument {flag!r}")
    return opts, rest[1:]


def main(argv: list[str]) -> int:
    opts, program = _parse(argv)
    status_fd = int(opts["status-fd"]) if "status-fd" in opts else None
    if status_fd is not None:
        os.set_inheritable(status_fd, False)
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda _sig, _frame: None)
    feed: int | None = None
    child = 0
    try:
        mounts.isolate()
    except OSError as exc:
        sys.stderr.write(f"kavi-jail: cannot confine the program: {exc}\n")
        return _report(status_fd, {"exit": CANNOT_CONFINE, "error": f"cannot confine: {exc}"})
    if "prestart" in opts:
        feed_r, feed = os.pipe()
        os.set_inheritable(feed, False)
        child = _spawn(opts["setpriv"], program, stdin=feed_r, limits=None)
        os.close(feed_r)
    try:
        if "prestart" in opts:
            spec = _read_spec_line()
            if spec is None:  # Kavi changed its mind (a check refused): nothing runs
                os.kill(child, signal.SIGKILL)
                return _report(status_fd, {"exit": 0, "aborted": True})
        else:
            import json

            with open(opts["spec"], encoding="utf-8") as fh:
                spec = json.load(fh)
        mounts.build(spec)
        if spec.get("limits", {}).get("processes"):
            _cap_pids()
        os.chdir(spec["cwd"])  # through the new mounts
    except (OSError, ValueError, KeyError) as exc:
        sys.stderr.write(f"kavi-jail: cannot confine the program: {exc}\n")
        if child:
            os.kill(child, signal.SIGKILL)
        return _report(status_fd, {"exit": CANNOT_CONFINE, "error": f"cannot confine: {exc}"})
    limits = spec.get("limits")
    if child:
        apply_limits(child, limits)
        payload = str(spec.get("payload", "")).encode()
        try:
            _write_all(feed, payload + b"\n")  # type: ignore[arg-type]
        except BrokenPipeError:
            pass
        os.close(feed)  # type: ignore[arg-type]
    else:
        child = _spawn(spec["setpriv"], spec["argv"], stdin=None, limits=limits)
    # PID 1 stays this process, out of the program's reach: it cannot clear PID 1's
    # parent-death signal (so the jail dies with Kavi) or outlive it. Reap every orphan;
    # return when the program itself exits — the kernel then kills what is left.
    return _report(status_fd, _reap(child, limits, wake_r))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
