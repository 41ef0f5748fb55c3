"""A full disk, a read-only file system, a refused permission: named, exit 2, never "a bug".

The file systems are real: a small tmpfs mounted in a private mount namespace
(``unshare -rm``), a read-only bind mount of the forge, and a user namespace in which
Kavi's directory belongs to a user this process is not. Where the kernel does not allow
unprivileged namespaces the tests are skipped with a message saying so.
"""

from __future__ import annotations

import errno
import json
import shlex
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import Verified
from kavi.errors import (
    DiskFullError,
    GitError,
    KaviError,
    PermissionDeniedError,
    ReadOnlyError,
    StateError,
    environment_fault,
)
from support.forge import kavi_json

pytestmark = pytest.mark.slow


def _namespaces_work() -> str | None:
    if not shutil.which("unshare"):
        return "unshare (util-linux) is not installed"
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", "mount -t tmpfs tmpfs /mnt 2>/dev/null || mount -t tmpfs tmpfs /tmp"],
        capture_output=True,
        text=True,
        check=False,
    )
    return (
        None if probe.returncode == 0 else f"unprivileged mount namespaces are not available: {probe.stderr}"
    )


needs_namespaces = pytest.mark.skipif(_namespaces_work() is not None, reason=str(_namespaces_work()))


def _kavi_line(args: list[str], out: Path, name: str) -> str:
    """A shell line running the real CLI and keeping its output and exit status in ``out``."""
    cmd = " ".join(shlex.quote(a) for a in [sys.executable, "-m", "kavi", *args, "--format", "json"])
    return f"{cmd} > {out}/{name}.json 2> {out}/{name}.err; echo $? > {out}/{name}.rc"


def _result(out: Path, name: str) -> tuple[int, Any]:
    rc = int((out / f"{name}.rc").read_text())
    text = (out / f"{name}.json").read_text()
    try:
        return rc, json.loads(text)
    except ValueError:
        return rc, {"raw": text, "stderr": (out / f"{name}.err").read_text()}


