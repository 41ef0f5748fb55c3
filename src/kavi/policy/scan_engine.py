"""The AST scanner's analysis: an abstract interpreter over one module.

It walks the whole tree in execution order (class bodies, decorators, defaults,
annotations, nested functions, comprehensions, ``match`` — everything, including
branches that look dead), evaluating every expression to a :class:`Val` that says
which dangerous or sensitive objects it may be. Findings are emitted where a
dangerous object is *reached* — a reference, not only a call — so aliases,
``functools.partial``, ``map(eval, …)``, returned functions and containers are all
caught at the point where the object is first named or computed.

Data flow is flow-insensitive per scope (a name's value is the union of everything
bound to it) with Python's real scoping (locals, closures, ``global``/``nonlocal``,
class bodies, module names that only shadow builtins once bound). Calls of functions
defined in the file bind arguments to parameters and return the union of their
``return``/``yield`` values; attributes stored on any object are tracked by name.
When a binding arrives after a use that could change the verdict, the module is
analysed again (at most :data:`MAX_PASSES` times).

Write targets, computed ``getattr`` names and namespace keys are judged after the
last pass, with all bindings known (see :mod:`kavi.policy.scan_writes`).
"""

from __future__ import annotations

import ast
from collections.abc import Sequence

from kavi.policy.scan_calls import CallEvaluator
from kavi.policy.scan_names import canon_cached
from kavi.policy.scan_scope import (
    CLASS,
    UNK,
    Rec,
    Scope,
    Val,
    container,
    contents,
    union,
)
from kavi.policy.scan_tables import Danger

MAX_PASSES = 4

_NO_REC: Rec = ("?", None, None, 0)
_TYPE_CHECKING = frozenset(("q:typing.TYPE_CHECKING", "q:typing_extensions.TYPE_CHECKING"))

Finding = tuple[int, int, str, str]
# decorators that leave the function called where the file calls it
_TRANSPARENT_DECORATORS = frozenset(
    (
        "classmethod",
        "deleter",
        "abstractmethod",
        "override",
        "overload",
        "final",
        "wraps",
        "lru_cache",
        "cache",
        "contextmanager",
        "asynccontextmanager",
        "singledispatch",
        "singledispatchmethod",
    )
)


def _names_in_target(target: ast.AST, out: set[str]) -> None:
    if isinstance(target, ast.Name):
        out.add(target.id)
    elif isinstance(target, (ast.Tuple, ast.List)):
        for elt in target.elts:
            _names_in_target(elt, out)
    elif isinstance(target, ast.Starred):
        _names_in_target(target.value, out)


def _class_constant(annotation: ast.expr, kinds: tuple[str, ...]) -> bool:
    """``ClassVar[...]``/``Final`` (a class constant, not a field callers set) or the
    skill context (``SkillContext | None``), which Kavi, not a caller, provides."""
    for node in ast.walk(annotation):
        name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", None)
        if name in kinds:
            return True
    return False


def _is_test_module(body: Sequence[ast.stmt]) -> bool:
    """Tests, not a skill: test functions (or ``Test*`` classes) at module level and no
    class extending ``BaseSkill`` there (the invariants require the skill class by that name)."""
    has_tests = False
    for st in body:
        if isinstance(st, ast.ClassDef):
            for base in st.bases:
                head = base.value if isinstance(base, ast.Subscript) else base
                name = head.attr if isinstance(head, ast.Attribute) else getattr(head, "id", "")
                if name == "BaseSkill":
                    return False
            has_tests = has_tests or st.name.startswith("Test")
        elif isinstance(st, (ast.FunctionDef, ast.AsyncFunctionDef)) and st.name.startswith("test"):
            has_tests = True
    return has_tests


