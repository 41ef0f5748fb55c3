"""The invariant checker on its own: structure, schema, declarative modules, extended safety."""

from __future__ import annotations

import pytest

from kavi.policy.invariants import Expectation, check_skill, check_test, model_names
from support.variants import SKILL, TEST, variant

EXPECT = Expectation(
    name="write_note",
    class_name="WriteNoteSkill",
    side_effect="FILE_WRITE",
    io_schema={
        "input": {"path": "str", "title": "str", "body": "str"},
        "output": {"written_path": "str", "sha256": "str"},
    },
    secrets=(),
)


def _rules(source: str) -> set[str]:
    return {f.rule for f in check_skill(source.encode(), "skills/write_note.py", EXPECT)}


def test_the_example_skill_conforms() -> None:
    assert check_skill(SKILL.encode(), "skills/write_note.py", EXPECT) == []
    assert check_test(TEST.encode(), "tests/test_skill_write_note.py") == []
    assert model_names(SKILL.encode(), "WriteNoteSkill") == ("WriteNoteInput", "WriteNoteOutput")


@pytest.mark.parametrize(
    ("old", "new", "rule"),
    [
        ("class WriteNoteSkill(", "class NoteSkill(", "structure"),
        ('    name = "write_note"\n', '    name = "other"\n', "structure"),
        ("    required_secrets = ()\n", "", "structure"),
        ("SideEffect.FILE_WRITE", "SideEffect.NETWORK", "side-effect"),
        ("    required_secrets = ()\n", '    required_secrets = ("TOKEN",)\n', "secrets"),
        ("    body: str\n", "    body: int\n", "schema"),
        ("    body: str\n", "", "schema"),
        ("    sha256: str\n", "    sha256: str\n    extra: bool\n", "schema"),
        ("import hashlib\n", "import hashlib\nimport kavi.forge.run\n", "kavi-internal"),
        ("import hashlib\n", "import hashlib\nfrom kavi.ledger import store\n", "kavi-internal"),
        ("import hashlib\n", "import hashlib\nprint('import time')\n", "module-code"),
        ("import hashlib\n", "import hashlib\nX = __import__('os')\n", "dynamic-import"),
        ("class WriteNoteInput(SkillInput):", "class WriteNoteInput:", "model"),
    ],
)
def test_each_violation_is_named(old: str, new: str, rule: str) -> None:
    assert old in SKILL
    assert rule in _rules(SKILL.replace(old, new, 1))


def test_optional_and_typing_spellings_are_normalised() -> None:
    expect = Expectation(
        "write_note",
        "WriteNoteSkill",
        "FILE_WRITE",
        {
            "input": {"path": "str", "title": "str | None", "body": "list[str]"},
            "output": {"written_path": "str", "sha256": "str"},
        },
        (),
    )
    source = SKILL.replace("    title: str\n", "    title: Optional[str] = None\n").replace(
        "    body: str\n", "    body: List[str]\n"
    )
    assert check_skill(source.encode(), "skills/write_note.py", expect) == []


def test_unparsable_files_fail_closed() -> None:
    (finding,) = check_skill(b"def broken(:\n", "skills/write_note.py", EXPECT)
    assert finding.rule == "parse" and finding.line == 1


def test_test_file_must_define_tests_and_stay_declarative() -> None:
    rules = {f.rule for f in check_test(b"import os\nos.getcwd()\n", "tests/test_skill_write_note.py")}
    assert rules == {"module-code", "tests"}
    _skill, probe_test = variant("good")
    assert check_test(probe_test.encode(), "t.py") == []
