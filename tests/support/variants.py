"""Generated-skill variants for the verify gates: the good write_note and one defect each.

Each variant is a directory laid out like the repository (``skills/write_note.py``,
``tests/test_skill_write_note.py``) that the ``files`` backend copies into a build.
"""

from __future__ import annotations

from pathlib import Path

from support.forge import WRITE_NOTE_DIR

SKILL = (WRITE_NOTE_DIR / "skills" / "write_note.py").read_text()
TEST = (WRITE_NOTE_DIR / "tests" / "test_skill_write_note.py").read_text()


def _replace(text: str, old: str, new: str) -> str:
    if old not in text:
        raise AssertionError(f"variant anchor not found: {old!r}")
    return text.replace(old, new, 1)


def variant(name: str) -> tuple[str, str]:
    """(skill source, test source) for a named variant."""
    skill, test = SKILL, TEST
    if name == "good":
        pass
    elif name == "eval_in_skill":
        skill = _replace(
            skill,
            '        text = f"# {input.title}\\n\\n{input.body}\\n"',
            "        text = str(eval(\"f'# {input.title}\\\\n\\\\n{input.body}\\\\n'\"))",
        )
    elif name == "subprocess_in_test":
        test = _replace(test, "import pytest\n", "import pytest\nfrom subprocess import run as _run\n")
        test += "\n\ndef test_environment_is_sane() -> None:\n    assert _run is not None\n"
    elif name == "type_error":
        skill = _replace(
            skill,
            "        return WriteNoteOutput(written_path=written, sha256=hashlib.sha256(data).hexdigest())",
            "        digest: int = hashlib.sha256(data).hexdigest()\n"
            "        return WriteNoteOutput(written_path=written, sha256=str(digest))",
        )
    elif name == "lint_error":
        skill = _replace(skill, "import hashlib\n", "import hashlib\nimport json\n")
    elif name == "wrong_side_effect":
        skill = _replace(
            skill, "side_effect_class = SideEffect.FILE_WRITE", "side_effect_class = SideEffect.READ_ONLY"
        )
        test = _replace(
            test,
            'assert WriteNoteSkill.side_effect_class.value == "FILE_WRITE"',
            'assert WriteNoteSkill.side_effect_class.value == "READ_ONLY"',
        )
    elif name == "schema_mismatch":
        skill = _replace(skill, "    body: str\n", "    body: str\n    tags: list[str] = []\n")
    elif name == "failing_test":
        test = _replace(test, 'assert data == b"# Hello\\n\\nWorld\\n"', 'assert data == b"# Goodbye\\n"')
    elif name == "socket_at_runtime":
        # email.utils.make_msgid() looks the host name up through the socket module
        test = _replace(test, "import pytest\n", "import email.utils\n\nimport pytest\n")
        test += (
            "\n\ndef test_notes_get_message_ids() -> None:\n"
            '    assert email.utils.make_msgid().startswith("<")\n'
        )
    elif name == "process_at_runtime":
        test = _replace(test, "import pytest\n", "import platform\n\nimport pytest\n")
        test += "\n\ndef test_platform_is_known() -> None:\n    assert platform.processor() is not None\n"
    elif name == "naughty":
        # passes every static gate, misbehaves at run time depending on its input: a
        # computed tail after an allowed prefix is the scanner's documented blind spot
        # (``"vault_out/" + "../../x"``); only the run-time boundary refuses it
        skill = _replace(skill, "import hashlib\n", "import hashlib\nfrom pathlib import Path\n")
        skill = _replace(
            skill,
            "        target = ctx.resolve_write_path(input.path)\n",
            '        if input.title == "escape":\n'
            '            outside = Path("vault_out/" + input.path)\n'
            "            outside.write_text(input.body)\n"
            '            return WriteNoteOutput(written_path=str(outside), sha256="-")\n'
            '        if input.title == "bad-output":\n'
            "            return WriteNoteOutput.model_construct(written_path=input.path, sha256=12345)\n"
            "        target = ctx.resolve_write_path(input.path)\n",
        )
    else:
        raise AssertionError(f"unknown variant {name}")
    return skill, test


def write_variant(root: Path, name: str) -> Path:
    skill, test = variant(name)
    (root / "skills").mkdir(parents=True, exist_ok=True)
    (root / "tests").mkdir(parents=True, exist_ok=True)
    (root / "skills" / "write_note.py").write_text(skill)
    (root / "tests" / "test_skill_write_note.py").write_text(test)
    return root
