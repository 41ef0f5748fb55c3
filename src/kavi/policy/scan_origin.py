"""Where a value in a path comes from, for the path folder.

:class:`Origins` is the half of :class:`kavi.policy.scan_pathfold.PathFolder` that
answers provenance questions the path grammar cannot: is this object the skill context
Kavi passes (``ctx`` — by where it comes from, not by its method names)? What does
pytest give this test parameter (``tmp_path``, a fixture of the file)? What does a
function of this file return? Where does a :mod:`tempfile` call create its file, and
what does ``with … as name`` or ``for root, _, _ in os.walk(d)`` bind?
"""

from __future__ import annotations

import ast
from abc import ABC, abstractmethod

from kavi.policy.scan_fold import MAX_CANDS, MAX_DEPTH, Folder, Resolver
from kavi.policy.scan_places import NOT_A_PATH, SCRATCH
from kavi.policy.scan_scope import Rec, Scope
from kavi.policy.scan_sinks import TEMPFILE_FUNCS

PathCand = tuple[str, bool]  # (text, complete?)
#: One file name chosen at run time (``os.listdir``, ``os.walk``): no separator, never absolute.
SOME_NAME: PathCand = ("*", False)

#: What a skill must not rewrite on its context for resolve_*() to stay trustworthy.
_CONTEXT_ATTRS = frozenset(
    ("*", "vault_root", "allowed_write_paths", "resolve_write_path", "resolve_read_path")
)
_CONTEXT_NAMES = frozenset(("ctx", "context"))
_CONTEXT_CLASSES = frozenset(("kavi.skills.base.SkillContext",))
_SCRATCH_PARAMS = frozenset(("tmp_path", "tmpdir", "tmp_path_factory", "tmpdir_factory"))
_TEMP_FILE_OBJECTS = frozenset(
    ("tempfile.NamedTemporaryFile", "tempfile.TemporaryFile", "tempfile.SpooledTemporaryFile")
)
#: Calls whose result is a file descriptor or file object (not judged as a path).
NOT_PATHS = frozenset(
    (
        "os.open",
        "os.dup",
        "os.dup2",
        "os.fdopen",
        "os.openpty",
        "builtins.open",
        "codecs.open",
        "gzip.open",
        "bz2.open",
        "lzma.open",
        "io.BytesIO",
        "io.StringIO",
        "io.TextIOWrapper",
        "io.BufferedWriter",
        "io.BufferedReader",
        "sys.stdout",
        "sys.stderr",
        "sys.stdin",
        "sys.__stdout__",
        "sys.__stderr__",
        *_TEMP_FILE_OBJECTS,
    )
)
NOT_PATH_METHODS = frozenset(("fileno", "open", "makefile"))


