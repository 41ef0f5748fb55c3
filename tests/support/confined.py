"""Drive the confinement boundary directly: a probe skill run by the real worker in the
real jail, with the runtime guard opened wide (writes below the test's directory,
``/proc`` and the temporary directories, network and subprocesses allowed) so that
whatever stops the probe is the operating system; and raw probes (``ctypes``, which
the guard always refuses) run as confined programs without any guard.

The probe skill takes ``{"action": …, "arg": …}`` and returns ``{"out": …}``; each action
is one thing a hostile skill would try (read a path, connect, fork a daemon, …).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kavi.confine.result import WorkerResult
from kavi.confine.session import Worker, skill_request
from kavi.confine.views import allowlist_view
from kavi.policy.guard import GuardPolicy

PROBE = """
import json, os, socket, time
from pathlib import Path
from kavi.skills.base import BaseSkill, SideEffect, SkillContext, SkillInput, SkillOutput


class ProbeInput(SkillInput):
    action: str
    arg: str = ""


class ProbeOutput(SkillOutput):
    out: str


def _try(fn):
    try:
        return "OK " + str(fn())
    except BaseException as exc:
        return f"ERR {type(exc).__name__} {getattr(exc, 'errno', '')}"


def _read(path):
    with open(path, "rb") as fh:
        return fh.read(4096).decode("utf-8", "replace")


def _write(path, data="pwned"):
    with open(path, "w") as fh:
        fh.write(data)
    return path


def _connect(arg):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(2)
    s.connect(("127.0.0.1", int(arg)))
    return s.recv(100).decode()


def _abstract(arg):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(2)
    s.connect("\\0" + arg)
    return s.recv(100).decode()


def _daemon(arg):
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            time.sleep(float(arg.split("|")[0]))
            with open(arg.split("|")[1], "w") as fh:
                fh.write("daemon was here")
        os._exit(0)
    return "forked"


def _bomb(arg):
    n = 0
    for _ in range(int(arg)):
        try:
            if os.fork() == 0:
                time.sleep(30)
                os._exit(0)
            n += 1
        except OSError:
            break
    time.sleep(2)
    return n


def _loop(arg):
    n = 0
    while True:
        n += 1


def _alloc(arg):
    return len(bytearray(int(arg)))


