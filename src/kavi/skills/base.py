"""The skill contract: what every skill module defines and what it receives.

A skill module ``<skills_dir>/<name>.py`` defines exactly one class
``<CamelCaseName>Skill`` that extends :class:`BaseSkill`::

    from kavi.skills.base import BaseSkill, SideEffect, SkillContext, SkillInput, SkillOutput

    class WriteNoteInput(SkillInput):
        path: str
        title: str
        body: str

    class WriteNoteOutput(SkillOutput):
        written_path: str
        sha256: str

    class WriteNoteSkill(BaseSkill[WriteNoteInput, WriteNoteOutput]):
        name = "write_note"
        description = "Write a markdown note into the vault"
        input_model = WriteNoteInput
        output_model = WriteNoteOutput
        side_effect_class = SideEffect.FILE_WRITE
        required_secrets = ()

        def execute(self, input: WriteNoteInput, ctx: SkillContext) -> WriteNoteOutput:
            target = ctx.resolve_write_path(input.path)
            ...

Rules the gates enforce: the class attributes above are plain assignments; the
input/output models' fields match the proposal's I/O schema (names and types);
``side_effect_class`` equals the proposal's; files are written only below
``ctx.resolve_write_path(...)``; no subprocesses, sockets or dynamic code.
Kavi validates the input before ``execute`` and the output after it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from kavi.errors import PolicyDenied
from kavi.policy.model import SideEffect

__all__ = [
    "BaseSkill",
    "SideEffect",
    "SkillContext",
    "SkillInput",
    "SkillOutput",
]


class SkillInput(BaseModel):
    """Base of a skill's input model. Unknown fields are rejected."""

    model_config = ConfigDict(extra="forbid")


class SkillOutput(BaseModel):
    """Base of a skill's output model. Unknown fields are rejected."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class SkillContext:
    """What a running skill receives besides its input.

    ``vault_root``: the forge's vault directory (absolute).
    ``allowed_write_paths``: absolute directories the skill may write below.
    ``read_roots``: absolute directories the skill may read below (besides the write
    paths); empty means the vault.
    ``protected``: directories below those that skills never see (Kavi's own
    artifacts, git and governance directories).
    ``secrets``: the values of the secrets the skill declared (TRUSTED skills only).

    At run time the operating system enforces the same: nothing outside these paths
    (and the Python runtime) exists for the skill. Use ``resolve_read_path`` and
    ``resolve_write_path`` to turn an input path into a file to open: they refuse what
    lies outside with a clear error instead of a missing file.
    """

    vault_root: Path
    allowed_write_paths: tuple[Path, ...] = ()
    secrets: Mapping[str, str] = field(default_factory=dict)
    read_roots: tuple[Path, ...] = ()
    protected: tuple[Path, ...] = ()

    def resolve_read_path(self, relative: str) -> Path:
        """Resolve ``relative`` against the vault root (symlinks followed); refuse anything
        outside the read roots (and the allowed write paths), or protected."""
        roots = (*(self.read_roots or (self.vault_root,)), *self.allowed_write_paths)
        return self._resolve(relative, "read", roots, "runtime.allowed_read_paths")

    def resolve_write_path(self, relative: str) -> Path:
        """Resolve ``relative`` against the vault root (symlinks followed); refuse anything
        outside the allowed write paths, or protected."""
        roots = self.allowed_write_paths or (self.vault_root,)
        return self._resolve(relative, "write", roots, "runtime.allowed_write_paths")

    def _resolve(self, relative: str, what: str, roots: tuple[Path, ...], setting: str) -> Path:
        candidate = Path(relative)
        if candidate.is_absolute() or "\x00" in relative:
            raise PolicyDenied(
                f"{what} path {relative!r} must be relative to the vault",
                remedy="pass a path like 'Inbox/AI/note.md'",
            )
        target = (self.vault_root / candidate).resolve()
        real = [p.resolve() for p in roots]
        if not any(target == root or root in target.parents for root in real):
            raise PolicyDenied(
                f"{what} path {relative!r} resolves outside the allowed {what} paths",
                why=f"{target} is not below {', '.join(str(r) for r in real)}",
                remedy=f"{what} inside the vault ({setting} in .kavi/policy.yaml)",
            )
        for guarded in (p.resolve() for p in self.protected):
            if target == guarded or guarded in target.parents:
                raise PolicyDenied(
                    f"{what} path {relative!r} is inside {guarded}, which skills never see",
                    why="Kavi's own artifacts, git and governance directories are out of every skill's reach",
                    remedy="use another path in the vault",
                )
        return target


InputT = TypeVar("InputT", bound=SkillInput)
OutputT = TypeVar("OutputT", bound=SkillOutput)


class BaseSkill(ABC, Generic[InputT, OutputT]):
    """Base class of every skill. Subclasses set the class attributes and ``execute``."""

    name: ClassVar[str]
    description: ClassVar[str]
    input_model: ClassVar[type[SkillInput]]
    output_model: ClassVar[type[SkillOutput]]
    side_effect_class: ClassVar[SideEffect]
    required_secrets: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def execute(self, input: InputT, ctx: SkillContext) -> OutputT:
        """Do the work. Called with a validated input; the output is validated after."""