class Origins(Folder, ABC):
    def __init__(self, resolver: Resolver) -> None:
        super().__init__(resolver)
        self._fixtures: dict[str, list[Scope]] | None = None
        self._returns: dict[int, list[ast.expr]] = {}
        self._ctx_active: set[int] = set()

    @abstractmethod
    def path(self, node: ast.AST, scope: Scope) -> list[PathCand] | None:
        """The candidates of a path expression (see :class:`PathFolder`)."""

    def _returned_paths(self, func: ast.expr, scope: Scope) -> list[PathCand] | None:
        """``key_path()`` of a function of this file: what its ``return`` statements give."""
        atoms = self.res.quiet(func, scope).atoms
        if not atoms or any(a[0] != "f" for a in atoms):
            return None
        out: list[PathCand] = []
        for atom in atoms:
            fs = self.res.by_ident[int(atom[2:])]
            key = (id(fs), "/return")
            if key in self._active:
                return None
            self._active.add(key)
            try:
                for value in self._returned_values(fs):
                    got = self.path(value, fs)
                    if got is None:
                        return None
                    out.extend(got)
            finally:
                self._active.discard(key)
        return out if out and len(out) <= MAX_CANDS else None

    def _param_origin(self, fs: Scope, name: str) -> list[PathCand] | None:
        """The value pytest gives a test's parameter: ``tmp_path`` or a fixture of the file."""
        if not self.res.test_module:
            return None
        if name in _SCRATCH_PARAMS:
            return [(SCRATCH, True)]
        out: list[PathCand] = []
        for fixture in self._fixture_scopes().get(name, ()):
            if fixture is fs:
                return None
            for value in self._returned_values(fixture):
                got = self.path(value, fixture)
                if got is None:
                    return None
                out.extend(got)
        return out or None

    def _returned_values(self, fs: Scope) -> list[ast.expr]:
        """What function ``fs`` returns or yields (its lambda body), computed once."""
        got = self._returns.get(fs.ident)
        if got is None:
            node = fs.node
            if isinstance(node, ast.Lambda):
                got = [node.body]
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                got = _returned(node.body)
            else:
                got = []
            self._returns[fs.ident] = got
        return got

    def _fixture_scopes(self) -> dict[str, list[Scope]]:
        if self._fixtures is None:
            found: dict[str, list[Scope]] = {}
            for scope in self.res.by_ident:
                node = scope.node
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and any(
                    _decorator_name(d).endswith("fixture") for d in node.decorator_list
                ):
                    found.setdefault(node.name, []).append(scope)
            self._fixtures = found
        return self._fixtures

    def is_context(self, node: ast.expr, scope: Scope) -> bool:
        """Is ``node`` the :class:`SkillContext` Kavi passes (or, in a test, one it builds)?"""
        if self.res.attr_written & _CONTEXT_ATTRS or self.res.own_methods() & _CONTEXT_ATTRS:
            return False  # the file rewrites what the context's methods rely on
        key = id(node)
        if key in self._ctx_active or self._depth > MAX_DEPTH:
            return False
        self._ctx_active.add(key)
        self._depth += 1
        try:
            return self._context(node, scope)
        finally:
            self._depth -= 1
            self._ctx_active.discard(key)

    def _context(self, node: ast.expr, scope: Scope) -> bool:
        if isinstance(node, ast.Name):
            fs = self.res.param_scope(node.id, scope)
            if fs is not None:
                recs = fs.recs_of(node.id) or {}
                if fs.from_outside() and not _context_param(fs, node.id):
                    return False
                if not fs.from_outside() and not recs:
                    return False
                return self._all_context(recs)
            return self._all_context(self.res.recs_for(node.id, scope) or {}, required=True)
        if isinstance(node, ast.Attribute):
            return self._all_context(self.res.attr_recs_for(node.attr) or {}, required=True)
        if isinstance(node, ast.Call) and self.res.test_module:
            return any(q in _CONTEXT_CLASSES for q in self._qual(node.func, scope))
        return False

    def _all_context(self, recs: dict[tuple[int, int], Rec], required: bool = False) -> bool:
        if required and not recs:
            return False
        for kind, expr, rscope, _ in list(recs.values()):
            if kind != "=" or not isinstance(expr, ast.expr) or rscope is None:
                return False
            if isinstance(expr, ast.Constant) and expr.value is None:
                continue  # ``_ctx: SkillContext | None = None``: no path comes from None
            if not self.is_context(expr, rscope):
                return False
        return True

    def _tempfile_call(self, node: ast.expr, scope: Scope, depth: int) -> tuple[str, ast.Call, Scope] | None:
        """The :mod:`tempfile` call ``node`` is (or a name bound to it / by ``with`` is)."""
        if depth > 6:
            return None
        if isinstance(node, ast.Call):
            for qual in self._qual(node.func, scope):
                if qual in TEMPFILE_FUNCS:
                    return qual, node, scope
            return None
        if isinstance(node, ast.Name):
            found: tuple[str, ast.Call, Scope] | None = None
            for kind, expr, rscope, _ in list((self.res.recs_for(node.id, scope) or {}).values()):
                if kind not in ("=", "with") or not isinstance(expr, ast.expr) or rscope is None:
                    return None
                got = self._tempfile_call(expr, rscope, depth + 1)
                if got is None or (found is not None and got[0] != found[0]):
                    return None
                found = got
            return found
        return None

    def _temp_dir(self, qual: str, node: ast.Call, scope: Scope) -> list[PathCand] | None:
        """Where a :mod:`tempfile` call creates its file or directory (a prefix)."""
        index = TEMPFILE_FUNCS.get(qual, 2)
        arg = node.args[index] if len(node.args) > index else None
        arg = next((k.value for k in node.keywords if k.arg == "dir"), arg)
        if arg is None or (isinstance(arg, ast.Constant) and arg.value is None):
            return [(SCRATCH + "/", False)] if self.res.test_module else [("/tmp/", False)]
        inner = self.path(arg, scope)
        if inner is None:
            return None
        return [((t if t.endswith("/") or not c else t + "/"), False) for t, c in inner]

    def _walked(self, expr: ast.expr, scope: Scope) -> list[PathCand] | None:
        """``for root, dirs, files in os.walk(d)``: ``root`` is ``d`` or below it."""
        if not isinstance(expr, ast.Call) or not expr.args:
            return None
        quals = self._qual(expr.func, scope)
        if any(q in ("os.walk", "os.fwalk") for q in quals):
            inner = self.path(expr.args[0], scope)
            return None if inner is None else [_below(c) for c in inner]
        return None

    def _listed(self, expr: ast.Call, scope: Scope) -> list[PathCand] | None:
        """``for p in Path(d).iterdir()`` / ``.glob(…)``: ``p`` is below ``d``;
        ``for name in os.listdir(d)``: ``name`` is one plain name."""
        func = expr.func
        if any(q == "os.listdir" for q in self._qual(func, scope)):
            return [SOME_NAME]
        if (
            isinstance(func, ast.Attribute)
            and func.attr in ("iterdir", "glob", "rglob")
            and not self._qual(func, scope)
        ):
            inner = self.path(func.value, scope)
            return None if inner is None else [_below(c) for c in inner]
        return None

    def _walked_names(self, expr: ast.Name, scope: Scope) -> list[PathCand] | None:
        """``for root, dirs, files in os.walk(d): for f in files``: ``f`` is a plain name."""
        recs = self.res.recs_for(expr.id, scope) or {}
        for kind, walked, rscope, index in list(recs.values()):
            if (
                kind != "iter-unpack"
                or index not in (1, 2)
                or not isinstance(walked, ast.Call)
                or rscope is None
            ):
                return None
            if not any(q in ("os.walk", "os.fwalk") for q in self._qual(walked.func, rscope)):
                return None
        return [SOME_NAME] if recs else None

    def _with_path(self, expr: ast.expr, scope: Scope) -> list[PathCand] | None:
        """The name ``with <expr> as name`` binds, when it is a path or a file object."""
        temp = self._tempfile_call(expr, scope, 0)
        if temp is not None:
            return self._temp_dir(*temp) if temp[0] == "tempfile.TemporaryDirectory" else [(NOT_A_PATH, True)]
        if isinstance(expr, ast.Call):
            func = expr.func
            if any(q in NOT_PATHS for q in self._qual(func, scope)) or (
                isinstance(func, ast.Attribute) and func.attr in NOT_PATH_METHODS
            ):
                return [(NOT_A_PATH, True)]
        return None


