"""What a proposal may say: skill names, the I/O schema vocabulary, and skill paths.

Skill names are lowercase Python identifiers (``[a-z][a-z0-9_]*``, at most 64
characters) that are not keywords — so a name can never escape a path or shadow
syntax. Paths follow one convention (seed decision D006), configurable in
``.kavi/config.yaml``::

    skill file  <skills_dir>/<name>.py                 skills/write_note.py
    test file   <tests_dir>/test_skill_<name>.py       tests/test_skill_write_note.py
    module      <skill_package>.<name>                 skills.write_note
    class       <CamelCase>Skill                       WriteNoteSkill

I/O schema: a JSON object ``{"input": {field: type}, "output": {field: type}}``.
Field names are lowercase identifiers; types come from this vocabulary:

    scalars     str  int  float  bool
    lists       list[T]        for a scalar T
    mappings    dict[str, T]   for a scalar T
    optional    X | None       for any of the above

Aliases accepted on input and normalised: ``string``→``str``, ``integer``→``int``,
``number``→``float``, ``boolean``→``bool``, ``Optional[X]``→``X | None``.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass
from typing import Any

from kavi.config import ForgeConfig
from kavi.errors import ValidationError

NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,63}")
FIELD_RE = re.compile(r"[a-z][a-z0-9_]{0,63}")
SCALARS = ("str", "int", "float", "bool")
_ALIASES = {"string": "str", "integer": "int", "number": "float", "boolean": "bool"}
_RESERVED_FIELDS = frozenset(
    {"model_config", "model_fields", "schema", "json", "dict", "copy", "validate", "construct"}
)
TYPE_VOCABULARY = "str, int, float, bool; list[T] and dict[str, T] of those; and `X | None` of any of them"


def validate_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise ValidationError(
            f"invalid skill name {name!r}",
            why="a skill name must be a lowercase Python identifier: "
            "a letter, then letters, digits or '_' (at most 64 characters)",
            remedy="choose a name like `write_note`",
        )
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        raise ValidationError(
            f"invalid skill name {name!r}",
            why="it is a Python keyword",
            remedy="choose another name, e.g. `{name}_skill`".replace("{name}", name),
        )
    if name.startswith("test"):
        raise ValidationError(
            f"invalid skill name {name!r}",
            why="names starting with 'test' collide with pytest's test discovery",
            remedy="choose another name",
        )
    return name


def class_name(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_") if part) + "Skill"


def normalize_type(raw: str, *, where: str) -> str:
    text = " ".join(str(raw).split())
    m = re.fullmatch(r"Optional\[(.+)\]", text)
    if m:
        return normalize_type(m.group(1), where=where) + " | None"
    if text.endswith("| None") or text.endswith("|None"):
        inner = text.rsplit("|", 1)[0].strip()
        return _normalize_core(inner, where=where) + " | None"
    return _normalize_core(text, where=where)


def _normalize_core(text: str, *, where: str) -> str:
    t = _ALIASES.get(text, text).replace(" ", "")
    if t in SCALARS:
        return t
    m = re.fullmatch(r"list\[(\w+)\]", t)
    if m and _ALIASES.get(m.group(1), m.group(1)) in SCALARS:
        return f"list[{_ALIASES.get(m.group(1), m.group(1))}]"
    m = re.fullmatch(r"dict\[str,(\w+)\]", t)
    if m and _ALIASES.get(m.group(1), m.group(1)) in SCALARS:
        return f"dict[str, {_ALIASES.get(m.group(1), m.group(1))}]"
    raise ValidationError(
        f"unsupported type {text!r} for {where}",
        why=f"the I/O schema vocabulary is: {TYPE_VOCABULARY}",
        remedy='write e.g. {"input": {"title": "str", "tags": "list[str]"}, "output": {"path": "str"}}',
    )


def parse_io_schema(text: str) -> dict[str, dict[str, str]]:
    """Parse and normalise ``--io-schema-json``."""
    from kavi.inputs import parse_json

    try:
        data: Any = parse_json(text, source="--io-schema-json", max_depth=3)
    except ValidationError as exc:
        if "not valid JSON" not in exc.message:
            raise
        raise ValidationError(
            "--io-schema-json is not valid JSON",
            why=exc.why,
            remedy='quote it for the shell, e.g. \'{"input": {"title": "str"}, "output": {"path": "str"}}\'',
        ) from None
    if not isinstance(data, dict) or set(data) != {"input", "output"}:
        raise ValidationError(
            "the I/O schema must be an object with exactly the keys 'input' and 'output'",
            why=f"got {sorted(data) if isinstance(data, dict) else type(data).__name__}",
            remedy='write {"input": {...}, "output": {...}}',
        )
    out: dict[str, dict[str, str]] = {}
    for side in ("input", "output"):
        fields = data[side]
        if not isinstance(fields, dict):
            raise ValidationError(f"the I/O schema's {side!r} must be an object of field: type")
        if side == "output" and not fields:
            raise ValidationError(
                "the I/O schema's 'output' has no fields",
                why="a skill must return at least one value Kavi can validate",
            )
        normalised: dict[str, str] = {}
        for field_name, type_text in fields.items():
            if (
                not isinstance(field_name, str)
                or not FIELD_RE.fullmatch(field_name)
                or keyword.iskeyword(field_name)
                or field_name in _RESERVED_FIELDS
                or field_name.startswith("model_")
            ):
                raise ValidationError(
                    f"invalid field name {field_name!r} in the I/O schema's {side!r}",
                    why="field names are lowercase identifiers, not keywords, not "
                    "pydantic-reserved (model_*, schema, json, dict, …)",
                )
            if not isinstance(type_text, str):
                raise ValidationError(
                    f'type of {side}.{field_name} must be a string like "str"',
                    why=f"the I/O schema vocabulary is: {TYPE_VOCABULARY}",
                )
            normalised[field_name] = normalize_type(type_text, where=f"{side}.{field_name}")
        out[side] = normalised
    return out


def validate_secret_name(name: str) -> str:
    if not re.fullmatch(r"[A-Z][A-Z0-9_]{0,63}", name):
        raise ValidationError(
            f"invalid secret name {name!r}",
            why="secret names are UPPER_SNAKE_CASE; the value comes from KAVI_SECRET_<NAME>",
            remedy="e.g. --secret NOTION_TOKEN",
        )
    return name


@dataclass(frozen=True)
class SkillPaths:
    name: str
    skill_file: str
    test_file: str
    module: str
    class_name: str
    import_root: str  # directory to put on sys.path so `module` imports ("" = repo root)

    @property
    def allowed(self) -> tuple[str, str]:
        return (self.skill_file, self.test_file)


def skill_paths(config: ForgeConfig, name: str) -> SkillPaths:
    package_dir = config.skill_package.replace(".", "/")
    skills_dir = config.skills_dir
    if skills_dir == package_dir:
        import_root = ""
    elif skills_dir.endswith("/" + package_dir):
        import_root = skills_dir[: -len(package_dir) - 1]
    else:
        import_root = ""
    return SkillPaths(
        name=name,
        skill_file=f"{skills_dir}/{name}.py",
        test_file=f"{config.tests_dir}/test_skill_{name}.py",
        module=f"{config.skill_package}.{name}",
        class_name=class_name(name),
        import_root=import_root,
    )
