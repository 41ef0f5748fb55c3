# ruff: noqa: F811  (the fixtures imported from test_hook are requested by parameter name)
"""The server hook refuses a rewind or deletion of a protected branch before Python starts.

The shim `git kavi hooks install --server` writes carries the refusals of
``kavi.hooks.quick.refusals`` as shell (rendered from the same rejections). These tests
feed the same updates to the installed shim and to the Python hook and compare what the
pusher would read, word for word; a stand-in ``KAVI_PYTHON`` shows whether Python was
started at all. Everything the shell does not refuse must reach Python.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.forge import git, kavi, kavi_json, ssh_key
from test_hook import (  # noqa: F401  (fixtures are looked up by name)
    Served,
    _commit_all,
    promoted,
    served,
    served_template,
)

pytestmark = pytest.mark.slow

ZERO = "0" * 40


def _env(origin: Path, python: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    return {**env, "GIT_DIR": str(origin), "KAVI_PYTHON": python}


def _stand_in(tmp_path: Path) -> tuple[str, Path]:
    """A KAVI_PYTHON that only notes it was started (and fails, so nothing is accepted)."""
    marker = tmp_path / "python-started"
    script = tmp_path / "stand-in-python"
    script.write_text(f"#!/bin/sh\ncat >/dev/null\necho started >> '{marker}'\nexit 99\n")
    script.chmod(0o755)
    return str(script), marker


def _shim(origin: Path, updates: str, python: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(origin / "hooks" / "pre-receive")],
        input=updates,
        cwd=origin,
        env=_env(origin, python),
        capture_output=True,
        text=True,
        timeout=60,
    )


def _python(origin: Path, updates: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kavi.hooks.pre_receive"],
        input=updates,
        cwd=origin,
        env=_env(origin, sys.executable),
        capture_output=True,
        text=True,
        timeout=60,
    )


def _tips(origin: Path) -> tuple[str, str]:
    tip = git("rev-parse", "refs/heads/main", cwd=origin)
    return tip, git("rev-parse", "refs/heads/main~1", cwd=origin)


def test_a_rewind_is_refused_by_the_shell_in_the_python_hooks_words(promoted: Served, tmp_path: Path) -> None:
    python, marker = _stand_in(tmp_path)
    tip, parent = _tips(promoted.origin)
    updates = f"{tip} {parent} refs/heads/main\n"
    by_shell, by_python = _shim(promoted.origin, updates, python), _python(promoted.origin, updates)
    assert by_shell.returncode == by_python.returncode == 1
    assert by_shell.stderr == by_python.stderr, (by_shell.stderr, by_python.stderr)
    assert "rule:    non-fast-forward" in by_shell.stderr and f"commit:  {parent}" in by_shell.stderr
    assert f"({tip[:12]} is not an ancestor of {parent[:12]})" in by_shell.stderr
    assert not marker.exists()  # Python was never started


def test_a_deletion_and_several_updates_read_the_same(promoted: Served, tmp_path: Path) -> None:
    python, marker = _stand_in(tmp_path)
    tip, parent = _tips(promoted.origin)
    for updates in (
        f"{tip} {ZERO} refs/heads/main\n",
        f"{ZERO} {parent} refs/heads/feature\n{tip} {parent} refs/heads/main\n",
    ):
        by_shell, by_python = _shim(promoted.origin, updates, python), _python(promoted.origin, updates)
        assert by_shell.returncode == by_python.returncode == 1
        assert by_shell.stderr == by_python.stderr, (by_shell.stderr, by_python.stderr)
        assert "push rejected (1 problem(s))" in by_shell.stderr
    assert not marker.exists()


def test_what_the_shell_does_not_refuse_reaches_python(promoted: Served, tmp_path: Path) -> None:
    python, marker = _stand_in(tmp_path)
    origin = promoted.origin
    tip, parent = _tips(origin)
    # a fast-forward, a new branch, a new protected branch: Python judges them
    for updates in (
        f"{parent} {tip} refs/heads/main\n",
        f"{ZERO} {tip} refs/heads/feature\n",
        f"{ZERO} {tip} refs/heads/main\n",
    ):
        marker.unlink(missing_ok=True)
        res = _shim(origin, updates, python)
        assert res.returncode == 99 and marker.exists(), (updates, res.stderr)
    # an alias of main (a symbolic ref kept after a rename) is not main for the shell either
    git("symbolic-ref", "refs/heads/master", "refs/heads/main", cwd=origin)
    kavi_json("hooks", "install", "--server", str(origin), "--protect", "main", "--protect", "master",
              cwd=promoted.repo)  # fmt: skip
    marker.unlink(missing_ok=True)
    res = _shim(origin, f"{tip} {parent} refs/heads/master\n", python)
    assert res.returncode == 99 and marker.exists(), res.stderr
    # a hook that is not configured: Python says so, in its own words
    (origin / "kavi" / "hook.json").rename(origin / "kavi" / "hook.json.away")
    marker.unlink(missing_ok=True)
    res = _shim(origin, f"{tip} {parent} refs/heads/main\n", python)
    assert res.returncode == 99 and marker.exists(), res.stderr


def test_a_real_forced_push_is_refused_without_python(promoted: Served, tmp_path: Path) -> None:
    python, marker = _stand_in(tmp_path)
    repo = promoted.repo
    before = git("rev-parse", "refs/heads/main", cwd=promoted.origin)
    git("reset", "-q", "--hard", "HEAD~1", cwd=repo)
    (repo / "x.txt").write_text("rewritten\n")
    _commit_all(repo, "rewrite")
    res = subprocess.run(
        ["git", "push", "--force", "origin", "main"],
        cwd=repo,
        env={**os.environ, "KAVI_PYTHON": python},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode != 0 and "remote: kavi: REJECTED refs/heads/main" in res.stderr
    assert "rule:    non-fast-forward" in res.stderr and "pre-receive hook declined" in res.stderr
    assert not marker.exists()
    assert git("rev-parse", "refs/heads/main", cwd=promoted.origin) == before


def test_protected_names_with_shell_characters_are_literal(tmp_path: Path) -> None:
    from kavi.hooks.quick import shell_refusals

    text = shell_refusals(["main", "rel/v1.0", "a$b", "c'd"])
    cases = next(line for line in text.splitlines() if "case $ref in " in line and "|" in line)
    assert "'refs/heads/a$b'|" in cases and "'refs/heads/c'\"'\"'d'|" in cases
    assert "refs/heads/main|" in cases and "refs/heads/rel/v1.0)" in cases
    checked = subprocess.run(["sh", "-n"], input=f"input=x\n{text}", capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr


def test_any_branch_name_git_allows_can_be_protected(promoted: Served, tmp_path: Path) -> None:
    python, marker = _stand_in(tmp_path)
    origin = promoted.origin
    kavi_json("hooks", "install", "--server", str(origin), "--protect", "main", "--protect", "rel@@1%s",
              cwd=promoted.repo)  # fmt: skip
    tip, parent = _tips(origin)
    git("update-ref", "refs/heads/rel@@1%s", tip, cwd=origin)
    updates = f"{tip} {parent} refs/heads/rel@@1%s\n"
    by_shell, by_python = _shim(origin, updates, python), _python(origin, updates)
    assert by_shell.returncode == by_python.returncode == 1
    assert by_shell.stderr == by_python.stderr and "protected branch rel@@1%s" in by_shell.stderr
    assert not marker.exists()


def test_a_name_that_is_not_a_branch_changes_nothing(tmp_path: Path) -> None:
    bare = tmp_path / "srv.git"
    git("init", "-q", "--bare", str(bare), cwd=tmp_path)
    admin = bare / "hooks" / "pre-receive"
    admin.write_text("#!/bin/sh\nexit 1\n")
    admin.chmod(0o755)
    signers = tmp_path / "signers"
    public = ssh_key(tmp_path / "keys").with_suffix(".pub").read_text()
    signers.write_text(f"ada@example.com {public}")
    res = kavi("hooks", "install", "--server", str(bare), "--trust", str(signers), "--protect", "a~b",
               "--format", "json", cwd=tmp_path)  # fmt: skip
    assert res.code == 2 and "not a branch name git allows" in res.output
    assert admin.read_text() == "#!/bin/sh\nexit 1\n"
    assert not (bare / "hooks" / "pre-receive.chained").exists()
    assert not (bare / "kavi" / "hook.json").exists()
