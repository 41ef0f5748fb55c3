"""One capability model: the README, the build packet and the boundary all derive from it;
the skill context mirrors it; the policy keys parse as users write them."""

from __future__ import annotations

from pathlib import Path

import pytest

from kavi.confine import capabilities
from kavi.errors import PolicyDenied
from kavi.policy.model import Decision, SideEffect, parse_policy
from kavi.skills.base import SkillContext
from support.forge import WRITE_NOTE_DIR, kavi_json, make_forge, propose_write_note

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_shows_the_capability_table_verbatim() -> None:
    assert capabilities.table_markdown() in README.read_text()


def test_every_build_packet_carries_the_table(tmp_path: Path) -> None:
    repo = make_forge(tmp_path)
    pid = propose_write_note(repo)
    kavi_json("build-skill", pid, "--backend", "files", "--from", str(WRITE_NOTE_DIR), cwd=repo)
    packet = next((repo / "vault_out" / "kavi" / "build_packet").glob("*.md")).read_text()
    assert capabilities.table_markdown() in packet
    assert "This skill is `FILE_WRITE`" in packet and "ctx.resolve_read_path" in packet


def test_classes_map_to_capabilities() -> None:
    assert [capabilities.for_class(e).network for e in SideEffect] == [False, False, True, True, True]
    assert [capabilities.for_class(e).writes for e in SideEffect] == [False, True, False, False, False]
    assert all(capabilities.for_class(e).secrets for e in SideEffect)
    test = capabilities.GENERATED_TEST
    assert not (test.network or test.writes or test.secrets)


def test_policy_keys_parse_as_written() -> None:
    policy = parse_policy(
        "runtime:\n"
        "  allowed_read_paths: [notes/]\n"
        "  limits: {cpu_seconds: 5, memory_mb: 512}\n"
        "  rules:\n"
        "    - match: {side_effect: NETWORK}\n"
        "      decision: ALLOW\n"
        "      confine: off\n"
        "      secrets: [TOKEN]\n"
        "sandbox:\n  confine: off\n"
        "verify:\n  confine: required\n  limits: {tmp_mb: 8}\n"
    )
    rule = policy.runtime.rules[0]
    assert (rule.decision, rule.confine, rule.secrets) == (Decision.ALLOW, "off", ["TOKEN"])
    assert policy.sandbox.confine == "off" and policy.verify.confine == "required"
    assert policy.runtime.limits.cpu_seconds == 5 and policy.runtime.limits.processes == 32
    assert policy.verify.limits.tmp_mb == 8 and policy.runtime.allowed_read_paths == ["notes/"]


def test_resolve_read_path_mirrors_resolve_write_path(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    (vault / "notes").mkdir(parents=True)
    (vault / "kavi").mkdir()
    (vault / "notes" / "a.md").write_text("a")
    (tmp_path / "secret.txt").write_text("s")
    (vault / "notes" / "out").symlink_to(tmp_path / "secret.txt")
    ctx = SkillContext(
        vault_root=vault,
        allowed_write_paths=(vault / "notes",),
        read_roots=(vault,),
        protected=(vault / "kavi",),
    )
    assert ctx.resolve_read_path("notes/a.md") == (vault / "notes" / "a.md").resolve()
    for bad in ("../secret.txt", "notes/out", "/etc/passwd", "notes/\x00x", "kavi", "kavi/x.md"):
        with pytest.raises(PolicyDenied):
            ctx.resolve_read_path(bad)
    assert ctx.resolve_write_path("notes/b.md") == (vault / "notes" / "b.md").resolve()
    with pytest.raises(PolicyDenied, match="skills never see"):
        SkillContext(
            vault_root=vault, allowed_write_paths=(vault,), protected=(vault / "kavi",)
        ).resolve_write_path("kavi/x.md")
    narrow = SkillContext(vault_root=vault, read_roots=(vault / "notes",), allowed_write_paths=())
    with pytest.raises(PolicyDenied, match="outside the allowed read paths"):
        narrow.resolve_read_path("other.md")
    assert SkillContext(vault_root=vault).resolve_read_path("notes/a.md").name == "a.md"  # default: the vault
