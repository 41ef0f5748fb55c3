"""What a skill or test module may run at import time (the ``module-code`` invariant).

Importing a module runs its top-level statements, before any gate could watch what
they do. So module level holds only what does no I/O: imports, definitions, constants,
``if TYPE_CHECKING:`` imports, and these common idioms —

* ``logger = logging.getLogger(__name__)`` (or a constant name);
* ``PATTERN = re.compile("…", re.I | re.M)`` with a constant pattern and flags;
* ``frozenset({...})``, ``tuple([...])``, ``set(...)``, ``list(...)`` of a literal of
  constants, also inside other constants;
* type aliases: ``Alias: TypeAlias = dict[str, int]``, ``type Alias = …`` (Python ≥ 3.12),
  ``T = TypeVar("T", bound=…)``, ``UserId = NewType("UserId", int)``.

An idiom counts only when its names are what they seem: ``re``, ``logging`` and
``typing`` bound once, by their own import, and never rebound (``global``, attribute
stores, ``setattr``); the builtins (``frozenset``…) not shadowed, no star import, no
``builtins`` module in reach. :func:`module_code_findings` returns ``(line, message)``
for each statement it refuses; the message says how to fix it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

FIX = (
    "move it into execute() or a function; module level may only hold imports, constants "
    "(frozenset/tuple of literals too), re.compile(...) of a constant, logging.getLogger(__name__), "
    "type aliases, classes and functions"
)

_CONTAINERS = frozenset(("frozenset", "tuple", "set", "list"))
_TYPE_FACTORIES = frozenset(("TypeVar", "NewType", "ParamSpec", "TypeVarTuple"))
#: name -> (module it must be imported from, the attribute called on it)
_MODULE_IDIOMS = {"re": "compile", "logging": "getLogger", "typing": "TypeVar"}


class _Bindings:
    """Who binds which module-level name, and which names are tampered with."""

    def __init__(self, tree: ast.Module) -> None:
        self.imports: dict[str, list[str]] = {}  # name -> what bound it ("import re", "=", …)
        self.tampered: set[str] = set()
        self.star = False
        for stmt in _module_statements(tree.body):
            self._bind(stmt)
        for node in ast.walk(tree):
            if isinstance(node, (ast.Global, ast.Nonlocal)):
                self.tampered.update(node.names)
            elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
                targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
                for target in targets:
                    for sub in ast.walk(target):
                        if isinstance(sub, (ast.Attribute, ast.Subscript)) and isinstance(
                            sub.value, ast.Name
                        ):
                            self.tampered.add(sub.value.id)
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                if node.func.id in ("setattr", "delattr", "vars") and node.args:
                    first = node.args[0]
                    if isinstance(first, ast.Name):
                        self.tampered.add(first.id)
            elif isinstance(node, ast.Name) and node.id in ("__builtins__", "builtins"):
                self.tampered.add("builtins")

    def _bind(self, stmt: ast.stmt) -> None:
        def add(name: str, how: str) -> None:
            self.imports.setdefault(name, []).append(how)

        if isinstance(stmt, ast.Import):
            for alias in stmt.names:
                if alias.asname:
                    add(alias.asname, f"import {alias.name}")
                else:
                    root = alias.name.split(".", 1)[0]
                    add(root, f"import {root}")
                if alias.name.split(".", 1)[0] == "builtins":
                    self.tampered.add("builtins")
        elif isinstance(stmt, ast.ImportFrom):
            for alias in stmt.names:
                if alias.name == "*":
                    self.star = True
                else:
                    add(alias.asname or alias.name, f"from {stmt.module or ''} import {alias.name}")
        elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            add(stmt.name, "def")
        else:
            for node in ast.walk(stmt):
                if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
                    add(node.id, "=")
                elif isinstance(node, ast.alias):
                    add(node.asname or node.name.split(".", 1)[0], "import")

    def is_module(self, name: str, module: str) -> bool:
        """Is ``name`` the standard module ``module``, untouched?"""
        return self.imports.get(name) == [f"import {module}"] and name not in self.tampered

    def is_from(self, name: str, module: str) -> bool:
        """Is ``name`` bound once by ``from <module> import <name>``, untouched?"""
        hows = self.imports.get(name)
        return hows is not None and len(hows) == 1 and hows[0] == f"from {module} import {name}"

    def is_builtin(self, name: str) -> bool:
        return (
            name not in self.imports
            and name not in self.tampered
            and not self.star
            and ("builtins" not in self.tampered)
        )


def _module_statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Statements that run at module level (into if/try/with/for bodies, not definitions)."""
    for stmt in body:
        yield stmt
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        for field in ("body", "orelse", "finalbody"):
            sub = getattr(stmt, field, None)
            if isinstance(sub, list):
                yield from _module_statements([s for s in sub if isinstance(s, ast.stmt)])
        for handler in getattr(stmt, "handlers", ()):
            yield from _module_statements(handler.body)


