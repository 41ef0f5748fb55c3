"""Forge configuration: the typed form of ``.kavi/config.yaml`` and the files next to it.

The governance directory ``.kavi/`` is committed in the forge repository:

* ``config.yaml`` — paths, branches, backends (this module);
* ``policy.yaml`` — scanner and runtime rules (:mod:`kavi.policy.model`);
* ``allowed_signers`` — ssh-keygen allowed-signers file of keys that may promote.
"""

from __future__ import annotations

import keyword
import re
from pathlib import Path, PurePosixPath
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from kavi.errors import ConfigError
from kavi.layout import CONFIG_FILE


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


def _relative_dir(value: str) -> str:
    p = PurePosixPath(value.strip().rstrip("/") or ".")
    if p.is_absolute() or ".." in p.parts or "\\" in value:
        raise ValueError(f"must be a relative path inside the repository, got {value!r}")
    return p.as_posix()


# What Claude Code authenticates with (secrets: redacted wherever Kavi writes). A
# `claude login` session lives in the user's home, which the backend never sees.
CLAUDE_CREDENTIALS = ("ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_AUTH_TOKEN")
# Not secrets: where the model is and how to reach it.
CLAUDE_PASSTHROUGH = (
    "ANTHROPIC_BASE_URL",
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "NO_PROXY",
    "https_proxy",
    "http_proxy",
    "no_proxy",
    "NODE_EXTRA_CA_CERTS",
    "SSL_CERT_FILE",
    "CLAUDE_CODE_USE_BEDROCK",
    "CLAUDE_CODE_USE_VERTEX",
    "AWS_REGION",
    "CLOUD_ML_REGION",
    "ANTHROPIC_VERTEX_PROJECT_ID",
)


class ClaudeBackendConfig(_Strict):
    command: str = "claude"
    credential_env: list[str] = Field(default_factory=lambda: list(CLAUDE_CREDENTIALS))
    # passed to the CLI as they are, and not treated as secrets (D039)
    env_passthrough: list[str] = Field(default_factory=lambda: list(CLAUDE_PASSTHROUGH))
    model: str | None = None
    max_turns: int = Field(default=40, ge=1, le=500)
    max_budget_usd: float = Field(default=2.0, gt=0)
    timeout_seconds: float = Field(default=900.0, gt=0)
    extra_args: list[str] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _default_passthrough(cls, data: object) -> object:
        """A forge that listed a default pass-through name as a credential (the only way
        before env_passthrough existed) keeps it a credential."""
        if isinstance(data, dict) and "env_passthrough" not in data:
            credentials = data.get("credential_env", CLAUDE_CREDENTIALS)
            if isinstance(credentials, (list, tuple)):
                data = {**data, "env_passthrough": [n for n in CLAUDE_PASSTHROUGH if n not in credentials]}
        return data

    @model_validator(mode="after")
    def _env_names(self) -> ClaudeBackendConfig:
        from kavi.backends.env import passthrough_problem

        both = sorted(set(self.credential_env) & set(self.env_passthrough))
        if both:
            raise ValueError(
                f"{', '.join(both)} cannot be both a credential (credential_env) and passed "
                "through as a non-secret (env_passthrough); keep it in one list"
            )
        for name in (*self.credential_env, *self.env_passthrough):
            problem = passthrough_problem(name)
            if problem:
                raise ValueError(f"environment variable {name!r} cannot be given to the backend: {problem}")
        return self


class OpenAIBackendConfig(_Strict):
    base_url: str = "http://localhost:8000/v1"
    model: str = "default"
    api_key_env: str | None = "OPENAI_API_KEY"
    timeout_seconds: float = Field(default=300.0, gt=0)
    connect_timeout_seconds: float = Field(default=10.0, gt=0)
    max_tokens: int = Field(default=8192, ge=256)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)


class FilesBackendConfig(_Strict):
    timeout_seconds: float = Field(default=60.0, gt=0)