def _bigfile(arg):
    path, size = arg.split("|")
    with open(path, "wb") as fh:
        for _ in range(int(size) // (1 << 20)):
            fh.write(b"x" * (1 << 20))
    return "written"


def _link(arg):
    src, dst = arg.split("|")
    os.link(src, dst)
    return _write(dst)


def _listdir(arg):
    return sorted(os.listdir(arg))


def _fds(arg):
    out = []
    for fd in sorted(os.listdir("/proc/self/fd"), key=int):
        try:
            out.append(fd + "=" + os.readlink("/proc/self/fd/" + fd))
        except OSError:
            pass
    return out


ACTIONS = {
    "read": _read,
    "write": _write,
    "connect": _connect,
    "abstract": _abstract,
    "daemon": _daemon,
    "bomb": _bomb,
    "loop": _loop,
    "alloc": _alloc,
    "bigfile": _bigfile,
    "link": _link,
    "listdir": _listdir,
    "fds": _fds,
    "env": lambda arg: json.dumps(dict(os.environ)),
    "keys": lambda arg: open("/proc/keys").read(),
    "reply_bomb": lambda arg: (os.write(3, b"[" * 200000 + b"]" * 200000 + b"\\n"), os._exit(0)),
    "ids": lambda arg: f"{os.getuid()} {os.getpid()} {os.getppid()}",
    "chdir_read": lambda arg: (os.chdir(".."), _read(arg))[1],
}


class ProbeSkill(BaseSkill[ProbeInput, ProbeOutput]):
    name = "probe"
    description = "tries things"
    input_model = ProbeInput
    output_model = ProbeOutput
    side_effect_class = SideEffect.READ_ONLY
    required_secrets = ()

    def execute(self, input: ProbeInput, ctx: SkillContext) -> ProbeOutput:
        if input.action in ("loop", "alloc", "bomb", "bigfile"):
            return ProbeOutput(out=str(ACTIONS[input.action](input.arg)))
        return ProbeOutput(out=_try(lambda: ACTIONS[input.action](input.arg)))
"""

LIMITS = {"cpu_seconds": 5, "memory_mb": 1024, "processes": 16, "file_size_mb": 8, "tmp_mb": 16}


@dataclass
class Box:
    """A vault (read root), a write root inside it, Kavi's artifact dir, and a "home"."""

    root: Path

    @property
    def vault(self) -> Path:
        return self.root / "forge" / "vault_out"

    @property
    def notes(self) -> Path:
        return self.vault / "notes"

    @property
    def artifacts(self) -> Path:
        return self.vault / "kavi"

    @property
    def forge(self) -> Path:
        return self.root / "forge"

    def make(self) -> Box:
        for d in (self.notes, self.artifacts, self.forge / ".git"):
            d.mkdir(parents=True, exist_ok=True)
        (self.forge / ".git" / "config").write_text("[core]\n\tsecret = hunter2-git-config\n")
        (self.artifacts / "RUN_RECORD_x.md").write_text("kavi's own\n")
        (self.notes / "hello.md").write_text("hello\n")
        (self.vault / "readme.md").write_text("a note of the vault, readable, not writable\n")
        return self


def probe(
    box: Box,
    action: str,
    arg: str = "",
    *,
    writes: bool = False,
    network: bool = False,
    limits: dict[str, Any] | None = None,
    timeout: float = 20,
    confined: bool = True,
    secrets: dict[str, str] | None = None,
    guard: GuardPolicy | None = None,
) -> WorkerResult:
    """Run one probe action in a worker; the guard lets everything through unless given."""
    worker = Worker(confined=confined, own_network=not network)
    writable = (box.notes,) if writes else ()
    view = allowlist_view(
        read_roots=(box.vault,),
        write_roots=writable,
        private=[(Path("/tmp"), 16)],
        protected=(box.artifacts, box.forge / ".git"),
        hidden=(box.forge, box.forge / ".git", Path(os.path.expanduser("~")).resolve()),
        network=network,
        cwd=box.vault,
    )
    policy = guard or GuardPolicy(
        write_roots=(box.root, Path("/proc"), Path("/var/tmp"), Path("/tmp")),
        allow_network=True,
        allow_subprocess=True,
    )
    request = skill_request(
        source=PROBE.encode(),
        filename=str(box.root / "probe.py"),
        module="_kavi_probe_",
        class_name="ProbeSkill",
        payload={"action": action, "arg": arg},
        context={
            "vault_root": str(box.vault),
            "allowed_write_paths": [str(w) for w in writable],
            "read_roots": [str(box.vault)],
            "protected": [str(box.artifacts)],
        },
        guard=json.loads(policy.to_json()),
        cwd=str(box.vault),
        secrets=secrets or {},
    )
    return worker.run(
        view=view if confined else None, request=request, limits=limits or LIMITS, timeout=timeout
    )


def out(result: WorkerResult) -> str:
    assert result.reply is not None, (result.status, result.stderr[-2000:])
    assert result.reply.get("ok"), result.reply
    return str(result.reply["output"]["out"])


RAW = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
action, arg = sys.argv[1], sys.argv[2]
if action == "ptrace":
    rc = libc.ptrace(16, int(arg), 0, 0)  # PTRACE_ATTACH
elif action == "unshare":
    rc = libc.unshare(int(arg, 16))
elif action == "keyring":
    rc = libc.syscall(250, 0, -3, 0)  # keyctl(GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING), x86_64
elif action == "mount":
    rc = libc.mount(b"none", arg.encode(), b"tmpfs", 0, None)
elif action == "setuid":
    rc = libc.setuid(int(arg))
elif action == "daemon":
    import time
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            time.sleep(60)
        os._exit(0)
    rc = 0
else:
    raise SystemExit("unknown action")
print(f"rc={rc} errno={ctypes.get_errno()}")
"""


def raw(box: Box, action: str, arg: str = "", *, limits: dict[str, Any] | None = None) -> str:
    """Run a raw probe (no guard at all) confined as a generated test would be; its stdout."""
    import sys

    from kavi.confine.program import run_program

    result = run_program(
        [sys.executable, "-I", "-c", RAW, action, arg],
        cwd=box.vault,
        env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"},
        timeout=20,
        limits=limits or LIMITS,
        view=allowlist_view(
            read_roots=(box.vault,),
            private=[(Path("/tmp"), 16)],
            hidden=(box.forge,),
            cwd=box.vault,
        ),
        spec_file=box.root / "jail.json",
    )
    assert result.confined, "the jail is unavailable here"
    return result.proc.stdout.strip() + result.proc.stderr.strip()[-300:]
