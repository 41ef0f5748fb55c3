"""The deterministic classifier and the widening check: records in, kinds and facts out.

The finding lines are the gates' real output formats (see kavi.forge.gates and the
verify tests); the end-to-end tests in test_forge_loop.py run the real gates.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kavi.config import ForgeConfig
from kavi.forge.classify import classify_build, classify_verification, finding_fact, forbidden_reason
from kavi.forge.spec import skill_paths
from kavi.forge.widening import widening
from kavi.ledger.models import (
    Advice,
    Build,
    BuildStatus,
    FailureKind,
    GateResult,
    Proposal,
    Verification,
    VerificationStatus,
    Violation,
)
from kavi.policy.model import SideEffect

CONFIG = ForgeConfig()
K = FailureKind


def _verification(**failed: list[str]) -> Verification:
    gates = {
        g: GateResult(ok=g not in failed, findings=failed.get(g, []))
        for g in ("scope", "policy", "invariants", "ruff", "mypy", "pytest")
    }
    return Verification(
        id="v", proposal_id="p", build_id="b", commit_id="c", tree_id="t",
        status=VerificationStatus.FAILED, gates=gates, created_at="now",
    )  # fmt: skip


def _build(summary: str, violations: list[Violation] | None = None) -> Build:
    return Build(
        id="b", proposal_id="p", attempt_number=1, branch_name="skill/x-1", backend="claude",
        base_commit="c", status=BuildStatus.FAILED, summary=summary, violations=violations or [],
        started_at="now",
    )  # fmt: skip


def test_mypy_findings_are_type_failures_with_file_line_and_rule() -> None:
    c = classify_verification(
        _verification(
            mypy=[
                "skills/write_note.py:10: Function is missing a type annotation  [no-untyped-def]",
                'skills/write_note.py:35: Call to untyped function "_heading" in typed context'
                "  [no-untyped-call]",
            ]
        ),
        CONFIG,
    )
    assert c.kind is K.VERIFY_TYPE and not c.security
    first = c.facts[0]
    assert (first.file, first.line, first.rule) == ("skills/write_note.py", 10, "no-untyped-def")
    assert first.gate == "mypy"
    assert first.message == "Function is missing a type annotation"
    assert first.words.endswith("[no-untyped-def]")
    assert c.outcome == "verification FAILED: mypy"


@pytest.mark.parametrize(
    ("gate", "line", "kind", "rule", "security"),
    [
        ("ruff", "skills/x.py:3: F401 `os` imported but unused", K.VERIFY_LINT, "F401", False),
        ("policy", "skills/x.py:4: KS101 forbidden-import: subprocess", K.VERIFY_POLICY, "KS101", True),
        ("policy", "skills/x.py:9: KS004 syntax-error: invalid syntax", K.VERIFY_LINT, "KS004", False),
        ("invariants", "skills/x.py:12: [side-effect] side_effect_class is NETWORK", K.VERIFY_INVARIANT,
         "side-effect", False),
        ("pytest", "tests/test_skill_x.py:14: AssertionError: assert 1 == 2", K.VERIFY_TEST, None, False),
        ("pytest", "tests/t.py:1: runtime guard refused: write to /tmp/x", K.RUNTIME_GUARD, None, True),
        ("pytest", "tests/test_skill_x.py:1: pytest timed out after 120s (killed)", K.TIMEOUT, None, False),
        ("mypy", "mypy timed out after 60s", K.TIMEOUT, None, False),
        ("pytest", "tests/t.py:1: confinement refused: connect to 10.0.0.1", K.CONFINEMENT_VIOLATION, None,
         True),
        ("scope", "notes.txt:0: new file outside the allowlist [outside-allowlist]", K.GATE_VIOLATION,
         "outside-allowlist", False),
        ("scope", ".kavi/policy.yaml:0: modifies a file outside the allowlist [outside-allowlist]",
         K.GATE_VIOLATION, "outside-allowlist", True),
    ],
)  # fmt: skip
def test_each_gate_line_becomes_one_fact(
    gate: str, line: str, kind: FailureKind, rule: str | None, security: bool
) -> None:
    fact = finding_fact(gate, line, CONFIG)
    assert (fact.kind, fact.rule, fact.security) == (kind, rule, security)
    assert fact.words == line


def test_security_facts_decide_the_kind() -> None:
    c = classify_verification(
        _verification(
            mypy=["skills/x.py:3: Missing return statement  [return]"],
            policy=["skills/x.py:1: KS401 network: socket"],
        ),
        CONFIG,
    )
    assert c.kind is K.VERIFY_POLICY and c.security
    assert c.security_reasons == ["VERIFY_POLICY at skills/x.py:1: the policy scanner refused it (KS401)"]


def test_a_skipped_gate_is_a_consequence_not_a_fact() -> None:
    v = _verification(invariants=["skills/x.py:5: [structure] XSkill does not define execute"])
    gates = dict(v.gates)
    gates["pytest"] = GateResult(ok=False, skipped=True, findings=["not run: …"])
    c = classify_verification(v.model_copy(update={"gates": gates}), CONFIG)
    assert [f.gate for f in c.facts] == ["invariants"] and c.kind is K.VERIFY_INVARIANT


@pytest.mark.parametrize(
    ("summary", "kind"),
    [
        ("backend failed: claude did not finish within 900s; its process group was killed", K.TIMEOUT),
        ("backend failed: openai backend unreachable at http://x/v1", K.BACKEND_UNAVAILABLE),
        ("backend failed: the model refused: 'I cannot help with that'", K.BACKEND_REFUSED),
        ("backend failed: claude attempted tools it is not allowed to use: Bash", K.BACKEND_REFUSED),
        ("backend failed: claude reported failure (subtype='error_max_budget_usd', is_error=True)",
         K.BUDGET_EXCEEDED),
        ("backend failed: claude reported failure (subtype='error_max_turns')", K.BUDGET_EXCEEDED),
        ("backend failed: claude exited 1 without a final result event", K.BACKEND_ERROR),
        ("build aborted: KeyboardInterrupt: ", K.INTERRUPTED),
        ("both files written; gate passed", K.UNKNOWN),
    ],
)  # fmt: skip
def test_the_backends_own_reason_decides_a_build_failure(summary: str, kind: FailureKind) -> None:
    assert classify_build(_build(summary), CONFIG).kind is kind


def test_missing_files_after_a_backend_failure_are_a_consequence() -> None:
    missing = [Violation(path="skills/x.py", reason="expected file was not written", rule="missing")]
    summary = "backend failed: openai backend unreachable at u | gate refused 1 path(s)"
    c = classify_build(_build(summary, missing), CONFIG)
    assert c.kind is K.BACKEND_UNAVAILABLE and len(c.facts) == 2
    alone = classify_build(_build("gate refused 1 path(s)", missing), CONFIG)
    assert alone.kind is K.GATE_VIOLATION and not alone.security


def test_a_model_path_escaping_the_sandbox_is_security_class() -> None:
    c = classify_build(_build("backend failed: refused path '../../x.py': contains a '..' component"), CONFIG)
    assert c.kind is K.GATE_VIOLATION and c.security


def test_a_secret_in_a_written_file_is_security_class() -> None:
    leak = [
        Violation(
            path="skills/x.py", reason="contains a secret value (redacted in the build commit)", rule="secret"
        )
    ]
    c = classify_build(_build("gate refused 1 path(s)", leak), CONFIG)
    assert c.kind is K.SECRET_IN_OUTPUT and c.security
    assert c.security_reasons == ["SECRET_IN_OUTPUT at skills/x.py: a secret value in what the agent wrote"]


def test_a_secret_in_the_transcript_is_security_class() -> None:
    log = "# BUILD_LOG\n\n## Backend transcript\n\n```text\nTOKEN=[REDACTED]\n```\n"
    c = classify_build(_build("backend failed: claude exited 1 without a final result event"), CONFIG, log)
    assert c.kind is K.SECRET_IN_OUTPUT and c.security


@pytest.mark.parametrize(
    ("path", "rule", "reason", "forbidden"),
    [
        ("notes.txt", "outside-allowlist", "new file outside the allowlist", False),
        ("skills/helpers.py", "outside-allowlist", "new file outside the allowlist", False),
        ("skills/other_skill.py", "outside-allowlist", "modifies a file outside the allowlist", True),
        ("tests/test_skill_other.py", "deleted", "deletes a tracked file", True),
        ("skills/registry.yaml", "outside-allowlist", "new file outside the allowlist", True),
        (".KAVI/policy.yaml", "outside-allowlist", "new file outside the allowlist", True),
        ("vendor/.GIT/config", "outside-allowlist", "new file outside the allowlist", True),
        ("conftest.py", "outside-allowlist", "new file outside the allowlist", True),
        ("lib/evil.pth", "outside-allowlist", "new file outside the allowlist", True),
        (".github/workflows/ci.yml", "outside-allowlist", "new file outside the allowlist", True),
        ("skills/x.py", "symlink", "symlink (→ /etc/passwd)", True),
        ("skills/x.py", "mode", "is a executable file (100755)", False),
        ("README.md", "deleted", "deletes a tracked file", False),
        (".git/config", "tripwire", "main repository: config changed", True),
    ],
)
def test_forbidden_paths(path: str, rule: str, reason: str, forbidden: bool) -> None:
    assert (forbidden_reason(path, rule, reason, CONFIG) is not None) is forbidden


def _proposal(effect: SideEffect = SideEffect.FILE_WRITE, secrets: list[str] | None = None) -> Proposal:
    return Proposal(
        id="p", name="write_note", description="d", io_schema={"input": {"path": "str"}, "output": {}},
        side_effect_class=effect, required_secrets=secrets or [], created_at="n", updated_at="n",
    )  # fmt: skip


def _advice(**changes: object) -> Advice:
    base: dict[str, object] = {
        "model": "m",
        "diagnosis": "The helper lacks annotations.",
        "steps": ["Annotate _heading in skills/write_note.py:10", "Keep tests/test_skill_write_note.py"],
        "side_effect_class": "FILE_WRITE",
        "secrets": [],
        "files": ["skills/write_note.py", "./tests/test_skill_write_note.py"],
        "io_schema_changes": [],
    }
    base.update(changes)
    return Advice.model_validate(base)


def _widening(advice: Advice, proposal: Proposal | None = None) -> list[str]:
    return widening(advice, proposal or _proposal(), skill_paths(CONFIG, "write_note"), CONFIG)


def test_advice_within_the_proposal_does_not_widen_it() -> None:
    assert _widening(_advice()) == []
    assert _widening(_advice(side_effect_class="READ_ONLY")) == []  # narrower
    assert _widening(_advice(steps=["The side-effect class is FILE_WRITE; keep it."])) == []
    declared = _proposal(secrets=["NOTION_TOKEN"])
    reads = _advice(secrets=["NOTION_TOKEN"], steps=["read ctx.secrets['NOTION_TOKEN']"])
    assert _widening(reads, declared) == []


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"side_effect_class": "NETWORK"}, "side-effect class NETWORK"),
        ({"side_effect_class": "TELEPORT"}, "side-effect class TELEPORT"),
        ({"secrets": ["OPENAI_API_KEY"]}, "OPENAI_API_KEY"),
        ({"files": [".kavi/policy.yaml"]}, ".kavi/policy.yaml"),
        ({"io_schema_changes": ["input.url: str"]}, "input.url"),
        ({"steps": ["set side_effect_class = SideEffect.NETWORK"]}, "NETWORK"),
        ({"steps": ["change the side-effect class to MESSAGING"]}, "MESSAGING"),
        ({"steps": ["read os.environ['KAVI_SECRET_STRIPE']"]}, "STRIPE"),
        ({"steps": ["use ctx.secrets.get('GITHUB_TOKEN')"]}, "GITHUB_TOKEN"),
        ({"steps": ["set required_secrets = ('A', 'B')"]}, "secret A"),
        ({"steps": ["move the helper into skills/helpers.py"]}, "skills/helpers.py"),
        ({"steps": ["allow subprocess in .kavi/policy.yaml"]}, ".kavi/policy.yaml"),
        ({"diagnosis": "add a tests/conftest.py fixture"}, "tests/conftest.py"),
    ],
)
def test_advice_that_widens_the_proposal_is_caught(changes: dict[str, object], expected: str) -> None:
    found = _widening(_advice(**changes))
    assert found and any(expected in f for f in found), found


def test_the_research_loop_cannot_promote() -> None:
    """Invariant 5: the loop builds, verifies and researches; promotion stays a user command."""
    import ast

    src = Path(__file__).resolve().parents[1] / "src" / "kavi" / "forge"
    for name in ("loop", "research", "advisor", "widening", "classify", "hygiene"):
        tree = ast.parse((src / f"{name}.py").read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert not {m for m in imported if m.startswith(("kavi.forge.promote", "kavi.cli"))}, name