class BackendsConfig(_Strict):
    default: Literal["claude", "openai", "files"] = "claude"
    claude: ClaudeBackendConfig = Field(default_factory=ClaudeBackendConfig)
    openai: OpenAIBackendConfig = Field(default_factory=OpenAIBackendConfig)
    files: FilesBackendConfig = Field(default_factory=FilesBackendConfig)

    def credential_names(self, backend: str | None = None) -> set[str]:
        """The credential variables ``backend`` may see (its own, never another's); with
        no backend, all of them (to redact them all)."""
        names: set[str] = set()
        if backend in (None, "claude"):
            names.update(self.claude.credential_env)
        if backend in (None, "openai") and self.openai.api_key_env:
            names.add(self.openai.api_key_env)
        return names

    def passthrough_names(self, backend: str | None = None) -> set[str]:
        """The non-secret variables ``backend`` is given as they are (base URL, proxies…)."""
        return set(self.claude.env_passthrough) if backend in (None, "claude") else set()


class AdvisorConfig(_Strict):
    """``research.advisor``: an OpenAI-compatible server asked for advice on a failure."""

    base_url: str = "http://localhost:8000/v1"
    model: str = "default"
    api_key_env: str | None = None
    timeout_seconds: float = Field(default=60.0, gt=0, le=3600)
    connect_timeout_seconds: float = Field(default=5.0, gt=0, le=600)
    max_input_chars: int = Field(default=16_000, ge=2_000, le=400_000)
    max_tokens: int = Field(default=2048, ge=128, le=65_536)

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError(f"must be an http(s) URL, got {v!r}")
        return v.rstrip("/")


class ResearchConfig(_Strict):
    """``research``: the research → retry loop (``research-skill``, ``forge``)."""

    advisor: AdvisorConfig | None = None  # no advisor: deterministic findings only
    repeat_limit: int = Field(default=3, ge=2, le=50)  # the same failure kind K times in a row escalates
    max_attempts: int = Field(default=5, ge=1, le=100)  # forge's default --max-attempts


class ForgeConfig(_Strict):
    """``.kavi/config.yaml``."""

    version: Literal[1] = 1
    skills_dir: str = "skills"
    tests_dir: str = "tests"
    skill_package: str = "skills"
    vault_dir: str = "vault_out"
    target_branch: str = "main"
    protected_branches: list[str] = Field(default_factory=list)
    sandbox_root: str | None = None
    verify_timeout_seconds: float = Field(default=300.0, gt=0)
    # the most all builds of one proposal may cost together (None: no limit); a build
    # that would start beyond it is refused
    proposal_budget_usd: float | None = Field(default=None, gt=0)
    backends: BackendsConfig = Field(default_factory=BackendsConfig)
    research: ResearchConfig = Field(default_factory=ResearchConfig)

    @field_validator("skills_dir", "tests_dir", "vault_dir")
    @classmethod
    def _dirs(cls, v: str) -> str:
        return _relative_dir(v)

    @field_validator("skill_package")
    @classmethod
    def _package(cls, v: str) -> str:
        parts = v.split(".") if v else []
        if not parts or not all(p.isidentifier() and not keyword.iskeyword(p) for p in parts):
            raise ValueError(f"must be a dotted Python package name, got {v!r}")
        return v

    @field_validator("target_branch")
    @classmethod
    def _branch(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9._/-]+", v) or ".." in v or v.startswith(("/", "-")):
            raise ValueError(f"not a valid branch name: {v!r}")
        return v

    @property
    def protected(self) -> list[str]:
        """Branches the server hook protects (always includes the target branch)."""
        out = [self.target_branch]
        out.extend(b for b in self.protected_branches if b not in out)
        return out


def parse_config(text: str, *, source: str = CONFIG_FILE) -> ForgeConfig:
    from kavi.yamlio import load_yaml_model

    return load_yaml_model(ForgeConfig, text, source=source, error=ConfigError)


def load_config(workdir: Path) -> ForgeConfig:
    path = workdir / CONFIG_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{CONFIG_FILE} not found in {workdir}",
            why="this repository has not been initialised as a Kavi forge",
            remedy="run `git kavi init` at the top of the repository",
        ) from None
    return parse_config(text)
