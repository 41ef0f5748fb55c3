"""The rules for skill code reach both readers: every build packet and the README."""

from __future__ import annotations

from pathlib import Path

from kavi.config import ForgeConfig
from kavi.forge.packet import render_packet
from kavi.forge.spec import skill_paths
from kavi.ledger.models import Proposal
from kavi.policy.contract import SKILL_CODE_RULES
from kavi.policy.model import Policy, SideEffect

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_build_packet_states_the_rules_for_skill_code() -> None:
    proposal = Proposal(
        id="0" * 32,
        name="write_note",
        description="Write a note",
        io_schema={"input": {"path": "str"}, "output": {"written_path": "str"}},
        side_effect_class=SideEffect.FILE_WRITE,
        created_at="2026-01-01T00:00:00Z",
        updated_at="2026-01-01T00:00:00Z",
    )
    packet = render_packet(
        proposal=proposal,
        paths=skill_paths(ForgeConfig(), "write_note"),
        policy=Policy(),
        base_commit="0" * 40,
        target_branch="main",
        attempt=1,
        feedback=None,
    )
    for rule in SKILL_CODE_RULES:
        assert rule in packet
    assert "resolve_write_path" in packet and "ctx.secrets" in packet


def test_the_readme_states_the_same_rules() -> None:
    text = " ".join(README.read_text(encoding="utf-8").split())
    assert "## Writing a skill by hand" in README.read_text(encoding="utf-8")
    for rule in SKILL_CODE_RULES:
        assert " ".join(rule.split()) in text, rule[:60]


def test_the_readme_example_skill_passes_the_static_gates() -> None:
    from kavi.policy.invariants import Expectation, check_skill
    from kavi.policy.scanner import scan_source

    section = README.read_text(encoding="utf-8").split("## Writing a skill by hand", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert scan_source(code, "skills/write_note.py", Policy().scanner) == []
    expect = Expectation(
        name="write_note",
        class_name="WriteNoteSkill",
        side_effect="FILE_WRITE",
        io_schema={
            "input": {"path": "str", "title": "str", "body": "str"},
            "output": {"written_path": "str"},
        },
        secrets=(),
    )
    assert check_skill(code.encode(), "skills/write_note.py", expect) == []