def _context_param(fs: Scope, name: str) -> bool:
    """Is parameter ``name`` of ``fs`` the skill context (annotated ``SkillContext``, or an
    unannotated ``ctx``/``context``)?"""
    node = fs.node
    args = getattr(node, "args", None)
    if not isinstance(args, ast.arguments):
        return False
    for arg in (*args.posonlyargs, *args.args, *args.kwonlyargs):
        if arg.arg == name:
            ann = arg.annotation
            if ann is None:
                return name in _CONTEXT_NAMES
            if isinstance(ann, ast.Constant) and isinstance(ann.value, str):
                return ann.value.rsplit(".", 1)[-1] == "SkillContext"
            return _decorator_name(ann) == "SkillContext"
    return False


def _decorator_name(node: ast.expr) -> str:
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Attribute):
        return node.attr
    return getattr(node, "id", "")


def _returned(body: list[ast.stmt]) -> list[ast.expr]:
    """The values a function body returns or yields (not those of nested definitions)."""
    out: list[ast.expr] = []
    stack: list[ast.stmt] = list(body)
    while stack:  # statements only: ``return x`` / ``yield x`` as a statement
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        if isinstance(node, ast.Return) and node.value is not None:
            out.append(node.value)
        elif (
            isinstance(node, ast.Expr)
            and isinstance(node.value, (ast.Yield, ast.YieldFrom))
            and node.value.value is not None
        ):
            out.append(node.value.value)
        for field in ("body", "orelse", "finalbody"):
            children = getattr(node, field, None)
            if isinstance(children, list):
                stack.extend(c for c in children if isinstance(c, ast.stmt))
        for holder in (*getattr(node, "handlers", ()), *getattr(node, "cases", ())):
            stack.extend(holder.body)
    return out


def _below(cand: PathCand) -> PathCand:
    """Some path inside the directory ``cand`` names."""
    text, complete = cand
    if not complete:
        return cand
    return (text if text.endswith("/") else text + "/", False)
