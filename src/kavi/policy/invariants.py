"""The invariant checker: does the skill module conform to the skill contract and the proposal?

Seed decision D007, three kinds of checks, all on the AST (nothing is imported or run):

**Structure** (skill file)
  * exactly one class extends ``BaseSkill``, and it is the conventional ``<CamelCase>Skill``;
  * it assigns ``name`` (= the proposal's name), ``description`` (a string),
    ``input_model`` / ``output_model`` (classes defined in the module, extending
    ``SkillInput`` / ``SkillOutput``), ``side_effect_class`` (= the proposal's class) and
    ``required_secrets`` (= the proposal's secrets) as plain class-level assignments, and
    defines ``execute``;
  * the input and output models' annotated fields match the proposed I/O schema — the same
    field names with the same types (compared after normalising ``Optional[X]``, ``List[X]``…).

**Declarative modules** (skill and test file)
  * top-level statements are only docstrings, imports, function and class definitions,
    constant assignments, the idioms that do no I/O (``logging.getLogger(__name__)``,
    ``re.compile`` of a constant, ``frozenset``/``tuple`` of literals, type aliases) and
    ``if TYPE_CHECKING:`` blocks: no code runs at import time (:mod:`kavi.policy.module_code`).

**Extended safety** (skill and test file, seed decision D007)
  * no ``__import__(...)``, no ``importlib.import_module(...)`` / ``importlib.util`` loaders —
    imports must be static so the policy scan sees every module a skill uses;
  * from Kavi itself only the public contract (``kavi.skills.base``, ``kavi.errors``): a
    TRUSTED skill runs inside Kavi's process and must not reach the ledger or the guard.

Scope containment (only the two files changed) is the gate in :mod:`kavi.gitstore.gate`,
re-run on the exact commit by ``verify-skill``.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import dataclass

from kavi.errors import ValidationError
from kavi.forge.spec import normalize_type
from kavi.policy.module_code import module_code_findings

REQUIRED_ATTRS = (
    "name",
    "description",
    "input_model",
    "output_model",
    "side_effect_class",
    "required_secrets",
)


@dataclass(frozen=True)
class InvariantFinding:
    path: str
    line: int
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: [{self.rule}] {self.message}"


@dataclass(frozen=True)
class Expectation:
    """What the proposal says the skill must be."""

    name: str
    class_name: str
    side_effect: str
    io_schema: dict[str, dict[str, str]]
    secrets: tuple[str, ...]


def _parse(source: bytes, path: str) -> tuple[ast.Module | None, list[InvariantFinding]]:
    try:
        return ast.parse(source, filename=path), []
    except (SyntaxError, ValueError) as exc:
        line = getattr(exc, "lineno", None) or 1
        return None, [InvariantFinding(path, line, "parse", f"cannot parse: {exc}")]


def _base_name(node: ast.expr) -> str | None:
    """``BaseSkill`` for ``BaseSkill``, ``BaseSkill[I, O]``, ``base.BaseSkill[...]``."""
    if isinstance(node, ast.Subscript):
        node = node.value
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _annotation_type(node: ast.expr) -> str:
    text = ast.unparse(node)
    for prefix in ("typing.", "t."):
        text = text.replace(prefix, "")
    text = text.replace("List[", "list[").replace("Dict[", "dict[")
    if text.startswith("Union[") and text.endswith(", None]"):
        text = text[len("Union[") : -len(", None]")] + " | None"
    try:
        return normalize_type(text, where="annotation")
    except ValidationError:
        return text


def _declarative(tree: ast.Module, path: str) -> list[InvariantFinding]:
    return [InvariantFinding(path, line, "module-code", msg) for line, msg in module_code_findings(tree)]


PUBLIC_KAVI_MODULES = frozenset({"kavi.skills.base", "kavi.errors"})


def _safety(tree: ast.Module, path: str) -> list[InvariantFinding]:
    out = []
    for node in ast.walk(tree):
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules = [f"kavi.{a.name}" for a in node.names] if node.module == "kavi" else [node.module]
        for module in modules:
            if (module == "kavi" or module.startswith("kavi.")) and module not in PUBLIC_KAVI_MODULES:
                if module.startswith("kavi.skills.base.") or module.startswith("kavi.errors."):
                    continue
                out.append(
                    InvariantFinding(
                        path,
                        getattr(node, "lineno", 1),
                        "kavi-internal",
                        f"imports {module}; skills may only use kavi.skills.base and kavi.errors",
                    )
                )
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        text = ast.unparse(func)
        if isinstance(func, ast.Name) and func.id == "__import__":
            out.append(InvariantFinding(path, node.lineno, "dynamic-import", "call to __import__()"))
        elif text.startswith("importlib.") and (
            text.endswith(("import_module", "__import__", "reload"))
            or text.startswith(("importlib.util.", "importlib.machinery."))
        ):
            out.append(InvariantFinding(path, node.lineno, "dynamic-import", f"call to {text}()"))
    return out


def _class_assignments(cls: ast.ClassDef) -> dict[str, ast.stmt]:
    found: dict[str, ast.stmt] = {}
    for stmt in cls.body:
        if isinstance(stmt, ast.Assign):
            for target in stmt.targets:
                if isinstance(target, ast.Name):
                    found[target.id] = stmt
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            found[stmt.target.id] = stmt
    return found


def _value(stmt: ast.stmt) -> ast.expr | None:
    if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
        return stmt.value
    return None


def _model_fields(cls: ast.ClassDef) -> dict[str, tuple[str, int]]:
    fields: dict[str, tuple[str, int]] = {}
    for stmt in cls.body:
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            if stmt.target.id.startswith("_") or ast.unparse(stmt.annotation).startswith("ClassVar"):
                continue
            fields[stmt.target.id] = (_annotation_type(stmt.annotation), stmt.lineno)
    return fields


def _check_model(
    path: str,
    classes: dict[str, ast.ClassDef],
    ref: ast.expr | None,
    side: str,
    base: str,
    expected: dict[str, str],
    line: int,
) -> list[InvariantFinding]:
    attr = f"{side}_model"
    if not isinstance(ref, ast.Name) or ref.id not in classes:
        return [InvariantFinding(path, line, "model", f"{attr} must name a class defined in this module")]
    cls = classes[ref.id]
    out = []
    if base not in {_base_name(b) for b in cls.bases}:
        out.append(InvariantFinding(path, cls.lineno, "model", f"{cls.name} must extend {base}"))
    fields = _model_fields(cls)
    for name, type_text in expected.items():
        if name not in fields:
            out.append(
                InvariantFinding(
                    path, cls.lineno, "schema", f"{side} field {name!r} ({type_text}) missing in {cls.name}"
                )
            )
        elif fields[name][0] != type_text:
            out.append(
                InvariantFinding(
                    path,
                    fields[name][1],
                    "schema",
                    f"{side} field {name!r} is {fields[name][0]}, the proposal says {type_text}",
                )
            )
    for name, (type_text, lineno) in fields.items():
        if name not in expected:
            out.append(
                InvariantFinding(
                    path, lineno, "schema", f"{side} field {name!r} ({type_text}) is not in the proposal"
                )
            )
    return out


def _literal(node: ast.expr | None) -> object:
    if node is None:
        return None
    try:
        return ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError):
        return None


def _side_effect_value(node: ast.expr | None) -> str | None:
    if isinstance(node, ast.Attribute) and _base_name(node.value) == "SideEffect":
        return node.attr
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def check_skill(source: bytes, path: str, expect: Expectation) -> list[InvariantFinding]:
    tree, findings = _parse(source, path)
    if tree is None:
        return findings
    findings += _declarative(tree, path)
    findings += _safety(tree, path)
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    skills = [c for c in classes.values() if "BaseSkill" in {_base_name(b) for b in c.bases}]
    if len(skills) != 1 or skills[0].name != expect.class_name:
        names = ", ".join(c.name for c in skills) or "none"
        findings.append(
            InvariantFinding(
                path,
                skills[0].lineno if skills else 1,
                "structure",
                f"expected exactly one BaseSkill subclass named {expect.class_name}, found: {names}",
            )
        )
        if expect.class_name not in classes:
            return findings
    cls = classes[expect.class_name]
    if cls not in skills:
        return findings
    attrs = _class_assignments(cls)
    for attr in REQUIRED_ATTRS:
        if attr not in attrs:
            findings.append(
                InvariantFinding(path, cls.lineno, "structure", f"{cls.name} does not assign {attr}")
            )
    if not any(isinstance(s, ast.FunctionDef) and s.name == "execute" for s in cls.body):
        findings.append(
            InvariantFinding(path, cls.lineno, "structure", f"{cls.name} does not define execute")
        )
    if "name" in attrs and _literal(_value(attrs["name"])) != expect.name:
        findings.append(
            InvariantFinding(path, attrs["name"].lineno, "structure", f"name must be {expect.name!r}")
        )
    if "description" in attrs and not isinstance(_literal(_value(attrs["description"])), str):
        findings.append(
            InvariantFinding(path, attrs["description"].lineno, "structure", "description must be a string")
        )
    if "side_effect_class" in attrs:
        declared = _side_effect_value(_value(attrs["side_effect_class"]))
        if declared != expect.side_effect:
            findings.append(
                InvariantFinding(
                    path,
                    attrs["side_effect_class"].lineno,
                    "side-effect",
                    f"side_effect_class is {declared or 'not a SideEffect constant'}, "
                    f"the proposal declares {expect.side_effect}",
                )
            )
    if "required_secrets" in attrs:
        secrets = _literal(_value(attrs["required_secrets"]))
        if not isinstance(secrets, (tuple, list)) or sorted(map(str, secrets)) != sorted(expect.secrets):
            findings.append(
                InvariantFinding(
                    path,
                    attrs["required_secrets"].lineno,
                    "secrets",
                    f"required_secrets must be {tuple(sorted(expect.secrets))!r}",
                )
            )
    for side, base in (("input", "SkillInput"), ("output", "SkillOutput")):
        attr = f"{side}_model"
        if attr in attrs:
            findings += _check_model(
                path,
                classes,
                _value(attrs[attr]),
                side,
                base,
                expect.io_schema.get(side, {}),
                attrs[attr].lineno,
            )
    return findings


def check_test(source: bytes, path: str) -> list[InvariantFinding]:
    tree, findings = _parse(source, path)
    if tree is None:
        return findings
    findings += _declarative(tree, path)
    findings += _safety(tree, path)
    if not any(
        isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name.startswith("test")
        for n in ast.walk(tree)
    ):
        findings.append(InvariantFinding(path, 1, "tests", "the test file defines no test function"))
    return findings


def check_files(files: Sequence[tuple[str, bytes]], expect: Expectation) -> list[InvariantFinding]:
    """``files`` = [(skill path, bytes), (test path, bytes)]."""
    (skill_path, skill_src), (test_path, test_src) = files
    return sorted(
        check_skill(skill_src, skill_path, expect) + check_test(test_src, test_path),
        key=lambda f: (f.path, f.line, f.rule),
    )


def model_names(source: bytes, class_name: str) -> tuple[str, str]:
    """The names of the input and output model classes a (verified) skill class assigns."""
    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            attrs = _class_assignments(node)
            names = []
            for attr in ("input_model", "output_model"):
                value = _value(attrs[attr]) if attr in attrs else None
                names.append(value.id if isinstance(value, ast.Name) else "")
            return names[0], names[1]
    return "", ""
