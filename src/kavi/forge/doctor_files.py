"""``doctor``: what a killed process can leave in the file system.

* git's lock files (``index.lock``, ``HEAD.lock``, ``refs/…/*.lock``, ``packed-refs.lock``…)
  that no process holds open: they block every later ref or index update;
* Kavi's own leftovers: the forge lock's record of a holder that died, temporary files
  (``.…tmp``, ``.ledger-import-*.db``), vault files written by a transaction that never
  committed (never recorded, referred to by nothing), verify sandboxes;
* half-removed worktree metadata of Kavi's build sandboxes (``<git-dir>/worktrees/kavi-*``).

A lock file is removed only if no process has it open (read from ``/proc``) and, when it
belongs to another user (whose processes may be invisible here), only if it is older
than :data:`FOREIGN_LOCK_AGE` seconds. ``--repair`` runs under the forge lock, and sweeps
the vault inside a SQLite write transaction, so no Kavi command is half-way through
writing what it removes.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from kavi.forge.context import Forge
from kavi.layout import CONFIG_FILE, POLICY_FILE, SIGNERS_FILE

if TYPE_CHECKING:
    from kavi.forge.doctor import DoctorReport

FOREIGN_LOCK_AGE = 600.0
_TOP_LOCKS = ("index.lock", "HEAD.lock", "ORIG_HEAD.lock", "config.lock", "packed-refs.lock", "shallow.lock")


def git_lock_files(common: Path, git_dir: Path) -> Iterator[Path]:
    """Every lock file git (or libgit2) may have left in the repository's git directories."""
    seen: set[Path] = set()
    for base in {common, git_dir}:
        for name in _TOP_LOCKS:
            if (base / name).exists():
                seen.add(base / name)
    for sub in ("refs", "logs"):
        root = common / sub
        if root.is_dir():
            for dirpath, _dirs, files in os.walk(root):
                seen.update(Path(dirpath) / f for f in files if f.endswith(".lock"))
    for root in (common / "worktrees", common / "objects" / "info"):
        if root.is_dir():
            for entry in root.iterdir():
                if entry.is_dir():
                    seen.update(p for p in entry.iterdir() if p.name.endswith(".lock"))
                elif entry.name.endswith(".lock"):
                    seen.add(entry)
    yield from sorted(seen)


def holders(path: Path) -> list[int]:
    """Processes (visible to us) that have ``path`` open."""
    target = str(path)
    found: list[int] = []
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return found
    for pid in pids:
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"{fd_dir}/{fd}") == target:
                    found.append(int(pid))
                    break
            except OSError:
                continue
    return found


def stale(path: Path) -> tuple[bool, str]:
    """Whether a lock file is safe to remove, and what is known about it."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False, "gone"
    age = max(0.0, time.time() - st.st_mtime)
    held = holders(path)
    if held:
        return False, f"held open by pid {', '.join(map(str, held))}"
    if not os.path.isdir("/proc/self/fd"):
        return age > FOREIGN_LOCK_AGE, f"{age:.0f}s old"
    if st.st_uid != os.getuid() and os.getuid() != 0 and age < FOREIGN_LOCK_AGE:
        return False, f"{age:.0f}s old, owned by uid {st.st_uid} (its processes are not visible here)"
    return True, f"{age:.0f}s old, no process has it open"


def check_git_locks(forge: Forge, report: DoctorReport, repair: bool) -> None:
    from kavi.forge.doctor import Finding

    report.checked.append("git lock files")
    common = forge.location.common_dir
    for lock in git_lock_files(common, forge.location.git_dir):
        removable, detail = stale(lock)
        rel = os.path.relpath(lock, common)
        finding = Finding(
            "git lock file",
            f".git/{rel} exists ({detail})",
            "remove it (a killed git or Kavi process left it)" if removable else "wait for that process",
        )
        report.findings.append(finding)
        if repair and removable:
            lock.unlink(missing_ok=True)
            finding.repaired = True


def check_lock_record(forge: Forge, report: DoctorReport, repair: bool, *, own: bool) -> None:
    """The forge lock cannot go stale (the kernel drops it), but its record of who held it can."""
    from kavi.forge.doctor import Finding
    from kavi.forge.lock import is_held, read_holder

    report.checked.append("forge lock")
    holder = read_holder(forge.kavi_dir)
    if own or holder is None:
        return  # taking the lock (doctor --repair) rewrote the record
    if is_held(forge.kavi_dir):
        report.notes.append(
            f"another Kavi command is running ({holder.describe()}): what it is in the middle of "
            "may show below and is not a problem"
        )
        return
    if not holder.alive():
        report.findings.append(
            Finding(
                "forge lock",
                f"the forge lock still names {holder.describe()}, which is no longer running (it was "
                "killed); the lock itself was released by the kernel",
                "forget the record (the next command that takes the lock does too)",
            )
        )


def _temp_files(forge: Forge) -> list[Path]:
    """Kavi's own temporary files (never anything else's): where and how Kavi names them."""
    from kavi.forge.spec import skill_paths

    kavi = forge.kavi_dir
    out: list[Path] = []
    if kavi.is_dir():
        out += [
            p
            for p in kavi.iterdir()
            if p.is_file()
            and (
                p.name.startswith((".ledger-import-", ".ledger-new-"))
                or (p.name.startswith(".") and p.name.endswith(".tmp"))
            )
        ]
        if (kavi / "cache").is_dir():
            out += [p for p in (kavi / "cache").rglob("*.tmp") if p.is_file()]
    out += list(forge.location.common_dir.glob(".kavi-ledger.mark.*.tmp"))
    for d in (kavi, forge.location.common_dir, forge.workdir):  # kavi.fsprobe's, if it was killed
        out += [p for p in d.glob(".kavi-probe-*") if p.is_file()]
    for rel in (CONFIG_FILE, POLICY_FILE, SIGNERS_FILE, ".gitignore"):  # init's atomic writes
        target = forge.workdir / rel
        out += [p for p in target.parent.glob(f".{target.name}.*.tmp") if p.is_file()]
    try:
        paths = skill_paths(forge.committed_config, "x")
        dirs = {forge.workdir / Path(paths.skill_file).parent, forge.workdir / Path(paths.test_file).parent}
    except Exception:
        dirs = set()
    for d in dirs:
        out += list(d.glob(".*.kavi-*.tmp"))
    return sorted(set(out))


def _dead_writer(name: str) -> bool:
    """Temporary files named after their writer's pid are removable once it is gone."""
    m = re.search(r"(?:\.|kavi-)(\d+)\.tmp$", name)
    if not m:
        return True
    pid = int(m.group(1))
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return pid == os.getpid()


