"""write_note: write a markdown note into the vault and report its SHA-256."""

from __future__ import annotations

import hashlib

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
        text = f"# {input.title}\n\n{input.body}\n"
        data = text.encode("utf-8")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        written = target.relative_to(ctx.vault_root.resolve()).as_posix()
        return WriteNoteOutput(written_path=written, sha256=hashlib.sha256(data).hexdigest())
