"""Test isolation: every test gets its own HOME, git config, temp dir and pinned identities."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pygit2
import pytest

PINNED_DATE = "@1767225600 +0000"  # 2026-01-01T00:00:00Z


@contextlib.contextmanager
def isolation(root: Path) -> Iterator[Path]:
    """A private HOME, TMPDIR and git identity under ``root``; restores everything after."""
    home = root / "home"
    home.mkdir(parents=True, exist_ok=True)
    tmp = root / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    saved_env = dict(os.environ)
    saved_tempdir = tempfile.tempdir
    old = pygit2.settings.search_path[pygit2.enums.ConfigLevel.GLOBAL]
    try:
        for key in list(os.environ):
            if key.startswith(("GIT_", "KAVI_", "SSH_", "ANTHROPIC_", "OPENAI_", "CLAUDE_")):
                del os.environ[key]
        os.environ.update(
            {
                "HOME": str(home),
                "TMPDIR": str(tmp),
                "GIT_CONFIG_NOSYSTEM": "1",
                "GIT_AUTHOR_NAME": "Ada Tester",
                "GIT_AUTHOR_EMAIL": "ada@example.com",
                "GIT_AUTHOR_DATE": PINNED_DATE,
                "GIT_COMMITTER_NAME": "Ada Tester",
                "GIT_COMMITTER_EMAIL": "ada@example.com",
                "GIT_COMMITTER_DATE": PINNED_DATE,
            }
        )
        tempfile.tempdir = str(tmp)
        (home / ".gitconfig").write_text(
            "[user]\n\tname = Ada Tester\n\temail = ada@example.com\n"
            "[init]\n\tdefaultBranch = main\n"
            "[advice]\n\tdetachedHead = false\n"
        )
        # libgit2 caches its global-config search path: point it at this HOME.
        pygit2.settings.search_path[pygit2.enums.ConfigLevel.GLOBAL] = str(home)
        yield home
    finally:
        pygit2.settings.search_path[pygit2.enums.ConfigLevel.GLOBAL] = old
        tempfile.tempdir = saved_tempdir
        os.environ.clear()
        os.environ.update(saved_env)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The full crash sweep runs only when asked for (``-m crash_sweep``)."""
    if "crash_sweep" in (config.getoption("markexpr", "") or ""):
        return
    skip = pytest.mark.skip(reason="the full crash sweep: run it with -m crash_sweep")
    for item in items:
        if "crash_sweep" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path) -> Iterator[Path]:
    with isolation(tmp_path) as home:
        yield home


@dataclass(frozen=True)
class Verified:
    repo: Path
    proposal_id: str
    key: Path


def _make_verified(root: Path) -> str:
    from support.forge import (
        WRITE_NOTE_DIR,
        kavi_json,
        make_forge,
        propose_write_note,
        ssh_key,
        use_signing_key,
    )

    key = ssh_key(root / "keys")
    use_signing_key(key)
    repo = make_forge(root)
    pid = propose_write_note(repo)
    kavi_json("build-skill", pid, "--backend", "files", "--from", str(WRITE_NOTE_DIR), cwd=repo)
    verified = kavi_json("verify-skill", pid, cwd=repo)
    assert verified["status"] == "PASSED", verified
    return pid


@pytest.fixture(scope="session")
def verified_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A forge (with its ledger, vault and signing key) whose write_note proposal is VERIFIED.

    Built once per session; every test gets its own copy (see ``verified``).
    """
    root = tmp_path_factory.mktemp("verified-template")
    with isolation(root):
        pid = _make_verified(root)
    return root, pid


@pytest.fixture
def verified(tmp_path: Path, verified_template: tuple[Path, str]) -> Verified:
    from support.forge import git, use_signing_key

    root, pid = verified_template
    shutil.copytree(root / "forge", tmp_path / "forge", symlinks=True)
    shutil.copytree(root / "keys", tmp_path / "keys")
    key = tmp_path / "keys" / "id_ed25519"
    use_signing_key(key)
    repo = tmp_path / "forge"
    git("config", "gpg.ssh.allowedSignersFile", str(repo / ".kavi/allowed_signers"), cwd=repo)
    return Verified(repo, pid, key)


@pytest.fixture(scope="session")
def hostile_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A forge of promoted skills that misbehave when run (see ``support/hostile.py``)."""
    from support.hostile import build_template

    return build_template(tmp_path_factory.mktemp("hostile"))


@pytest.fixture
def hostile(tmp_path: Path, hostile_template: Path, isolated_env: Path) -> Path:
    from support.hostile import copy_template

    return copy_template(hostile_template, tmp_path, isolated_env)


@pytest.fixture
def listener() -> Iterator[tuple[int, list[str]]]:
    """A loopback TCP service: its port and the peers it has seen."""
    from support.hostile import loopback_listener

    with loopback_listener() as found:
        yield found


@pytest.fixture(scope="session")
def mcp_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A forge with one promoted skill per side-effect class (``support/mcp_forge.py``)."""
    from support.mcp_forge import build_template

    return build_template(tmp_path_factory.mktemp("mcp-forge"))


@pytest.fixture
def mcp_forge(mcp_template: Path, tmp_path: Path) -> Path:
    from support.mcp_forge import copy_template

    return copy_template(mcp_template, tmp_path)