def check_temp_files(forge: Forge, report: DoctorReport, repair: bool) -> None:
    """Temporary files of writes a killed command never finished (never the real files)."""
    from kavi.forge.doctor import Finding

    report.checked.append("temporary files")
    for path in _temp_files(forge):
        finding = Finding("temporary file", f"{path} was left by an interrupted write", "remove it")
        report.findings.append(finding)
        if repair and _dead_writer(path.name):
            path.unlink(missing_ok=True)
            finding.repaired = True


def check_vault_leftovers(forge: Forge, report: DoctorReport, repair: bool) -> None:
    """Vault files no ledger record refers to: written by a transaction that was rolled back
    (a crash, a full disk), or whose events were lost with a damaged ledger. Checked inside a
    write transaction, so no command is half-way; moved (never deleted) to
    ``<git-common-dir>/kavi/unrecorded/``, out of the vault but kept."""
    from kavi.artifacts.vault import VAULT_SUBDIR
    from kavi.forge.doctor import Finding

    report.checked.append("unrecorded vault files")
    root = forge.workdir / forge.config.vault_dir / VAULT_SUBDIR
    if not root.is_dir():
        return
    ledger = forge.ledger
    if ledger.readonly:
        return
    keep = forge.kavi_dir / UNRECORDED
    with ledger.transaction(forge.actor):
        recorded = {(forge.workdir / a.path).resolve() for a in ledger.artifacts()}
        stray: list[Path] = []
        for dirpath, _dirs, files in os.walk(root):
            for name in files:
                path = Path(dirpath) / name
                temporary = name.endswith(".tmp") and name.startswith(".")
                if temporary or (name.endswith(".md") and path.resolve() not in recorded):
                    stray.append(path)
        for path in sorted(stray):
            rel = path.relative_to(forge.workdir)
            temporary = path.name.endswith(".tmp")
            finding = Finding(
                "vault",
                f"{rel}: "
                + (
                    "temporary file of an interrupted write"
                    if temporary
                    else "no ledger record refers to "
                    "this artifact (its transaction never committed, or its events were lost with the ledger)"
                ),
                "remove it" if temporary else f"move it out of the vault, to {keep}/",
            )
            report.findings.append(finding)
            if repair:
                if temporary:
                    path.unlink(missing_ok=True)
                else:
                    target = keep / rel
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(path, target)
                finding.repaired = True


UNRECORDED = "unrecorded"
VERIFY_MARK = ".kavi-forge"


def check_verify_boxes(forge: Forge, report: DoctorReport, repair: bool) -> None:
    """Verify sandboxes (``$TMPDIR/kavi-verify-*``) this forge's killed verify left behind."""
    import tempfile

    from kavi.forge.doctor import Finding
    from kavi.gitstore.sandbox import remove_tree

    report.checked.append("leftover verify sandboxes")
    base = Path(tempfile.gettempdir())
    mine = str(forge.location.common_dir)
    for box in sorted(base.glob("kavi-verify-*")):
        try:
            owner = (box / VERIFY_MARK).read_text(encoding="utf-8").strip()
        except OSError:
            continue
        if owner != mine:
            continue
        finding = Finding(
            "leftover sandbox", f"{box} belongs to a verify-skill that was interrupted", "remove it"
        )
        report.findings.append(finding)
        if repair:
            remove_tree(box)
            finding.repaired = not os.path.lexists(box)