def _in_namespace(script: str, *, cwd: Path, user: bool = False) -> None:
    env_line = "export PYTHONDONTWRITEBYTECODE=1\n"
    args = ["unshare", "--map-user=1000", "--map-group=1000"] if user else ["unshare", "-rm"]
    proc = subprocess.run(
        [*args, "sh", "-c", env_line + script], cwd=cwd, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


# -- mapping ---------------------------------------------------------------------------------


def test_the_environment_is_named_in_one_place() -> None:
    assert isinstance(environment_fault(OSError(errno.ENOSPC, "No space left on device")), DiskFullError)
    assert isinstance(environment_fault(OSError(errno.EROFS, "Read-only file system")), ReadOnlyError)
    assert isinstance(
        environment_fault(PermissionError(errno.EACCES, "Permission denied")), PermissionDeniedError
    )
    # libgit2 gives only text; SQLite its result name
    assert isinstance(
        environment_fault(OSError("could not write 'x': No space left on device")), DiskFullError
    )
    full = sqlite3.OperationalError("database or disk is full")
    assert isinstance(environment_fault(full), DiskFullError)
    # an internal error caused by one is the environment's; a refusal stays a refusal
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as exc:
            raise GitError("cannot write the tree") from exc
    except GitError as wrapped:
        fault = environment_fault(wrapped)
        assert isinstance(fault, DiskFullError) and fault.exit_code == 2
        assert "doctor --repair" in (fault.remedy or "")
    assert environment_fault(StateError("no space left on device in the plan")) is None
    assert environment_fault(KaviError("something else")) is None


# -- a full disk ---------------------------------------------------------------------------------


@needs_namespaces
@pytest.mark.parametrize("room_kb", [0, 16, 96])
def test_a_full_disk_is_named_and_recovered_from(verified: Verified, tmp_path: Path, room_kb: int) -> None:
    """Promotion on a small tmpfs filled to leave ``room_kb``: it completes or stops with
    KAVI-DISK-FULL (exit 2); once there is room, doctor --repair and the same command again
    finish the promotion with nothing lost."""
    mnt, out = tmp_path / "mnt", tmp_path / "out"
    mnt.mkdir()
    out.mkdir()
    forge = mnt / "forge"
    fill = (
        "import os,sys; p=sys.argv[1]; st=os.statvfs(os.path.dirname(p)); "
        "free=st.f_bavail*st.f_frsize-int(sys.argv[2])*1024; "
        "f=open(p,'wb'); [f.write(b'\\0'*65536) for _ in range(max(0,free)//65536)]; "
        "f.write(b'\\0'*(max(0,free)%65536)); f.close()"
    )
    promote = ["promote-skill", verified.proposal_id, "--yes"]
    script = "\n".join(
        [
            "set -e",
            f"mount -t tmpfs -o size=16m,nr_inodes=4000 tmpfs {mnt}",
            f"cp -a {verified.repo} {forge}",
            f"mkdir {mnt}/tmp",
            f"git -C {forge} config gpg.ssh.allowedSignersFile {forge}/.kavi/allowed_signers",
            f"{shlex.quote(sys.executable)} -c {shlex.quote(fill)} {mnt}/filler {room_kb}",
            "set +e",
            f"cd {forge}",
            f"export TMPDIR={mnt}/tmp",
            _kavi_line(promote, out, "first"),
            f"rm -f {mnt}/filler",
            _kavi_line(["doctor", "--repair"], out, "repair"),
            _kavi_line(promote, out, "again"),
            _kavi_line(["doctor"], out, "doctor"),
            _kavi_line(["audit"], out, "audit"),
            f"git -C {forge} fsck --no-dangling > {out}/fsck.txt 2>&1; echo $? > {out}/fsck.rc",
            f"git -C {forge} status --porcelain > {out}/status.txt",
        ]
    )
    _in_namespace(script, cwd=tmp_path)
    rc, first = _result(out, "first")
    assert rc in (0, 2), first
    if rc == 2:
        assert first["code"] == "KAVI-DISK-FULL", first
        assert "doctor --repair" in first["remedy"]
    for name in ("repair", "again", "doctor", "audit"):
        assert _result(out, name)[0] == 0, (name, _result(out, name))
    assert _result(out, "again")[1]["status"] == "TRUSTED"
    assert _result(out, "doctor")[1]["findings"] == []
    assert (out / "fsck.rc").read_text().strip() == "0", (out / "fsck.txt").read_text()
    assert (out / "status.txt").read_text() == ""


# -- a read-only clone ------------------------------------------------------------------------------


@pytest.fixture
def promoted(verified: Verified) -> Verified:
    kavi_json("promote-skill", verified.proposal_id, "--yes", cwd=verified.repo)
    kavi_json(
        "run-skill", "write_note", "--json", '{"path": "a.md", "title": "A", "body": "B"}', cwd=verified.repo
    )
    return verified


READERS = [["status"], ["audit"], ["list-skills"], ["provenance", "write_note@v1"]]


@needs_namespaces
@pytest.mark.parametrize("wal", [False, True], ids=["checkpointed", "with-wal"])
def test_a_read_only_clone_can_still_be_read(promoted: Verified, tmp_path: Path, wal: bool) -> None:
    repo = promoted.repo
    holder = None
    if wal:  # a ledger whose last transactions are still only in its write-ahead log
        # another reader, in the middle of a read: nobody can checkpoint the log past it
        holder = sqlite3.connect(repo / ".git/kavi/ledger.db", isolation_level=None)
        holder.execute("BEGIN")
        holder.execute("SELECT count(*) FROM sqlite_master").fetchone()
        kavi_json(
            "run-skill", "write_note", "--json", '{"path": "b.md", "title": "B", "body": "C"}', cwd=repo
        )
        assert (repo / ".git/kavi/ledger.db-wal").stat().st_size > 0
    expected = {" ".join(a): kavi_json(*a, cwd=repo) for a in READERS}
    out = tmp_path / "out"
    out.mkdir()
    lines = [f"mount --bind {repo} {repo}", f"mount -o remount,bind,ro {repo}", f"cd {repo}"]
    for i, args in enumerate(READERS):
        lines.append(_kavi_line(args, out, f"r{i}"))
    lines.append(
        _kavi_line(
            [
                "propose-skill",
                "--name",
                "other",
                "--desc",
                "x",
                "--side-effect",
                "READ_ONLY",
                "--io-schema-json",
                '{"input": {}, "output": {"x": "str"}}',
            ],
            out,
            "write",
        )
    )
    lines.append(_kavi_line(["promote-skill", "write_note", "--yes"], out, "promote"))
    try:
        _in_namespace("\n".join(lines), cwd=tmp_path)
    finally:
        if holder is not None:
            holder.close()
    for i, args in enumerate(READERS):
        rc, data = _result(out, f"r{i}")
        assert rc == 0, (args, data)
        assert data == expected[" ".join(args)], args
    for name in ("write", "promote"):
        rc, data = _result(out, name)
        assert rc == 2 and data["code"] == "KAVI-READ-ONLY", (name, data)


# -- permission denied ---------------------------------------------------------------------------------


@needs_namespaces
def test_permission_denied_is_named(promoted: Verified, tmp_path: Path) -> None:
    """Kavi's directory belongs to another user: reading works, writing says why it cannot."""
    repo = promoted.repo
    kavi_dir = repo / ".git/kavi"
    subprocess.run(["chown", "-R", "4242", str(kavi_dir)], check=True)
    try:
        out = tmp_path / "out"
        out.mkdir()
        out.chmod(0o777)
        script = "\n".join(
            [
                f"cd {repo}",
                _kavi_line(["list-skills"], out, "read"),
                _kavi_line(
                    ["run-skill", "write_note", "--json", '{"path": "c.md", "title": "C", "body": "D"}'],
                    out,
                    "run",
                ),
                _kavi_line(["ledger", "sync"], out, "sync"),
            ]
        )
        _in_namespace(script, cwd=tmp_path, user=True)
    finally:
        subprocess.run(["chown", "-R", "0", str(kavi_dir)], check=True)
    assert _result(out, "read")[0] == 0, _result(out, "read")
    for name in ("run", "sync"):
        rc, data = _result(out, name)
        assert rc == 2 and data["code"] == "KAVI-PERMISSION", (name, data)


@needs_namespaces
def test_a_read_only_fresh_clone_reads_a_private_rebuild_of_its_ledger(
    promoted: Verified, tmp_path: Path
) -> None:
    from support.forge import git

    repo = promoted.repo
    kavi_json("ledger", "sync", cwd=repo)
    clone = tmp_path / "clone"
    git("clone", "-q", str(repo), str(clone), cwd=tmp_path)
    git("fetch", "-q", "origin", "refs/kavi/*:refs/kavi/*", "refs/notes/kavi:refs/notes/kavi", cwd=clone)
    expected = kavi_json("list-skills", cwd=repo)
    out = tmp_path / "out"
    out.mkdir()
    script = "\n".join(
        [
            f"mount --bind {clone} {clone}",
            f"mount -o remount,bind,ro {clone}",
            f"cd {clone}",
            _kavi_line(["list-skills"], out, "skills"),
            _kavi_line(["provenance", "write_note@v1"], out, "provenance"),
        ]
    )
    _in_namespace(script, cwd=tmp_path)
    rc, data = _result(out, "skills")
    assert rc == 0 and data == expected, data
    assert _result(out, "provenance")[0] == 0
    assert not (clone / ".git/kavi").exists()  # nothing was written into the clone
