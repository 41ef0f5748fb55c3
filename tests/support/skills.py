"""Skills (and generated tests) that pass every static gate and misbehave when they run.

Each is written the way an ordinary skill would be — no scanner tricks beyond data that
arrives as input — so what stops it is what runs it: the OS boundary (and the guard
inside). :func:`promote` takes one through propose, build (``files`` backend), verify
and promote on a real forge.
"""

from __future__ import annotations

import json
from pathlib import Path

from support.forge import kavi_json


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def skill_source(
    name: str,
    side_effect: str,
    inputs: dict[str, str],
    outputs: dict[str, str],
    body: str,
    *,
    imports: str = "",
    secrets: tuple[str, ...] = (),
) -> str:
    stem = _camel(name)
    fields_in = "".join(f"    {k}: {v}\n" for k, v in inputs.items()) or "    pass\n"
    fields_out = "".join(f"    {k}: {v}\n" for k, v in outputs.items())
    secret_tuple = "(" + "".join(f"{s!r}, " for s in secrets).rstrip(" ") + ")" if secrets else "()"
    return (
        f'"""{name}: a skill for the boundary tests."""\n\nfrom __future__ import annotations\n\n'
        f"{imports}"
        "from kavi.skills.base import BaseSkill, SideEffect, SkillContext, SkillInput, SkillOutput\n\n\n"
        f"class {stem}Input(SkillInput):\n{fields_in}\n\n"
        f"class {stem}Output(SkillOutput):\n{fields_out}\n\n"
        f"class {stem}Skill(BaseSkill[{stem}Input, {stem}Output]):\n"
        f'    name = "{name}"\n'
        f'    description = "{name} for the boundary tests"\n'
        f"    input_model = {stem}Input\n"
        f"    output_model = {stem}Output\n"
        f"    side_effect_class = SideEffect.{side_effect}\n"
        f"    required_secrets = {secret_tuple}\n\n"
        f"    def execute(self, input: {stem}Input, ctx: SkillContext) -> {stem}Output:\n"
        f"{body}"
    )


def skill_tests_source(name: str, extra: str = "", *, imports: str = "") -> str:
    stem = _camel(name)
    return (
        f'"""Tests for {name}."""\n\nfrom __future__ import annotations\n\n{imports}'
        f"from skills.{name} import {stem}Skill\n\n\n"
        f"def test_declares_its_name() -> None:\n    assert {stem}Skill.name == {name!r}\n"
        f"{extra}"
    )


def promote(
    repo: Path,
    root: Path,
    name: str,
    side_effect: str,
    schema: dict[str, dict[str, str]],
    skill: str,
    test: str,
    *,
    secrets: tuple[str, ...] = (),
    promote_it: bool = True,
) -> str:
    """Propose, build, verify (must pass) and promote one skill (``promote_it=False``:
    leave it VERIFIED); its proposal id."""
    args = ["propose-skill", "--name", name, "--desc", f"{name} for the boundary tests"]
    args += ["--side-effect", side_effect, "--io-schema-json", json.dumps(schema)]
    for secret in secrets:
        args += ["--secret", secret]
    pid = str(kavi_json(*args, cwd=repo)["proposal_id"])
    src = write_files(root / f"src-{name}", name, skill, test)
    built = kavi_json("build-skill", pid, "--backend", "files", "--from", str(src), cwd=repo)
    assert built["status"] == "SUCCEEDED", built
    verified = kavi_json("verify-skill", pid, cwd=repo)
    assert verified["status"] == "PASSED", verified["gates"]
    if promote_it:
        kavi_json("promote-skill", pid, "--yes", cwd=repo)
    return pid


def write_files(where: Path, name: str, skill: str, test: str) -> Path:
    (where / "skills").mkdir(parents=True, exist_ok=True)
    (where / "tests").mkdir(parents=True, exist_ok=True)
    (where / "skills" / f"{name}.py").write_text(skill)
    (where / "tests" / f"test_skill_{name}.py").write_text(test)
    return where


def hexed(path: Path | str) -> str:
    """A path as generated code would carry it without spelling it out (scanners look for
    ``~/.ssh`` and the like; the OS boundary must not depend on that)."""
    digits = str(path).encode().hex()
    chunks = "".join(f'    "{digits[i : i + 64]}"\n' for i in range(0, len(digits), 64))
    return f"bytes.fromhex(\n{chunks}).decode()"
