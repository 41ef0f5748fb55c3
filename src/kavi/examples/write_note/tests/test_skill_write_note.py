"""Tests for the write_note skill."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from skills.write_note import WriteNoteInput, WriteNoteOutput, WriteNoteSkill

from kavi.errors import PolicyDenied
from kavi.skills.base import SkillContext


def _ctx(root: Path) -> SkillContext:
    return SkillContext(vault_root=root, allowed_write_paths=(root,))


def test_writes_markdown_note(tmp_path: Path) -> None:
    out = WriteNoteSkill().execute(
        WriteNoteInput(path="Inbox/AI/test.md", title="Hello", body="World"), _ctx(tmp_path)
    )
    assert isinstance(out, WriteNoteOutput)
    data = (tmp_path / "Inbox/AI/test.md").read_bytes()
    assert data == b"# Hello\n\nWorld\n"
    assert out.written_path == "Inbox/AI/test.md"
    assert out.sha256 == hashlib.sha256(data).hexdigest()


def test_refuses_paths_outside_the_vault(tmp_path: Path) -> None:
    with pytest.raises(PolicyDenied):
        WriteNoteSkill().execute(WriteNoteInput(path="../escape.md", title="x", body="y"), _ctx(tmp_path))


def test_declares_its_contract() -> None:
    assert WriteNoteSkill.name == "write_note"
    assert WriteNoteSkill.side_effect_class.value == "FILE_WRITE"