def _is_constant(node: ast.expr | None, names: _Bindings) -> bool:
    if node is None or isinstance(node, ast.Constant):
        return True
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return all(_is_constant(e, names) for e in node.elts)
    if isinstance(node, ast.Dict):
        return all(k is not None and _is_constant(k, names) for k in node.keys) and all(
            _is_constant(v, names) for v in node.values
        )
    if isinstance(node, ast.UnaryOp):
        return _is_constant(node.operand, names)
    if isinstance(node, ast.Call):
        return _idiom_problem(node, names) is None
    return False


def _literal(node: ast.expr, names: _Bindings) -> bool:
    """A literal container (or constant) whose items are constants."""
    return isinstance(node, (ast.Tuple, ast.List, ast.Set, ast.Dict, ast.Constant)) and _is_constant(
        node, names
    )


def _re_flags(node: ast.expr, names: _Bindings) -> bool:
    if isinstance(node, ast.Constant):
        return isinstance(node.value, int)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _re_flags(node.left, names) and _re_flags(node.right, names)
    return (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and names.is_module(node.value.id, "re")
        and node.attr.isupper()
    )


def _type_expr(node: ast.expr | None) -> bool:
    """A type expression: names, attributes, subscripts, ``|``, strings, ``None`` — no calls."""
    if node is None:
        return True
    return not any(
        isinstance(sub, (ast.Call, ast.NamedExpr, ast.Lambda, ast.Await)) for sub in ast.walk(node)
    )


def _callee(node: ast.Call, names: _Bindings) -> tuple[str, bool] | None:
    """``(idiom, trusted)`` for ``re.compile``, ``logging.getLogger``, ``frozenset``…"""
    func = node.func
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        module, attr = func.value.id, func.attr
        for wanted, call in (("re", "compile"), ("logging", "getLogger")):
            if attr == call and module == wanted:
                return f"{wanted}.{call}", names.is_module(module, wanted)
        if attr in _TYPE_FACTORIES and module in ("typing", "typing_extensions"):
            return attr, names.is_module(module, module)
        return None
    if isinstance(func, ast.Name):
        name = func.id
        if name in _CONTAINERS:
            return name, names.is_builtin(name)
        if name == "getLogger":
            return "logging.getLogger", names.is_from(name, "logging")
        if name in _TYPE_FACTORIES:
            return name, names.is_from(name, "typing") or names.is_from(name, "typing_extensions")
    return None


