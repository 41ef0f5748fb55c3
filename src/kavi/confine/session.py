"""Kavi's side of one confined skill run: start the worker early, hand it the run, collect.

:meth:`Worker.start` launches :mod:`kavi.confine.worker` at once — in fresh namespaces
through :mod:`kavi.confine.init` where the machine has them (its view follows later), or
as a plain process — so the child imports pydantic and the skill contract while Kavi
checks trust and policy. :meth:`Worker.run` sends the view, the limits and the request,
waits at most the wall time, kills the whole process tree whatever happened, and returns
the reply with how the process ended (and which limit, if one ended it).
:meth:`Worker.abort` kills a worker that will not be needed (a check refused).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from kavi.confine import launch

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import IO, Any

    from kavi.confine.result import WorkerResult

MAX_REPLY = 16 * 1024 * 1024
MAX_STDERR = 64 * 1024
_NAMESPACES_FAILED: list[str] = []  # why the jail could not start in this process, once it failed


def skill_request(
    *,
    source: bytes,
    filename: str,
    module: str,
    class_name: str,
    payload: Mapping[str, Any],
    context: Mapping[str, Any],
    guard: Mapping[str, Any],
    cwd: str,
    secrets: Mapping[str, str],
) -> dict[str, Any]:
    """What :mod:`kavi.confine.worker` reads: the verified source (exact bytes), the
    validated input, the skill's context, the runtime guard's policy (the keyword
    arguments of :class:`kavi.policy.guard.GuardPolicy`, paths as strings: Kavi's process
    need not import the guard), where to start, the secrets (as ``ctx.secrets`` and as
    ``KAVI_SECRET_<NAME>`` in its environment)."""
    import binascii

    return {
        "source": binascii.b2a_base64(source, newline=False).decode(),
        "filename": filename,
        "module": module,
        "class_name": class_name,
        "input": dict(payload),
        "context": {**context, "secrets": dict(secrets)},
        "env": {f"KAVI_SECRET_{k}": v for k, v in secrets.items()},
        "guard": dict(guard),
        "cwd": cwd,
    }


def namespaces_usable() -> bool:
    """Worth trying the jail (util-linux present, Linux, not switched off, not failed here)."""
    return (
        sys.platform.startswith("linux")
        and not launch.forced_unavailable()
        and launch.tools() is not None
        and not _NAMESPACES_FAILED
    )


def retry_namespaces() -> None:
    """Forget that the jail failed to start in this process: a long-lived process (``serve
    mcp``) tries it again rather than running every later skill without it."""
    _NAMESPACES_FAILED.clear()


def unavailable_reason() -> str:
    from kavi.confine import jail

    return _NAMESPACES_FAILED[0] if _NAMESPACES_FAILED else jail.unavailable_reason()


class Worker:
    """One worker process, started and not yet given its run (or finished)."""

    def __init__(self, *, confined: bool, own_network: bool) -> None:
        self.confined = confined
        self.own_network = own_network
        self.started = time.monotonic()
        self._status_r: int | None = None
        self._stderr: IO[bytes] = launch.scratch_file()  # closed in abort()/collect()
        self.tmp: str | None = None
        self._done = False
        self._deadline = 0.0
        worker = [sys.executable, "-I", "-m", "kavi.confine.worker"]
        pass_fds: tuple[int, ...] = ()
        if confined:
            self._status_r, status_w = os.pipe()
            argv = launch.prestart_command(worker, own_network=own_network, status_fd=status_w)
            pass_fds = (status_w,)
            env = launch.child_env(os.environ, tmp="/tmp")
        else:
            import tempfile

            launch.not_dumpable()  # a same-user child cannot read or trace this process's memory
            self.tmp = tempfile.mkdtemp(prefix="kavi-run-")
            argv, env = worker, launch.child_env(os.environ, tmp=self.tmp)
        try:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                cwd="/",
                env=env,
                start_new_session=True,
                pass_fds=pass_fds,
                preexec_fn=launch.die_with_parent,
            )
        finally:
            for fd in pass_fds:
                os.close(fd)

    @classmethod
    def start(cls, *, own_network: bool = True) -> Worker:
        """Start a worker now: confined where this machine can, else a plain process."""
        if namespaces_usable():
            try:
                return cls(confined=True, own_network=own_network)
            except OSError as exc:
                _NAMESPACES_FAILED.append(f"cannot start unshare: {exc}")
        return cls(confined=False, own_network=own_network)

    def abort(self) -> None:
        """Kill the worker and everything it started; nothing ran."""
        self._finish()
        self._stderr.close()

    def run(
        self,
        *,
        view: Mapping[str, Any] | None,
        request: Mapping[str, Any],
        limits: Mapping[str, Any],
        timeout: float,
    ) -> WorkerResult:
        """Give the worker its view (confined) and request; wait at most ``timeout`` seconds."""
        self.send(view=view, request=request, limits=limits, timeout=timeout)
        return self.collect()

    def send(
        self,
        *,
        view: Mapping[str, Any] | None,
        request: Mapping[str, Any],
        limits: Mapping[str, Any],
        timeout: float,
    ) -> None:
        """Hand the worker its view (confined), limits and request; the wall time starts.
        Call :meth:`collect` next (Kavi may prepare its record in between)."""
        import json

        if self.confined:
            line = json.dumps({**(view or {}), "limits": dict(limits), "payload": json.dumps(request)})
        else:
            line = json.dumps({**request, "limits": dict(limits)})
        self._deadline = time.monotonic() + timeout
        if self.proc.poll() is not None:
            # its launcher is gone (killed from outside before the run was handed over): the
            # jail's first process may have missed its parent-death signal, so it gets
            # nothing to act on; collect() kills what is left and reports a lost worker
            return
        stdin = self.proc.stdin
        if stdin is None:  # pragma: no cover - a pipe
            raise OSError("worker pipe missing")
        try:
            stdin.write(line.encode("utf-8", "surrogatepass") + b"\n")
            stdin.close()
        except BrokenPipeError:
            pass

    def collect(self) -> WorkerResult:
        """Wait for the reply (at most until the wall time is up), then kill the whole tree."""
        import json

        from kavi.confine.result import WorkerResult

        stdout = self.proc.stdout
        if stdout is None:  # pragma: no cover - a pipe
            raise OSError("worker pipe missing")
        data, timed_out = _read_until(stdout, self._deadline)
        self._finish()
        status = self._status()
        reply: dict[str, Any] | None = None
        if data.strip() and len(data) <= MAX_REPLY:
            try:
                parsed = json.loads(data.split(b"\n", 1)[0])
                reply = parsed if isinstance(parsed, dict) else None
            except (ValueError, RecursionError):
                reply = None
        self._stderr.seek(0)
        err = self._stderr.read(MAX_STDERR).decode("utf-8", "replace")
        self._stderr.close()
        result = WorkerResult(
            reply=reply,
            stderr=err,
            confined=self.confined,
            timed_out=timed_out,
            status=status,
            duration_s=time.monotonic() - self.started,
        )
        if result.cannot_confine:
            _NAMESPACES_FAILED.append(result.cannot_confine)
        return result

    def _finish(self) -> None:
        import signal

        if self._done:
            return  # (its pid may belong to another process by now)
        self._done = True
        if self.confined:
            # unshare leads the process group, the jail's PID 1 is in it (and dies with
            # unshare in any case): when PID 1 dies the kernel kills its whole namespace,
            # setsid daemons included — no need to walk /proc for descendants
            for kill, target in ((os.killpg, self.proc.pid), (os.kill, self.proc.pid)):
                try:
                    kill(target, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        else:
            from kavi.confine.proc import kill_tree

            kill_tree(self.proc.pid)
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None and not pipe.closed:
                pipe.close()
        if self.tmp is not None:
            subprocess.run(["rm", "-rf", "--one-file-system", self.tmp], check=False, capture_output=True)
            self.tmp = None

    def _status(self) -> dict[str, Any]:
        import json
        import signal

        code = self.proc.returncode
        if self._status_r is None:
            if code is not None and code < 0:
                out: dict[str, Any] = {"signal": -code}
                if -code == signal.SIGXCPU:
                    out["limit"] = "cpu_seconds"
                elif -code == signal.SIGXFSZ:
                    out["limit"] = "file_size_mb"
                return out
            return {"exit": code}
        try:
            raw = os.read(self._status_r, 65536)
        except OSError:
            raw = b""
        finally:
            os.close(self._status_r)
            self._status_r = None
        try:
            parsed = json.loads(raw.decode("utf-8", "replace").splitlines()[0]) if raw.strip() else {}
        except ValueError:
            parsed = {}
        if not isinstance(parsed, dict) or not parsed:
            return {"exit": code, "unreported": True}
        return parsed


def _read_until(pipe: IO[bytes], deadline: float) -> tuple[bytes, bool]:
    """The reply: what ``pipe`` yields up to its first newline (the worker writes one line
    and exits; waiting for EOF would wait for its interpreter to shut down), EOF, or
    ``MAX_REPLY`` + 1 bytes — or, if the deadline comes first, what arrived by then."""
    import select

    fd = pipe.fileno()
    chunks: list[bytes] = []
    size = 0
    while size <= MAX_REPLY:
        left = deadline - time.monotonic()
        if left <= 0:
            return b"".join(chunks), True
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if b"\n" in chunk:
            break
    return b"".join(chunks), False
