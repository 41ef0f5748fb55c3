"""The OS boundary on its own: a probe skill in the real jail, the runtime guard opened wide.

Each test is an attack a skill (or a generated test) could try once past every static
gate and the guard; what stops it here is the kernel: a fresh root without the host's
files, read-only mounts, namespaces of its own, rlimits and the jail's PID 1.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path

import pytest

import kavi
from kavi.confine import jail
from support.confined import LIMITS, Box, out, probe, raw

pytestmark = pytest.mark.skipif(not jail.available(), reason="no user namespaces here: no boundary to test")


@pytest.fixture
def box(tmp_path: Path) -> Box:
    return Box(tmp_path).make()


def test_nothing_of_the_host_is_readable(box: Box, isolated_env: Path) -> None:
    key = isolated_env / ".ssh" / "id_ed25519"
    key.parent.mkdir()
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY----- secret-key-bytes\n")
    (box.notes / "out").symlink_to(key)
    for path in (
        str(key),  # the user's key
        str(box.forge / ".git" / "config"),  # the forge's git config
        "../.git/config",  # the same, relative to the vault
        str(box.notes / "out"),  # a symlink in the vault that points out
        f"/proc/self/root{key}",  # through the process's root link
        "/proc/self/cwd/../.git/config",  # through its working directory link
        "/proc/1/environ",  # the jail's PID 1 (more privileged: no ptrace access)
        "/proc/1/root/etc/passwd",
        "/etc/passwd",
        "/etc/shadow",
    ):
        got = out(probe(box, "read", path))
        assert got.startswith("ERR"), (path, got)
        assert "secret" not in got and "hunter2" not in got
    # a relative path after leaving the working directory: still nothing
    assert out(probe(box, "chdir_read", ".git/config")).startswith("ERR")
    # what the root holds: the system's runtime directories and the first component of each
    # path the jail binds (the interpreter, its environment, Kavi, the vault) — wherever the
    # checkout lives (/work, /check, /home/…), and nothing else of the host
    top = json.loads(out(probe(box, "listdir", "/"))[3:].replace("'", '"'))
    bound = (sys.prefix, sys.base_prefix, os.path.realpath(sys.executable), kavi.__file__, str(box.root))
    runtime = {"bin", "sbin", "lib", "lib32", "lib64", "libx32", "usr", "etc", "proc", "dev", "tmp"}
    assert set(top) <= runtime | {Path(os.path.realpath(p)).parts[1] for p in bound}, top
    assert out(probe(box, "listdir", str(box.forge))) == "OK ['vault_out']"
    assert out(probe(box, "read", str(box.notes / "hello.md"))) == "OK hello\n"  # the read root is readable
    assert out(probe(box, "read", str(box.artifacts / "RUN_RECORD_x.md"))).startswith("ERR")  # Kavi's own
    assert out(probe(box, "listdir", str(box.artifacts))) == "OK []"


def test_writes_only_below_the_write_roots(box: Box) -> None:
    before = (box.artifacts / "RUN_RECORD_x.md").read_text()
    assert out(probe(box, "write", str(box.notes / "new.md"), writes=True)).startswith("OK")
    assert (box.notes / "new.md").read_text() == "pwned"
    for target in (
        box.artifacts / "RUN_RECORD_x.md",  # Kavi's own artifacts, inside the write root's vault
        box.artifacts / "new.md",
        box.vault / "top.md",  # the vault itself is only a read root
        box.forge / ".git" / "config",
        box.forge / "README.md",
    ):
        got = out(probe(box, "write", str(target), writes=True))
        assert got.startswith("ERR"), (target, got)
    # a hard link from a read-only file into the write root: refused across mounts (EXDEV)
    got = out(probe(box, "link", f"{box.vault / 'readme.md'}|{box.notes / 'alias.md'}", writes=True))
    assert got.startswith("ERR OSError 18"), got
    # and Kavi's artifacts are not even there to link
    artifact = box.artifacts / "RUN_RECORD_x.md"
    got = out(probe(box, "link", f"{artifact}|{box.notes / 'alias.md'}", writes=True))
    assert got.startswith("ERR FileNotFoundError"), got
    assert "readable, not writable" in (box.vault / "readme.md").read_text()
    assert (box.artifacts / "RUN_RECORD_x.md").read_text() == before
    assert not (box.artifacts / "new.md").exists() and not (box.vault / "top.md").exists()
    assert "hunter2" in (box.forge / ".git" / "config").read_text()
    # READ_ONLY: the same write below the vault is refused
    assert out(probe(box, "write", str(box.notes / "ro.md"))).startswith("ERR")
    # global knobs of the kernel stay out of reach even for host root
    for target in ("/proc/sys/kernel/core_pattern", "/proc/sysrq-trigger", "/proc/sys/kernel/pid_max"):
        assert out(probe(box, "write", target)).startswith("ERR")


def test_no_network_without_a_networked_class(box: Box, listener: tuple[int, list[str]]) -> None:
    port, seen = listener
    got = out(probe(box, "connect", str(port)))
    assert got.startswith("ERR") and not seen
    # an abstract unix socket of the host (X11, D-Bus live there)
    name = f"kavi-test-{os.getpid()}"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind("\0" + name)
    server.listen(1)
    try:
        assert out(probe(box, "abstract", name)).startswith("ERR")
    finally:
        server.close()
    # control: a networked class reaches the same listener
    assert out(probe(box, "connect", str(port), network=True)) == "OK loopback service"


def test_environment_is_the_childs_own(box: Box, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAVI_SECRET_OTHER", "other-skills-secret-value")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-unrelated-credential-value")
    env = json.loads(out(probe(box, "env"))[3:])
    assert set(env) <= {
        "LANG",
        "LANGUAGE",
        "LC_ALL",
        "LC_CTYPE",
        "LC_MESSAGES",
        "LC_NUMERIC",
        "LC_TIME",
        "TZ",
        "PATH",
        "HOME",
        "TMPDIR",
        "PYTHONDONTWRITEBYTECODE",
    }
    declared = json.loads(out(probe(box, "env", secrets={"TOKEN": "declared-token-value"}))[3:])
    assert declared["KAVI_SECRET_TOKEN"] == "declared-token-value"
    assert "other-skills-secret-value" not in json.dumps(declared)
    # Kavi's own process is not in the jail's PID namespace at all
    got = out(probe(box, "read", f"/proc/{os.getpid()}/environ"))
    assert got.startswith("ERR") and "sk-unrelated" not in got


def test_only_its_own_descriptors(box: Box) -> None:
    fds = out(probe(box, "fds"))
    listed = eval(fds[3:])
    assert [entry.split("=")[0] for entry in listed] == ["0", "1", "2", "3"], listed
    assert all("pipe:" in entry or "(deleted)" in entry for entry in listed), listed


def test_a_daemon_dies_with_the_run(box: Box) -> None:
    marker = box.notes / "daemon.txt"
    got = out(probe(box, "daemon", f"1.5|{marker}", writes=True))
    assert got == "OK forked"
    time.sleep(3)
    assert not marker.exists(), "a setsid daemon outlived the run"


@pytest.mark.parametrize(
    ("action", "arg", "limit"),
    [
        ("loop", "", "cpu_seconds"),
        ("alloc", str(10 * 1024**3), "memory_mb"),
        ("bomb", "400", "processes"),
    ],
)
def test_limits_end_the_run(box: Box, action: str, arg: str, limit: str) -> None:
    start = time.monotonic()
    result = probe(box, action, arg, limits={**LIMITS, "cpu_seconds": 2}, timeout=30)
    assert result.limit == limit, (result.reply, result.status, result.stderr[-500:])
    assert time.monotonic() - start < 25
    _no_leftovers(action)


def test_file_size_limit(box: Box) -> None:
    target = box.notes / "big.bin"
    result = probe(box, "bigfile", f"{target}|{64 << 20}", writes=True)
    assert result.limit == "file_size_mb", (result.reply, result.status)
    assert target.stat().st_size <= LIMITS["file_size_mb"] << 20


def test_wall_time_kills_the_tree(box: Box) -> None:
    result = probe(box, "loop", limits={**LIMITS, "cpu_seconds": 60}, timeout=2)
    assert result.timed_out and result.limit == "wall_seconds"
    _no_leftovers("loop")


def test_no_privileges_inside(box: Box) -> None:
    assert raw(box, "ptrace", "1") == "rc=-1 errno=1"  # PID 1 (the jail's init) is out of reach
    assert raw(box, "unshare", "10000000").startswith("rc=-1")  # no nested user namespace
    assert raw(box, "mount", "/tmp") == "rc=-1 errno=1"  # no mounts of its own
    assert raw(box, "setuid", "1000").startswith("rc=-1")  # only its own uid is mapped
    assert not raw(box, "keyring").startswith("rc=-1 errno=0")  # a fresh session keyring of its own


def test_a_confined_programs_daemon_dies_with_it(box: Box) -> None:
    assert raw(box, "daemon") == "rc=0 errno=0"  # (what a generated test at verify would do)
    _no_leftovers("daemon")


def _no_leftovers(action: str) -> None:
    """No process of the probe survives its run: this test process has no descendants."""
    time.sleep(0.2)
    parents: dict[int, list[int]] = {}
    for name in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            fields = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            parents.setdefault(int(fields[1]), []).append(int(name))
    stack, found = [os.getpid()], []
    while stack:
        for child in parents.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    assert not found, f"{action}: processes left behind: {found}"


def test_no_keys_of_kavis_session(box: Box) -> None:
    """The prestarted worker exists before its view does: it must not keep Kavi's session
    keyring (kerberos tickets, ecryptfs and other keys live there)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.syscall(250, 1, None) >= 0  # keyctl(JOIN_SESSION_KEYRING): this test's own
    key = libc.syscall(248, b"user", b"kavi-test-key", b"keyring-secret", 14, -3)  # add_key(@s)
    assert key > 0, ctypes.get_errno()
    assert libc.syscall(250, 5, key, 0x3F000000) == 0  # KEYCTL_SETPERM: visible to possessors only
    assert "kavi-test-key" in Path("/proc/keys").read_text()
    assert "kavi-test-key" not in out(probe(box, "keys"))
    assert "kavi-test-key" not in raw(box, "keyring") + out(probe(box, "read", "/proc/keys"))