def _idiom_problem(node: ast.Call, names: _Bindings) -> str | None:
    """None if the call is an accepted idiom, else why not."""
    found = _callee(node, names)
    if found is None:
        return FIX
    idiom, trusted = found
    if not trusted:
        return f"{idiom} is not the standard one here (rebound, patched or shadowed); {FIX}"
    args, kws = node.args, node.keywords
    if idiom == "re.compile":
        ok = (
            1 <= len(args) <= 2
            and isinstance(args[0], ast.Constant)
            and isinstance(args[0].value, (str, bytes))
            and all(_re_flags(a, names) for a in args[1:])
            and all(k.arg == "flags" and _re_flags(k.value, names) for k in kws)
        )
        return None if ok else "re.compile() at module level takes only a constant pattern and flags"
    if idiom == "logging.getLogger":
        ok = not kws and (
            not args
            or (
                len(args) == 1
                and (
                    (
                        isinstance(args[0], ast.Name)
                        and args[0].id == "__name__"
                        and "__name__" not in names.imports
                    )
                    or (isinstance(args[0], ast.Constant) and isinstance(args[0].value, str))
                )
            )
        )
        return None if ok else "logging.getLogger() at module level takes only __name__ or a string"
    if idiom in _CONTAINERS:
        ok = not kws and (not args or (len(args) == 1 and _literal(args[0], names)))
        return None if ok else f"{idiom}() at module level takes only a literal of constants"
    ok = (
        bool(args)
        and isinstance(args[0], ast.Constant)
        and isinstance(args[0].value, str)
        and all(_type_expr(a) for a in args[1:])
        and all(_type_expr(k.value) for k in kws)
    )
    return None if ok else f"{idiom}() at module level takes a constant name and type expressions"


def _type_alias(stmt: ast.AnnAssign, names: _Bindings) -> bool:
    ann = stmt.annotation
    if isinstance(ann, ast.Name) and ann.id == "TypeAlias":
        trusted = names.is_from("TypeAlias", "typing") or names.is_from("TypeAlias", "typing_extensions")
    elif isinstance(ann, ast.Attribute) and ann.attr == "TypeAlias" and isinstance(ann.value, ast.Name):
        trusted = names.is_module(ann.value.id, ann.value.id) and ann.value.id in (
            "typing",
            "typing_extensions",
        )
    else:
        return False
    return trusted and _type_expr(stmt.value)


def _names_only(target: ast.expr) -> bool:
    """``x = …`` / ``a, b = …`` bind names; ``obj.attr = …`` and ``d[k] = …`` change objects."""
    if isinstance(target, ast.Name):
        return True
    return isinstance(target, (ast.Tuple, ast.List)) and all(_names_only(e) for e in target.elts)


def _statement_problem(stmt: ast.stmt, first: bool, names: _Bindings) -> str | None:
    if isinstance(stmt, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return None
    if first and isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
        return None  # module docstring
    type_alias = getattr(ast, "TypeAlias", None)
    if type_alias is not None and isinstance(stmt, type_alias):
        return None if _type_expr(stmt.value) else "a type alias must not call anything; " + FIX
    if isinstance(stmt, ast.AnnAssign) and _type_alias(stmt, names):
        return None
    if isinstance(stmt, (ast.Assign, ast.AnnAssign)) and all(
        _names_only(t) for t in (stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target])
    ):
        value = stmt.value
        if _is_constant(value, names):
            return None
        if isinstance(value, ast.Call):
            return _idiom_problem(value, names)
        return FIX
    if (
        isinstance(stmt, ast.If)
        and isinstance(stmt.test, (ast.Name, ast.Attribute))
        and ast.unparse(stmt.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")
        and all(isinstance(s, (ast.Import, ast.ImportFrom)) for s in stmt.body)
        and not stmt.orelse
    ):
        return None
    return FIX


def module_code_findings(tree: ast.Module) -> list[tuple[int, str]]:
    """``(line, message)`` for every top-level statement that may run code at import time."""
    names = _Bindings(tree)
    out: list[tuple[int, str]] = []
    for i, stmt in enumerate(tree.body):
        problem = _statement_problem(stmt, i == 0, names)
        if problem is not None:
            out.append((stmt.lineno, f"top-level {type(stmt).__name__} runs code at import time: {problem}"))
    return out