class Analyzer(CallEvaluator):
    """Analyse one parsed module under one compiled policy: ``Analyzer(cp, tree).run()``."""

    def run(self) -> list[Finding]:
        self._prescan(self.tree.body)
        for _ in range(MAX_PASSES):
            # Findings accumulate across passes (more bindings only add dangers);
            # deferred checks and write sinks are judged once, after the last pass.
            self.deferred = []
            self.tc_findings = []
            self.writes.reset()
            self.env.reset()
            self.dirty = False
            self.loop_depth = 0
            self.module.bound_now = set()
            self.stmts(self.tree.body, self.module, True)
            if not self.dirty:
                break
        self._run_deferred()
        self.writes.check_all()
        self.env.check_all()
        for node, d, test, scope in self.tc_findings:
            if not self._type_checking_is_real(test, scope):
                self.emit(node, d.rule, d.what)
        for scope in self.by_ident:  # records point back at scopes: break the cycles
            scope.rec_log.clear()
            scope.recs.clear()
        return [(line, col, rule, msg) for (line, col, rule), msg in self.findings.items()]

    def _prescan(self, body: Sequence[ast.stmt]) -> None:
        definite: set[str] = set()
        deleted: set[str] = set()
        stars: list[str] = []

        def nested(stmts: Sequence[ast.stmt]) -> None:
            for st in stmts:
                if isinstance(st, ast.ImportFrom) and not st.level:
                    if any(a.name == "*" for a in st.names) and st.module:
                        stars.append(st.module)
                elif isinstance(st, ast.Delete):
                    for t in st.targets:
                        _names_in_target(t, deleted)
                elif isinstance(st, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    continue
                for field in ("body", "orelse", "finalbody"):
                    sub = getattr(st, field, None)
                    if isinstance(sub, list):
                        nested(sub)
                for handler in getattr(st, "handlers", ()):
                    nested(handler.body)
                for case in getattr(st, "cases", ()):
                    nested(case.body)

        for st in body:
            if isinstance(st, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                definite.add(st.name)
            elif isinstance(st, ast.Import):
                for a in st.names:
                    definite.add(a.asname or a.name.split(".", 1)[0])
            elif isinstance(st, ast.ImportFrom):
                for a in st.names:
                    if a.name != "*":
                        definite.add(a.asname or a.name)
            elif isinstance(st, ast.Assign):
                for t in st.targets:
                    _names_in_target(t, definite)
            elif isinstance(st, ast.AnnAssign) and st.value is not None:
                _names_in_target(st.target, definite)
        nested(body)
        self.module.definite = frozenset(definite - deleted)
        self.module.stars = stars
        self.test_module = _is_test_module(body)

    def s_nothing(self, node: ast.AST, scope: Scope, top: bool) -> None:
        return None

    def s_expr(self, node: ast.Expr, scope: Scope, top: bool) -> None:
        self.ev(node.value, scope)

    def s_assign(self, node: ast.Assign, scope: Scope, top: bool) -> None:
        value = node.value
        targets = node.targets
        if (
            len(targets) == 1
            and isinstance(targets[0], (ast.Tuple, ast.List))
            and isinstance(value, (ast.Tuple, ast.List))
            and len(targets[0].elts) == len(value.elts)
            and not any(isinstance(e, ast.Starred) for e in (*targets[0].elts, *value.elts))
        ):
            for t, e in zip(targets[0].elts, value.elts, strict=True):
                self.assign(t, self.ev(e, scope), scope, ("=", e, scope, 0), top)
            return
        v = self.ev(value, scope)
        rec: Rec = ("=", value, scope, 0)
        if scope.kind == CLASS:
            self.gateway_escape(value, v, "stored as a class attribute")
        for t in targets:
            self.assign(t, v, scope, rec, top)

    def s_augassign(self, node: ast.AugAssign, scope: Scope, top: bool) -> None:
        v = self.ev(node.value, scope)
        target = node.target
        if isinstance(target, ast.Name):
            cur, _ = self.lookup(target.id, scope)
            rec: Rec = ("aug", node, scope, 1 if self.loop_depth else 0)
            self.bind(scope, target.id, union(cur, v), rec, (id(node), 0))
        else:
            if "q:sys.path" in self.quiet(target, scope).atoms:
                self.writes.import_dir(node, scope, "sys.path +=", node.value)
            if isinstance(target, ast.Subscript):
                self.env.subscript(target, scope, True)  # ``os.environ[k] += …`` reads it first
            self.assign(target, v, scope, _NO_REC, False)
            if isinstance(target, ast.Attribute):
                self.ev(target.value, scope)

    def s_annassign(self, node: ast.AnnAssign, scope: Scope, top: bool) -> None:
        self.annotation(node.annotation, scope)
        if scope.kind == CLASS and isinstance(node.target, ast.Name):
            name = node.target.id
            if name not in scope.fields:
                scope.fields.append(name)
            if not _class_constant(node.annotation, ("ClassVar", "Final", "SkillContext")):
                # a field (dataclass, pydantic): set by whoever builds the object — out of
                # sight, whatever its default, unless only this file builds it
                self.attr_rec(name, (id(node), 1), ("field", node, scope, 0))
        if node.value is not None:
            v = self.ev(node.value, scope)
            self.assign(node.target, v, scope, ("=", node.value, scope, 0), top)
        elif not isinstance(node.target, ast.Name):
            self.ev(node.target, scope)

    def s_return(self, node: ast.Return, scope: Scope, top: bool) -> None:
        if node.value is not None:
            v = self.ev(node.value, scope)
            self.gateway_escape(node.value, v, "returned")
            self.returns(scope, v)

    def s_if(self, node: ast.If, scope: Scope, top: bool) -> None:
        test = node.test
        self.ev(test, scope)
        if getattr(test, "id", None) == "TYPE_CHECKING" or getattr(test, "attr", None) == "TYPE_CHECKING":
            saved = self.type_checking
            self.type_checking = (test, scope)
            self.stmts(node.body, scope)
            self.type_checking = saved
        else:
            self.stmts(node.body, scope)
        self.stmts(node.orelse, scope)

    def import_finding(self, node: ast.AST, d: Danger) -> None:
        """Findings of import statements; inside ``if TYPE_CHECKING:`` they are kept
        aside and dropped at the end if that really is ``typing.TYPE_CHECKING``."""
        if self.type_checking is None:
            self.emit(node, d.rule, d.what)
        else:
            test, scope = self.type_checking
            self.tc_findings.append((node, d, test, scope))

    def _type_checking_is_real(self, test: ast.expr, scope: Scope) -> bool:
        if self.tc_tampered:
            return False
        atoms = self.quiet(test, scope).atoms
        if not atoms or not atoms <= _TYPE_CHECKING:
            return False
        name = test.id if isinstance(test, ast.Name) else getattr(test.value, "id", None)  # type: ignore[attr-defined]
        if not isinstance(name, str):
            return False
        recs = self.recs_for(name, scope) or {}
        return all(rec[0] == "?" and rec[1] is None for rec in recs.values())

    def s_for(self, node: ast.For | ast.AsyncFor, scope: Scope, top: bool) -> None:
        it = self.ev(node.iter, scope)
        self.loop_depth += 1
        self.assign(node.target, contents(it), scope, ("iter", node.iter, scope, 0), False)
        self.stmts(node.body, scope)
        self.loop_depth -= 1
        self.stmts(node.orelse, scope)

    def s_while(self, node: ast.While, scope: Scope, top: bool) -> None:
        self.ev(node.test, scope)
        self.loop_depth += 1
        self.stmts(node.body, scope)
        self.loop_depth -= 1
        self.stmts(node.orelse, scope)

    def s_with(self, node: ast.With | ast.AsyncWith, scope: Scope, top: bool) -> None:
        for item in node.items:
            if item.optional_vars is None:
                self.env.bare.add(id(item.context_expr))
            v = self.ev(item.context_expr, scope)
            if item.optional_vars is not None:
                self.assign(item.optional_vars, v, scope, ("with", item.context_expr, scope, 0), False)
        self.stmts(node.body, scope)

    def s_try(self, node: ast.Try | ast.TryStar, scope: Scope, top: bool) -> None:
        self.stmts(node.body, scope)
        for handler in node.handlers:
            if handler.type is not None:
                self.ev(handler.type, scope)
            if handler.name:
                self.bind(scope, handler.name, UNK, _NO_REC, (id(handler), 0))
            self.stmts(handler.body, scope)
        self.stmts(node.orelse, scope)
        self.stmts(node.finalbody, scope)

    def s_raise(self, node: ast.Raise, scope: Scope, top: bool) -> None:
        if node.exc is not None:
            self.ev(node.exc, scope)
            if isinstance(node.exc, ast.Call):  # ``raise E(obj)`` ... ``e.args[0]``
                for arg in node.exc.args:
                    v = self.ev(arg, scope)
                    if v is not UNK:
                        self.attr_store("args", container(v))
        if node.cause is not None:
            self.ev(node.cause, scope)

    def s_assert(self, node: ast.Assert, scope: Scope, top: bool) -> None:
        self.ev(node.test, scope)
        if node.msg is not None:
            self.ev(node.msg, scope)

    def s_delete(self, node: ast.Delete, scope: Scope, top: bool) -> None:
        for t in node.targets:
            if isinstance(t, ast.Name):
                scope.bound_now.discard(t.id)
            elif isinstance(t, (ast.Attribute, ast.Subscript)):
                if isinstance(t, ast.Subscript):
                    self.env.subscript(t, scope, False)
                self.ev(t.value, scope)
                if isinstance(t, ast.Subscript):
                    self.ev(t.slice, scope)

    def s_global(self, node: ast.Global, scope: Scope, top: bool) -> None:
        scope.globals_decl.update(node.names)

    def s_nonlocal(self, node: ast.Nonlocal, scope: Scope, top: bool) -> None:
        scope.nonlocals_decl.update(node.names)

    def s_import(self, node: ast.Import, scope: Scope, top: bool) -> None:
        for alias in node.names:
            name = alias.name
            d = self.cp.import_danger(name)
            if d is not None:
                self.import_finding(node, d)
            if alias.asname:
                self.bind(scope, alias.asname, self.q(canon_cached(name)), _NO_REC, (id(alias), 0), top)
            else:
                root = name.split(".", 1)[0]
                self.bind(scope, root, self.q(canon_cached(root)), _NO_REC, (id(alias), 0), top)

    def s_importfrom(self, node: ast.ImportFrom, scope: Scope, top: bool) -> None:
        module = node.module or ""
        if node.level:
            for alias in node.names:
                if alias.name != "*":
                    self.bind(scope, alias.asname or alias.name, UNK, _NO_REC, (id(alias), 0), top)
            return
        if module == "__future__":
            return
        d = self.cp.import_danger(module)
        if d is not None:
            self.import_finding(node, d)
        for alias in node.names:
            if alias.name == "*":
                continue
            full = module + "." + alias.name
            if d is None:
                d2 = self.cp.import_danger(full)
                if d2 is not None:
                    self.import_finding(node, d2)
            self.bind(
                scope, alias.asname or alias.name, self.q(canon_cached(full)), _NO_REC, (id(alias), 0), top
            )

    def s_funcdef(self, node: ast.FunctionDef | ast.AsyncFunctionDef, scope: Scope, top: bool) -> None:
        is_static = is_property = escaped = False
        for deco in node.decorator_list:
            self.env.bare.add(id(deco))
            self.ev(deco, scope)
            head = deco.func if isinstance(deco, ast.Call) else deco
            name = head.attr if isinstance(head, ast.Attribute) else getattr(head, "id", "")
            if name == "staticmethod":
                is_static = True
            elif name in ("property", "cached_property", "setter", "getter"):
                is_property = True
            elif name not in _TRANSPARENT_DECORATORS:
                escaped = True  # ``@pytest.fixture``, ``@field_validator``: called from elsewhere
        fs = self._function_scope(node, node.args, scope)
        fs.is_static = is_static
        fs.is_property = is_property
        fs.escaped = fs.escaped or escaped
        for arg in (*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs):
            if arg.annotation is not None:
                self.annotation(arg.annotation, scope)
        for extra in (node.args.vararg, node.args.kwarg):
            if extra is not None and extra.annotation is not None:
                self.annotation(extra.annotation, scope)
        if node.returns is not None:
            self.annotation(node.returns, scope)
        saved = self.loop_depth
        self.loop_depth = 0
        self.stmts(node.body, fs)
        self.loop_depth = saved
        fval = self.atom_val(f"f:{fs.ident}")
        self.bind(scope, node.name, fval, _NO_REC, (id(node), 0), top)
        if is_property and scope.kind == CLASS and fs.ret is not UNK:
            self.attr_store(node.name, fs.ret)

    def s_classdef(self, node: ast.ClassDef, scope: Scope, top: bool) -> None:
        for deco in node.decorator_list:
            self.ev(deco, scope)
        bases = [self.ev(base, scope) for base in node.bases]
        for kw in node.keywords:
            self.ev(kw.value, scope)
        cs = self.scope_for(node, CLASS, scope)
        cs.bases = bases
        cs.bound_now = set()
        saved = self.loop_depth
        self.loop_depth = 0
        self.stmts(node.body, cs, True)
        self.loop_depth = saved
        self.bind(scope, node.name, self.atom_val(f"c:{cs.ident}"), _NO_REC, (id(node), 0), top)

    def s_match(self, node: ast.Match, scope: Scope, top: bool) -> None:
        subject = self.ev(node.subject, scope)
        captured = union(subject, contents(subject))
        for case in node.cases:
            self._pattern(case.pattern, captured, scope)
            if case.guard is not None:
                self.ev(case.guard, scope)
            self.stmts(case.body, scope)

    def _pattern(self, pat: ast.pattern, v: Val, scope: Scope) -> None:
        if isinstance(pat, ast.MatchValue):
            self.ev(pat.value, scope)
        elif isinstance(pat, ast.MatchAs):
            if pat.pattern is not None:
                self._pattern(pat.pattern, v, scope)
            if pat.name:
                self.bind(scope, pat.name, v, _NO_REC, (id(pat), 0))
        elif isinstance(pat, ast.MatchStar):
            if pat.name:
                self.bind(scope, pat.name, container(v), _NO_REC, (id(pat), 0))
        elif isinstance(pat, (ast.MatchOr, ast.MatchSequence)):
            for p in pat.patterns:
                self._pattern(p, v, scope)
        elif isinstance(pat, ast.MatchMapping):
            for k in pat.keys:
                self.ev(k, scope)
            for p in pat.patterns:
                self._pattern(p, v, scope)
            if pat.rest:
                self.bind(scope, pat.rest, v, _NO_REC, (id(pat), 0))
        elif isinstance(pat, ast.MatchClass):
            self.ev(pat.cls, scope)
            for p in pat.patterns:
                self._pattern(p, v, scope)
            for name, p in zip(pat.kwd_attrs, pat.kwd_patterns, strict=True):
                # ``case object(system=f)`` reads ``subject.system`` and binds it to ``f``.
                d = self.cp.attr_rules.get(name)
                if d is not None:
                    self.emit(p, d.rule, d.what)
                sub = self.attr_of(v, name)
                if v is not UNK and sub is not UNK:
                    self.flag_new(p, sub, v)
                    self._flag_marker_attr(p, v, name)
                self._pattern(p, union(v, sub), scope)


Analyzer._E = {
    ast.Name: Analyzer.e_name,
    ast.Attribute: Analyzer.e_attribute,
    ast.Call: Analyzer.e_call,
    ast.Constant: Analyzer.e_constant,
    ast.Subscript: Analyzer.e_subscript,
    ast.BinOp: Analyzer.e_binop,
    ast.BoolOp: Analyzer.e_boolop,
    ast.UnaryOp: Analyzer.e_unaryop,
    ast.Compare: Analyzer.e_compare,
    ast.IfExp: Analyzer.e_ifexp,
    ast.Tuple: Analyzer.e_seq,
    ast.List: Analyzer.e_seq,
    ast.Set: Analyzer.e_seq,
    ast.Dict: Analyzer.e_dict,
    ast.JoinedStr: Analyzer.e_joinedstr,
    ast.FormattedValue: Analyzer.e_formatted,
    ast.Starred: Analyzer.e_starred,
    ast.Slice: Analyzer.e_slice,
    ast.Lambda: Analyzer.e_lambda,
    ast.ListComp: Analyzer.e_comp,
    ast.SetComp: Analyzer.e_comp,
    ast.GeneratorExp: Analyzer.e_comp,
    ast.DictComp: Analyzer.e_comp,
    ast.Await: Analyzer.e_await,
    ast.Yield: Analyzer.e_yield,
    ast.YieldFrom: Analyzer.e_yield,
    ast.NamedExpr: Analyzer.e_namedexpr,
}

Analyzer._S = {
    ast.Expr: Analyzer.s_expr,
    ast.Assign: Analyzer.s_assign,
    ast.AugAssign: Analyzer.s_augassign,
    ast.AnnAssign: Analyzer.s_annassign,
    ast.Return: Analyzer.s_return,
    ast.If: Analyzer.s_if,
    ast.For: Analyzer.s_for,
    ast.AsyncFor: Analyzer.s_for,
    ast.While: Analyzer.s_while,
    ast.With: Analyzer.s_with,
    ast.AsyncWith: Analyzer.s_with,
    ast.Try: Analyzer.s_try,
    ast.TryStar: Analyzer.s_try,
    ast.Raise: Analyzer.s_raise,
    ast.Assert: Analyzer.s_assert,
    ast.Delete: Analyzer.s_delete,
    ast.Import: Analyzer.s_import,
    ast.ImportFrom: Analyzer.s_importfrom,
    ast.Global: Analyzer.s_global,
    ast.Nonlocal: Analyzer.s_nonlocal,
    ast.FunctionDef: Analyzer.s_funcdef,
    ast.AsyncFunctionDef: Analyzer.s_funcdef,
    ast.ClassDef: Analyzer.s_classdef,
    ast.Match: Analyzer.s_match,
    ast.Pass: Analyzer.s_nothing,
    ast.Break: Analyzer.s_nothing,
    ast.Continue: Analyzer.s_nothing,
}
