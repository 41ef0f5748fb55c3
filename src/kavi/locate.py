"""Find the forge repository from a directory, without importing pygit2.

Discovery is pure path work (``.git`` directory or gitfile, ``commondir``), so that
fast commands such as ``run-skill`` and ``status`` do not pay pygit2's import cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kavi.errors import NotAForgeError


@dataclass(frozen=True)
class RepoLocation:
    """Where a (non-bare) git repository keeps its files."""

    workdir: Path  # top of the working tree
    git_dir: Path  # this worktree's git dir
    common_dir: Path  # shared git dir (== git_dir outside linked worktrees)

    @property
    def kavi_dir(self) -> Path:
        """Kavi's private state: ``<git-common-dir>/kavi``."""
        return self.common_dir / "kavi"

    @property
    def ledger_path(self) -> Path:
        return self.kavi_dir / "ledger.db"

    @property
    def ledger_mark(self) -> Path:
        """Where the ledger notes its last event (outside ``kavi/``, so deleting the ledger —
        or the whole directory — cannot take it along): see :mod:`kavi.ledger.mark`."""
        return self.common_dir / "kavi-ledger.mark"


def _read_gitfile(path: Path) -> Path | None:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    if not text.startswith("gitdir:"):
        return None
    target = Path(text[len("gitdir:") :].strip())
    if not target.is_absolute():
        target = (path.parent / target).resolve()
    return target


def _common_dir(git_dir: Path) -> Path:
    commondir = git_dir / "commondir"
    if commondir.is_file():
        rel = commondir.read_text(encoding="utf-8").strip()
        return (git_dir / rel).resolve()
    return git_dir


def locate(start: Path | None = None) -> RepoLocation:
    """Return the repository containing ``start`` (default: the current directory)."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        dotgit = candidate / ".git"
        if dotgit.is_dir() and (dotgit / "HEAD").exists():
            git_dir = dotgit
        elif dotgit.is_file():
            target = _read_gitfile(dotgit)
            if target is None or not target.is_dir():
                continue
            git_dir = target
        else:
            continue
        return RepoLocation(workdir=candidate, git_dir=git_dir, common_dir=_common_dir(git_dir))
    raise NotAForgeError(
        f"not inside a git repository: {here}",
        why="Kavi keeps its ledger and governance files inside a git repository.",
        remedy="cd into a git repository (or run `git init`) and then `git kavi init`.",
    )
