"""The hook's fast lane reads git's answer as git prints it, and stops git when it has seen enough."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import pytest

from kavi.hooks import quick
from support.forge import git


@pytest.fixture
def wide(tmp_path: Path) -> tuple[Path, list[str]]:
    """A repository whose commits each change many top-level files (oldest first)."""
    repo = tmp_path / "wide"
    repo.mkdir()
    git("init", "-q", "-b", "main", str(repo), cwd=tmp_path)
    commits = []
    for round_ in range(3):
        for i in range(300):
            (repo / f"f{i:04d}.txt").write_text(f"{round_}\n")
        git("add", "-A", cwd=repo)
        git("commit", "-q", "-m", f"round {round_}", cwd=repo)
        commits.append(git("rev-parse", "HEAD", cwd=repo))
    return repo, commits


def _diff_tree(commits: list[str]) -> contextlib.closing:  # type: ignore[type-arg]
    stdin = "".join(f"{c}\n" for c in commits).encode()
    return contextlib.closing(
        quick._streamed("diff-tree", "--stdin", "--no-commit-id", "--name-only", "--root", "-z", stdin=stdin)
    )


def test_every_name_comes_through(wide: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    repo, commits = wide
    monkeypatch.chdir(repo)
    with _diff_tree(commits) as names:
        got = list(names)
    assert len(got) == 900 and got[0] == b"f0000.txt" and got[-1] == b"f0299.txt"


def test_stopping_early_stops_git(wide: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    repo, commits = wide
    monkeypatch.chdir(repo)
    with _diff_tree(commits * 200) as names:  # far more output than one pipe holds
        assert next(iter(names)) == b"f0000.txt"
    assert not _git_children()  # git is gone (killed and reaped), not left writing to nobody


def _git_children() -> list[int]:
    """This process's children that are git (running or not yet reaped)."""
    found = []
    for pid in os.listdir("/proc"):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except (OSError, ValueError):
            continue
        name, rest = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()
        if name == "git" and int(rest[1]) == os.getpid():
            found.append(int(pid))
    return found


def test_git_failing_or_hanging_hands_over_to_the_full_check(
    wide: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, _ = wide
    monkeypatch.chdir(repo)
    failing = quick._streamed("rev-parse", "--verify", "no-such-branch", stdin=b"")
    with pytest.raises(quick._GitFailed), contextlib.closing(failing):
        list(failing)
    start = time.monotonic()
    hang = quick._streamed("-c", "alias.hang=!exec sleep 30", "hang", stdin=b"", timeout=0.5)
    with pytest.raises(quick._GitFailed), contextlib.closing(hang):
        list(hang)
    assert time.monotonic() - start < 10
