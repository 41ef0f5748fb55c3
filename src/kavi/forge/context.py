"""The forge a command works on: repository, configuration, policy and ledger, opened lazily."""

from __future__ import annotations

import getpass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from kavi.config import ForgeConfig, parse_config
from kavi.errors import ConfigError, NotAForgeError
from kavi.layout import CONFIG_FILE, POLICY_FILE, SIGNERS_FILE
from kavi.locate import RepoLocation, locate

if TYPE_CHECKING:
    from kavi.artifacts.vault import Vault
    from kavi.gitstore.repo import GitRepo
    from kavi.ledger.store import Ledger
    from kavi.policy.model import Policy


class Forge:
    """One forge repository. Properties open what they need on first use."""

    def __init__(self, location: RepoLocation) -> None:
        self.location = location
        self._ledger: Ledger | None = None

    @property
    def is_forge(self) -> bool:
        return (self.workdir / CONFIG_FILE).exists()

    @classmethod
    def open(cls, start: Path | None = None, *, any_repository: bool = False) -> Forge:
        """The forge containing ``start``; with ``any_repository``, also a git repository that
        is not (yet) a forge (for ``doctor``, which can still see git's and Kavi's leftovers)."""
        forge = cls(locate(start))
        if not any_repository and not forge.is_forge:
            raise NotAForgeError(
                f"{forge.workdir} is not a Kavi forge (no {CONFIG_FILE})",
                remedy="run `git kavi init` here first",
            )
        return forge

    # -- basic parts -------------------------------------------------------------

    @property
    def workdir(self) -> Path:
        return self.location.workdir

    @cached_property
    def repo(self) -> GitRepo:
        from kavi.gitstore.repo import GitRepo

        return GitRepo.open(self.location.workdir)

    @cached_property
    def config(self) -> ForgeConfig:
        """The working tree's ``.kavi/config.yaml`` (cached by content)."""
        import hashlib

        from kavi import cache
        from kavi.config import load_config

        path = self.workdir / CONFIG_FILE
        try:
            key = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            return load_config(self.workdir)
        cached = cache.get(self.kavi_dir, "config", key)
        if cached is not None:
            try:
                return ForgeConfig.model_validate_json(cached)
            except ValueError:
                pass
        config = load_config(self.workdir)
        cache.put(self.kavi_dir, "config", key, config.model_dump_json())
        return config

    @cached_property
    def governing_commit(self) -> str | None:
        """The commit governance is read from: the newest commit of the target branch whose
        whole history is sanctioned from the pinned trust root (see :mod:`kavi.forge.trust`)."""
        from kavi.forge.trust import governing_commit

        return governing_commit(self)

    def governance_text(self, path: str) -> str | None:
        """A governance file as committed at the governing commit (None if absent)."""
        commit = self.governing_commit
        if commit is None:
            return None
        data = self.repo.file_bytes(commit, path)
        return None if data is None else data.decode("utf-8", "replace")

    @cached_property
    def committed_config(self) -> ForgeConfig:
        text = self.governance_text(CONFIG_FILE)
        if text is None and self.repo.branch_tip(self.config.target_branch) is None:
            branch = self.config.target_branch
            raise ConfigError(
                f"the target branch {branch} does not exist in this clone",
                why=f"{CONFIG_FILE} names {branch} as the branch governance is read from",
                remedy=f"create it from the remote: git branch {branch} origin/{branch}",
            )
        if text is None:
            raise ConfigError(
                f"{CONFIG_FILE} is not committed on branch {self.config.target_branch}",
                remedy="run `git kavi init` (it commits the governance files)",
            )
        return parse_config(text)

    @cached_property
    def policy(self) -> Policy:
        """The policy committed at the governing commit (local edits do not count).

        Cached per governing commit, so ``run-skill`` needs neither pygit2 nor YAML when the
        target branch has not moved since its history was last verified.
        """
        from kavi import cache
        from kavi.forge.trust import cached_governing
        from kavi.policy.model import Policy, parse_policy

        key = cached_governing(self)
        if key is not None:
            found = cache.get(self.kavi_dir, "policy", key)
            if found is not None:
                try:
                    return Policy.model_validate_json(found)
                except ValueError:
                    pass
        text = self.governance_text(POLICY_FILE)
        policy = Policy() if text is None else parse_policy(text)
        if self.governing_commit is not None:
            cache.put(self.kavi_dir, "policy", self.governing_commit, policy.model_dump_json())
        return policy

    def allowed_signers(self, commit: str | None = None) -> str:
        """``.kavi/allowed_signers`` at ``commit`` (default: the governing commit)."""
        if commit is None:
            return self.governance_text(SIGNERS_FILE) or ""
        data = self.repo.file_bytes(commit, SIGNERS_FILE)
        return "" if data is None else data.decode("utf-8", "replace")

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            from kavi.ledger.store import Ledger

            self._ledger = Ledger.open(self.location.ledger_path, mark=self.location.ledger_mark)
        return self._ledger

    def use_ledger(self, ledger: Ledger) -> None:
        """Work on this ledger (a private read-only copy) instead of the one at ``ledger_path``."""
        self.close()
        self._ledger = ledger

    def vault(self, secrets: list[str] | None = None) -> Vault:
        from kavi.artifacts.vault import Vault

        return Vault(self.workdir, self.config.vault_dir, secrets or [])

    def close(self) -> None:
        if self._ledger is not None:
            self._ledger.close()
            self._ledger = None

    # -- identity ------------------------------------------------------------------

    @cached_property
    def actor(self) -> str:
        """Who is acting: ``Name <email>`` as git would sign a commit, else the OS user."""
        import re
        import subprocess

        try:
            ident = subprocess.run(
                ["git", "var", "GIT_COMMITTER_IDENT"],
                cwd=self.workdir,
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            ).stdout
        except OSError:
            ident = ""
        m = re.match(r"^(.*?) <([^>]*)>", ident)
        if m and m.group(1) and m.group(2):
            return f"{m.group(1)} <{m.group(2)}>"
        try:
            return getpass.getuser()
        except (KeyError, OSError):
            return "unknown"

    @property
    def kavi_dir(self) -> Path:
        return self.location.kavi_dir
