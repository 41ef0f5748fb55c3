"""Call semantics for the scanner's analysis.

Calls of functions and classes defined in the file bind arguments to parameters and
return what the callee returns; local callbacks handed to ``map``/``filter``/
``sorted``/``functools.reduce`` see the elements. The builtins and stdlib helpers
that *compute* objects get their real semantics: ``getattr`` (folded names, the
``#anyattr`` marker otherwise), ``vars``/``globals``/``locals``, ``__import__`` and
``importlib.import_module``, ``type(f)``, ``operator.attrgetter``/``methodcaller``,
``functools.partial``/``reduce``, ``setattr``, ``dict.get``, ``__getattribute__``.
Computed names that stay unknown are judged after the last pass
(:meth:`CallEvaluator.run_deferred`).
"""

from __future__ import annotations

import ast
import re

from kavi.policy.scan_canon import BUILTIN_NAMES
from kavi.policy.scan_env import ENV_CALL_ATTRS
from kavi.policy.scan_exprs import ExprEvaluator
from kavi.policy.scan_names import CONTAINER_FUNCS, TYPING, canon_cached
from kavi.policy.scan_scope import (
    EMPTY,
    UNK,
    Rec,
    Scope,
    Val,
    container,
    contents,
    union,
)
from kavi.policy.scan_writes import METHOD_NAMES, RECEIVER_METHODS

_CONSTANT = ast.Constant
_NO_REC: Rec = ("?", None, None, 0)
_NS_GET = frozenset(("get", "pop", "setdefault", "__getitem__"))
_NS_ENUM = frozenset(("values", "items", "keys", "copy", "__iter__"))
_MUTATORS = frozenset(
    ("append", "add", "insert", "extend", "update", "setdefault", "appendleft", "put", "put_nowait", "push")
)
_TAKERS = frozenset(("get", "pop", "popleft", "popitem", "get_nowait", "__next__"))
# callees that only look at a module they are given (tests patch attributes of os)
_VALUE_OK = frozenset(
    "q:" + q
    for q in (
        "builtins.isinstance",
        "builtins.hasattr",
        "builtins.getattr",
        "builtins.setattr",
        "builtins.delattr",
        "builtins.print",
        "builtins.id",
        "builtins.repr",
        "builtins.str",
        "builtins.type",
        "builtins.dir",
        "builtins.vars",
        "inspect.ismodule",
        "inspect.getsource",
        "inspect.getfile",
        "inspect.getmembers",
        "unittest.mock.patch.object",
        "unittest.mock.patch.dict",
        "importlib.reload",
        "functools.partial",
        "operator.attrgetter",
        "builtins.map",
        "functools.reduce",
    )
)
# callees that call a function argument with arguments this analysis binds (or never
# call it): a local function handed to anything else may be called with anything
_CALLS_BACK_HERE = frozenset(
    "q:" + q
    for q in (
        "builtins.map",
        "builtins.filter",
        "builtins.sorted",
        "builtins.max",
        "builtins.min",
        "builtins.isinstance",
        "builtins.callable",
        "builtins.id",
        "builtins.repr",
        "builtins.print",
        "builtins.hasattr",
        "builtins.getattr",
        "builtins.setattr",
        "functools.reduce",
        "functools.partial",
        "functools.partialmethod",
        "functools.wraps",
        "functools.update_wrapper",
        "atexit.register",
        "inspect.signature",
        *CONTAINER_FUNCS,
    )
)
_ATEXIT = frozenset(("q:atexit.register",))
_PATCHERS = frozenset(("setattr", "delattr", "setitem", "delitem", "object", "setenv", "delenv"))
_URL = re.compile(r"(?i)(https?|ftps?)://")
_FORWARD_REFS = frozenset(("typing.ForwardRef", "typing_extensions.ForwardRef"))
_FRAME_SOURCES = frozenset(("sys._getframe", "inspect.currentframe"))
_FORMAT_METHODS = frozenset(("format", "format_map"))
_SPECIAL_METHODS = (
    _NS_GET
    | _NS_ENUM
    | _MUTATORS
    | _FORMAT_METHODS
    | _TAKERS
    | frozenset(("__getattribute__", "__getattr__", "__setattr__", "update"))
)
_GETTER_ATOMS = frozenset(
    ("q:builtins.getattr", "q:builtins.object.__getattribute__", "q:builtins.type.__getattribute__")
)
_GETTER_SUFFIXES = (".__getattribute__", ".__getattr__")
_ENTRY = Val(frozenset(("#entry",)), frozenset(("#entry",)))
_SQL_METHODS = frozenset(("execute", "executescript", "executemany"))
_SQL_FILE = re.compile(
    r"\b(?:ATTACH(?:\s+DATABASE)?|VACUUM(?:\s+\w+)?\s+INTO)\s+(?:'((?:[^']|'')*)'|[^\s;]+)", re.IGNORECASE
)
_FORMAT_FIELD = re.compile(r"\{([^{}]*)\}")
_FORMAT_NAME = re.compile(r"[.\[]([A-Za-z_][A-Za-z_0-9]*)")


class CallEvaluator(ExprEvaluator):
    def e_call(self, node: ast.Call, scope: Scope) -> Val:
        func = node.func
        ev = self.ev
        recv: Val | None = None
        attr = ""
        if isinstance(func, ast.Attribute):
            attr = func.attr
            if attr in ENV_CALL_ATTRS:
                self.env.call(node, scope)
            recv = ev(func.value, scope)
            self.attr_rule(func, recv, attr, node)
            if recv is UNK:
                self.attr_reads.add(attr)
                fv = self.attrs.get(attr, UNK)
            else:
                fv = self.attr_of(recv, attr)
                if fv is not UNK:
                    self.flag_new(func, fv, recv)
                    self._flag_marker_attr(func, recv, attr)
        else:
            fv = ev(func, scope)
        argvals: list[Val] = []
        for arg in node.args:
            argvals.append(UNK if arg.__class__ is _CONSTANT else ev(arg, scope))
        kwvals: list[Val] = []
        for kw in node.keywords:
            value = kw.value
            kwvals.append(UNK if value.__class__ is _CONSTANT else ev(value, scope))
        self._getter_passed(node, argvals, kwvals)
        for v in argvals if not kwvals else (*argvals, *kwvals):
            if v is not UNK:
                self._escape_functions(fv, attr, argvals, kwvals)
                break
        patching = isinstance(func, ast.Attribute) and func.attr in _PATCHERS
        if not patching and not any(a in _VALUE_OK for a in fv.atoms):
            for arg, v in zip(
                (*node.args, *(k.value for k in node.keywords)), (*argvals, *kwvals), strict=True
            ):
                if v is not UNK:
                    self.gateway_escape(arg, v, "passed to a function")
        for arg in node.args:
            if arg.__class__ is _CONSTANT:
                self.escape_name(arg)
        result = UNK
        if recv is not None:
            if attr in _SQL_METHODS and node.args:
                self._check_sql(node.args[0], node)
            if attr in ("get_field", "get_value") and node.args:
                self._check_field_lookup(node, argvals)
            if attr in METHOD_NAMES:
                self.writes.method_call(node, attr, scope)
            if attr in _SPECIAL_METHODS:
                if attr in _FORMAT_METHODS and isinstance(func, ast.Attribute):
                    if isinstance(func.value, ast.Constant):
                        self._check_format_string(func.value.value, node)
                else:
                    got = self._method(node, recv, attr, argvals, scope)
                    if got is not None:
                        result = got
        if fv is UNK:
            return result
        for atom in fv.atoms:
            first = atom[0]
            if first == "q":
                qual = atom[2:]
                handler = self._CALLS.get(qual)
                if handler is not None:
                    result = union(result, handler(self, node, argvals, scope))
                elif qual in CONTAINER_FUNCS:
                    result = union(result, argvals[0] if argvals else UNK)
                    for v in kwvals:
                        result = union(result, container(v))
                elif qual == "types.SimpleNamespace":
                    self._store_fields(node, [], argvals, kwvals, scope)
                elif qual in _FORWARD_REFS and node.args:
                    if isinstance(node.args[0], ast.Constant):
                        self.annotation(node.args[0], scope)
                    elif self.cp.dynamic:
                        self.emit(
                            node, "KS201", f"{qual}() of a string built at run time evaluates it as code"
                        )
                elif qual == "torch.load" and self.cp.dynamic:
                    safe = any(
                        kw.arg == "weights_only"
                        and isinstance(kw.value, ast.Constant)
                        and kw.value.value is True
                        for kw in node.keywords
                    )
                    if not safe:
                        self.emit(
                            node,
                            "KS204",
                            "torch.load() without weights_only=True unpickles arbitrary objects",
                        )
                elif qual == "numpy.load" and self.cp.dynamic:
                    for kw in node.keywords:
                        if kw.arg == "allow_pickle" and not (
                            isinstance(kw.value, ast.Constant) and not kw.value.value
                        ):
                            self.emit(
                                node, "KS204", "numpy.load(allow_pickle=...) unpickles arbitrary objects"
                            )
                self.writes.func_call(node, qual, scope)
                d = self.danger(atom)
                if d is not None and d.call_only:
                    self.emit(node, d.rule, d.what)
                if qual in _FRAME_SOURCES:
                    result = union(result, self.atom_val("#frame"))
            elif first == "f":
                result = union(
                    result,
                    self._call_function(int(atom[2:]), node, argvals, kwvals, scope, recv is not None),
                )
            elif first == "c":
                self._call_class(int(atom[2:]), node, argvals, kwvals, scope)
            elif atom == "#entry":
                result = union(result, _ENTRY)
            elif atom.startswith("#attrgetter:") or atom.startswith("#methodcaller:"):
                name = atom.split(":", 1)[1]
                target = argvals[0] if argvals else UNK
                got = self._apply_getter(node, target, name)
                if atom.startswith("#attrgetter:"):
                    result = union(result, got)
        return result

    def _escape_functions(self, fv: Val, attr: str, argvals: list[Val], kwvals: list[Val]) -> None:
        """Local functions handed to a callee that may call them with anything."""
        handed: list[str] | None = None
        for v in (*argvals, *kwvals):
            if v is UNK:
                continue
            for atoms in (v.atoms, v.elems):
                for atom in atoms:
                    if atom[0] in "fc":
                        if handed is None:
                            handed = []
                        handed.append(atom)
        if handed is None or attr in _MUTATORS:
            return
        for atom in fv.atoms:
            if atom[0] in "fc" or atom in _CALLS_BACK_HERE:
                return
        for atom in handed:
            self.by_ident[int(atom[2:])].escaped = True

    def _getter_passed(self, node: ast.Call, argvals: list[Val], kwvals: list[Val]) -> None:
        """``map(getattr, [os], ["system"])``, ``partial(getattr, os)``: an attribute
        lookup handed to another function reads a name that is chosen out of sight."""
        vals = (*argvals, *kwvals)
        for v in vals:
            if v is UNK:
                continue
            for atom in (*v.atoms, *contents(v).atoms):
                bound = atom.startswith("q:") and atom.endswith(_GETTER_SUFFIXES)
                if (atom in _GETTER_ATOMS and self._reaches_sensitive(vals, v)) or (
                    bound and self.cp.sensitive_qual(atom[2:].rsplit(".", 1)[0])
                ):
                    self.emit(
                        node,
                        "KS301",
                        "an attribute lookup passed as a function value reads a name chosen out of sight",
                    )
                    return

    def _reaches_sensitive(self, vals: tuple[Val, ...], getter: Val) -> bool:
        """Could one of the other arguments (or what they contain) be a sensitive object?"""
        for v in vals:
            if v is getter or v is UNK:
                continue
            inner = contents(v)
            for atom in (*v.atoms, *inner.atoms, *contents(inner).atoms):
                if atom[0] == "#" or (atom.startswith("q:") and self.cp.sensitive_qual(atom[2:])):
                    return True
        return False

    def c_entry_points(self, node: ast.Call, argvals: list[Val], scope: Scope) -> Val:
        """Entry points are harmless to list; ``.load()`` imports what they name."""
        return _ENTRY

    def _check_field_lookup(self, node: ast.Call, argvals: list[Val]) -> None:
        """``string.Formatter().get_field("0.system", (os,), {})`` returns the object the
        field names: attributes read by a string, from the arguments that follow."""
        field = node.args[0]
        if isinstance(field, ast.Constant) and isinstance(field.value, str):
            self._check_format_string("{" + field.value + "}", node)
            if "." not in field.value and "[" not in field.value:
                return
        if self._reaches_sensitive(tuple(argvals[1:]), UNK):
            self.emit(node, "KS301", "a format field reads attributes of a sensitive object by name")

    def _check_sql(self, sql: ast.expr, node: ast.Call) -> None:
        """``ATTACH DATABASE '/x'`` / ``VACUUM INTO '/x'`` make SQLite create files where
        Python never opens them: the file must be a literal inside allowed_write_paths."""
        if not (isinstance(sql, ast.Constant) and isinstance(sql.value, str)):
            return
        for m in _SQL_FILE.finditer(sql.value):
            target = m.group(1)
            if target is None:
                where = "a file named at run time"
            elif target == ":memory:" or not self.writes.outside(target, True):
                continue
            else:
                where = repr(target)
            self.emit(
                node,
                "KS501",
                f"SQL {m.group(0).split()[0].upper()} creates {where}, outside allowed_write_paths",
            )
            return

    def _check_format_string(self, template: object, node: ast.AST) -> None:
        """``"{0.__globals__}".format(f)`` reads attributes named inside the string."""
        if not isinstance(template, str) or "{" not in template:
            return
        for field in _FORMAT_FIELD.findall(template):
            for name in _FORMAT_NAME.findall(field):
                d = self.cp.attr_rules.get(name)
                if d is not None:
                    self.emit(node, d.rule, d.what)

    def _method(self, node: ast.Call, recv: Val, attr: str, argvals: list[Val], scope: Scope) -> Val | None:
        """Semantics of method calls on namespaces and containers."""
        args = node.args
        if attr in _NS_GET and args:
            if recv is UNK:
                return None
            return self.subscript_of(recv, args[0], scope, node)
        if attr in _TAKERS and not args:
            return contents(recv) if recv.elems else None
        if attr in _NS_ENUM:
            if "#ns" in recv.atoms:
                self.emit(node, "KS302", "enumerating globals()/locals() reaches every global and builtin")
            return Val(EMPTY, recv.elems) if recv.elems else None
        if attr == "__setattr__" and len(args) >= 2:
            name_node, value = (args[1], argvals[2]) if len(args) >= 3 else (args[0], argvals[1])
            self._written(name_node, scope)
            for name in self.folder.fold_str(name_node, scope) or ():
                if value is not UNK:
                    self.attr_store(name, value)
            return None
        if attr == "update" and "#ns" in recv.atoms:
            self._update_globals(node, scope)
            return None
        if attr in ("__getattribute__", "__getattr__") and args:
            if len(args) >= 2:
                return self._getattr(node, argvals[0], args[1], scope)
            return self._getattr(node, recv, args[0], scope)
        if attr in _MUTATORS and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if isinstance(owner, ast.Name):
                for v in argvals:
                    self.update_existing(owner.id, scope, union(v, contents(v)))
        return None

    def _update_globals(self, node: ast.Call, scope: Scope) -> None:
        """``globals().update(name=v)`` / ``globals().update({"name": v})`` bind globals."""
        pairs: list[tuple[str, ast.expr]] = [(kw.arg, kw.value) for kw in node.keywords if kw.arg]
        for arg in node.args:
            if isinstance(arg, ast.Dict):
                for key, value in zip(arg.keys, arg.values, strict=True):
                    if isinstance(key, ast.Constant) and isinstance(key.value, str):
                        pairs.append((key.value, value))
        for name, value in pairs:
            self.bind(self.module, name, self.ev(value, scope), ("=", value, scope, 0), (id(value), 0))

    def _call_function(
        self,
        ident: int,
        node: ast.Call,
        argvals: list[Val],
        kwvals: list[Val],
        scope: Scope,
        via_attr: bool,
    ) -> Val:
        fs = self.by_ident[ident]
        fs.called = True
        shift = 1 if via_attr and fs.is_method and not fs.is_static else 0
        params = fs.params
        pos = shift
        values = argvals
        for i, arg in enumerate(node.args):
            v = values[i]
            if isinstance(arg, ast.Starred):
                spread = contents(v)
                for name in params[pos:]:
                    self.bind(fs, name, spread, ("?", arg, None, 0), (id(arg), 0))
                break
            if pos < len(params):
                self.bind(fs, params[pos], v, ("=", arg, scope, 0), (id(arg), 0))
            elif fs.vararg is not None:
                self.bind(fs, fs.vararg, container(v), ("?", arg, None, 0), (id(arg), 0))
            pos += 1
        for kw, v in zip(node.keywords, kwvals, strict=True):
            if kw.arg is None:
                spread = contents(v)
                for name in (*params, *fs.kwonly):
                    self.bind(fs, name, spread, ("?", kw.value, None, 0), (id(kw.value), 0))
                continue
            if kw.arg in params or kw.arg in fs.kwonly:
                self.bind(fs, kw.arg, v, ("=", kw.value, scope, 0), (id(kw.value), 0))
            elif fs.kwarg is not None:
                self.bind(fs, fs.kwarg, container(v), ("?", kw.value, None, 0), (id(kw.value), 0))
        fs.ret_read = True
        return fs.ret

    def _call_class(
        self, ident: int, node: ast.Call, argvals: list[Val], kwvals: list[Val], scope: Scope
    ) -> None:
        """Instantiation: arguments flow into ``__init__`` (own or inherited from a class in
        this file), or into the annotated fields of a dataclass/pydantic-style class."""
        cs = self.by_ident[ident]
        cs.called = True
        todo: list[Scope] = [cs]
        seen: set[int] = set()
        while todo:
            klass = todo.pop(0)
            if klass.ident in seen or len(seen) > 16:
                continue
            seen.add(klass.ident)
            init = klass.env.get("__init__")
            if init is not None:
                for atom in init.atoms:
                    if atom[0] == "f":
                        self._call_function(int(atom[2:]), node, argvals, kwvals, scope, True)
                return
            todo.extend(self.by_ident[int(a[2:])] for base in klass.bases for a in base.atoms if a[0] == "c")
        fields = [f for klass_id in seen for f in self.by_ident[klass_id].fields]
        self._store_fields(node, fields, argvals, kwvals, scope)

    def _store_fields(
        self, node: ast.Call, fields: list[str], argvals: list[Val], kwvals: list[Val], scope: Scope
    ) -> None:
        for i, (arg, v) in enumerate(zip(node.args, argvals, strict=False)):
            if i < len(fields) and not isinstance(arg, ast.Starred):
                if v is not UNK:
                    self.attr_store(fields[i], v)
                self.attr_rec(fields[i], (id(arg), 0), ("=", arg, scope, 0))
        for kw, v in zip(node.keywords, kwvals, strict=True):
            if kw.arg is not None:
                self.attr_written.add(kw.arg)
                if v is not UNK:
                    self.attr_store(kw.arg, v)
                self.attr_rec(kw.arg, (id(kw.value), 0), ("=", kw.value, scope, 0))

    def _apply_getter(self, node: ast.AST, target: Val, name: str) -> Val:
        if name == "?":
            return self._unknown_attr(node, target, None, self.module)
        v = target
        for part in name.split("."):
            d = self.cp.attr_rules.get(part)
            if d is not None:
                self.emit(node, d.rule, d.what)
            v = self.attr_of(v, part)
        self.flag_new(node, v, target)
        return v

    def _getattr(self, node: ast.AST, obj: Val, name_node: ast.expr, scope: Scope) -> Val:
        if isinstance(name_node, ast.Starred):
            return UNK
        names = self.folder.fold_str(name_node, scope)
        if names is None:
            return self._unknown_attr(node, obj, name_node, scope)
        result = UNK
        for name in self._name_forms(names):
            d = self.cp.attr_rules.get(name)
            if d is not None:
                self.emit(node, d.rule, d.what)
            if name in RECEIVER_METHODS and isinstance(node, ast.Call) and node.args:
                ref = ast.copy_location(ast.Attribute(value=node.args[0], attr=name, ctx=ast.Load()), node)
                self.writes.method_ref(ref, scope)  # ``getattr(p, "read_text")``
            if name == "__dict__" or obj is not UNK or name in self.attrs:
                result = union(result, self.attr_of(obj, name))
        self.flag_new(node, result, obj)
        return result

    def dynamic_target(self, v: Val, prefix: str = "") -> bool:
        """Is a computed attribute (or key) of ``v`` a possible route to danger? (A
        function's computed attribute may be ``__globals__``.)"""
        for atom in v.atoms:
            if atom[0] == "#" or (atom[0] == "f" and not prefix):
                return True
            if atom.startswith("q:") and self.cp.prefix_can_reach(atom[2:], prefix):
                return True
        return False

    def _unknown_attr(self, node: ast.AST, obj: Val, name_node: ast.expr | None, scope: Scope) -> Val:
        """``getattr(obj, <not a constant>)``: judged after the last pass (the name may
        fold once every binding is known); the value is the ``#anyattr`` marker."""
        if self.dynamic_target(obj):
            if name_node is None:
                self.emit(node, "KS301", "attribute looked up with a computed name on a sensitive object")
            else:
                self.deferred.append(("getattr", node, obj, name_node, scope))
        for atom in obj.atoms:
            if atom[0] == "#" or atom.startswith("q:"):
                return self.atom_val("#anyattr")
        return UNK

    def _positional(self, node: ast.Call, argvals: list[Val], scope: Scope) -> list[tuple[ast.expr, Val]]:
        """Positional arguments, spreading ``*[literal, …]``."""
        out: list[tuple[ast.expr, Val]] = []
        for arg, v in zip(node.args, argvals, strict=False):
            if isinstance(arg, ast.Starred):
                inner = arg.value
                if isinstance(inner, (ast.Tuple, ast.List)):
                    out.extend((e, self.ev(e, scope)) for e in inner.elts)
                else:
                    out.append((arg, contents(v)))
            else:
                out.append((arg, v))
        return out

    def c_getattr(self, node: ast.Call, argvals: list[Val], scope: Scope) -> Val:
        args = self._positional(node, argvals, scope)
        if len(args) < 2:
            return self._unknown_attr(node, args[0][1], None, scope) if args else UNK
        result = self._getattr(node, args[0][1], args[1][0], scope)
        if len(args) > 2:
            result = union(result, args[2][1])
        return result

    def c_vars(self, node: ast.Call, argvals: list[Val], scope: Scope) -> Val:
        if not node.args:
            return self.atom_val("#ns")
        if argvals[0].atoms & TYPING:
            self.tc_tampered = True
        atoms = set()
        for atom in argvals[0].atoms:
            if atom.startswith("q:") and self.cp.sensitive_qual(atom[2:]):
                atoms.add("#dict:" + atom[2:])
        v = Val(frozenset(atoms)) if atoms else UNK
        self.flag(node, v)
        return v

    def c_globals(self, node: ast.Call, argvals: list[Val], scope: Scope) -> Val:
        return self.atom_val("#ns")

    def c_dir(self, node: ast.Call, argvals: list[Val], scope: Scope) -> Val:
        return UNK

    def _import_named(
        self, node: ast.Call, name_node: ast.expr, scope: Scope, full: bool, dynamic: str | None = None
    ) -> Val:
        """Judge an import of the name ``name_node`` folds to; an unknown name is reported
        as ``dynamic`` when that is given."""
        names = self.folder.fold_str(name_node, scope)
        if names is None:
            return UNK if dynamic is None else self._dynamic(node, dynamic)
        atoms = set()
        for name in names:
            if name.startswith("."):
                continue
            d = self.cp.import_danger(name)
            if d is not None:
                self.emit(node, d.rule, d.what)
            atoms.add("q:" + canon_cached(name if full else name.split(".", 1)[0]))
        return Val(frozenset(atoms)) if atoms else UNK

    def c_dunder_import(self, node: ast.Call, argvals: list[Val], scope: Scope) -> Val:
        if not node.args:
            return UNK
        full = len(node.args) >= 4 or any(k.arg == "fromlist" for k in node.keywords)
        return self._import_named(node, node.args[0], scope, full)

    def c_import_module(self, node: ast.Call, argvals: list[Val], scope: Scope) -> Val:
        if not node.args:
            for kw in node.keywords:
                if kw.arg == "name":
                    return self._import_named(node, kw.value, scope, True)
            return UNK
        return self._import_named(node, node.args[0], scope, True)

    def c_find_spec(self, node: ast.Call, argvals: list[Val], scope: Scope) -> Val:
        """``find_spec("yaml")`` looks a module up without running it, but imports the
        parents of a dotted name: judge those like an ``import`` statement."""
        name_node = (
            node.args[0] if node.args else next((k.value for k in node.keywords if k.arg == "name"), None)
        )
        names = self.folder.fold_str(name_node, scope) if name_node is not None else None
        if names is None:
            return self._dynamic(node, "find_spec() of a name chosen at run time imports its parent packages")
        for name in names:
            parts = name.split(".")
            for i in range(1, len(parts)):
                d = self.cp.import_danger(".".join(parts[:i]))
                if d is not None:
                    self.emit(node, d.rule, d.what)
        return UNK

    def c_importorskip(self, node: ast.Call, argvals: list[Val], scope: Scope) -> Val:
        """``pytest.importorskip("numpy")`` is an import; of a computed name, a dynamic one."""
        if not node.args:
            return UNK
        what = "pytest.importorskip() of a name chosen at run time"
        return self._import_named(node, node.args[0], scope, True, dynamic=what)

    def _dynamic(self, node: ast.Call, what: str) -> Val:
        if self.cp.dynamic:
            self.emit(node, "KS202", what)
        return UNK

    def c_pytest_main(self, node: ast.Call, argvals: list[Val], scope: Scope) -> Val:
        """``pytest.main([__file__, "-q"])`` runs this file's tests (the usual ``__main__``
        guard); anything else imports and runs files named at run time."""
        args = node.args[0] if node.args else None
        plain = (
            isinstance(args, (ast.List, ast.Tuple))
            and not node.keywords
            and len(node.args) == 1
            and all(
                (isinstance(e, ast.Name) and e.id == "__file__")
                or (
                    isinstance(e, ast.Constant)
                    and isinstance(e.value, str)
                    and e.value.startswith("-")
                    and e.value[:2] != "-p"
                )
                for e in args.elts
            )
        )
        return UNK if plain else self._dynamic(node, "pytest.main() imports and runs the files it is given")

    def c_fetching_parser(self, node: ast.Call, argvals: list[Val], scope: Scope) -> Val:
        """Parsers that open a URL themselves when given one (``xml.sax.parse("http://…")``)."""
        first = node.args[0] if node.args else None
        for text in (self.folder.fold_str(first, scope) or ()) if first is not None else ():
            if _URL.match(text) and not self.cp.policy_network:
                self.emit(node, "KS401", f"fetches {text[:60]!r} (scanner.network is off)")
                break
        return UNK

    def c_pick(self, node: ast.Call, argvals: list[Val], scope: Scope) -> Val:
        """``max``/``min``: one of the elements (or one of the arguments, or the default)."""
        if not argvals:
            return UNK
        out = contents(argvals[0]) if len(node.args) == 1 else UNK
        for v in argvals[1:] if len(node.args) > 1 else ():
            out = union(out, v)
        if len(node.args) > 1:
            out = union(out, argvals[0])
        return out

    def c_type(self, node: ast.Call, argvals: list[Val], scope: Scope) -> Val:
        if len(node.args) != 1:
            return UNK
        arg = node.args[0]
        if isinstance(arg, ast.Lambda) or any(a[0] == "f" for a in argvals[0].atoms):
            return self.q("types.FunctionType")
        if isinstance(arg, ast.Attribute) and arg.attr == "__code__":
            return self.q("types.CodeType")
        if any(a.startswith("q:") for a in argvals[0].atoms):
            return self.q("types.ModuleType")
        return UNK

    def _getter(self, kind: str, node: ast.Call, scope: Scope) -> Val:
        if not node.args:
            return UNK
        atoms: set[str] = set()
        for arg in node.args if kind == "attrgetter" else node.args[:1]:
            names = self.folder.fold_str(arg, scope)
            if names is None:
                atoms.add(f"#{kind}:?")
            else:
                atoms.update(f"#{kind}:{n}" for n in self._name_forms(names))
        return Val(frozenset(atoms))

    def c_attrgetter(self, node: ast.Call, argvals: list[Val], scope: Scope) -> Val:
        return self._getter("attrgetter", node, scope)

    def c_methodcaller(self, node: ast.Call, argvals: list[Val], scope: Scope) -> Val:
        return self._getter("methodcaller", node, scope)

    def c_partial(self, node: ast.Call, argvals: list[Val], scope: Scope) -> Val:
        """``partial(f, *args)`` is ``f``; arguments bound here flow into a local ``f``."""
        if not argvals:
            return UNK
        calls_now = self.quiet(node.func, scope).atoms == _ATEXIT  # called later exactly like this
        if len(node.args) > 1 or node.keywords or calls_now:
            kwvals = [self.quiet(kw.value, scope) for kw in node.keywords]
            inner = ast.Call(func=node.args[0], args=node.args[1:], keywords=node.keywords)
            for atom in argvals[0].atoms:
                if atom[0] == "f":
                    self._call_function(int(atom[2:]), inner, argvals[1:], kwvals, scope, False)
                elif atom.startswith("q:"):
                    # ``partial(open, "/etc/hosts", "w")``: the bound arguments are the call's.
                    self.writes.func_call(inner, atom[2:], scope)
        return argvals[0]

    def _callback(self, fv: Val, index: int, v: Val, rec: Rec) -> Val:
        """A local function/lambda passed to a higher-order builtin: bind its
        ``index``-th parameter to ``v``; return what it returns."""
        result = UNK
        for atom in fv.atoms:
            if atom[0] == "f":
                fs = self.by_ident[int(atom[2:])]
                at = index + 1 if fs.is_method and not fs.is_static else index  # bound method: skip self
                if at < len(fs.params):
                    self.bind(fs, fs.params[at], v, rec, (id(rec[1]), rec[3] + 7000 + index))
                fs.called = True
                fs.ret_read = True
                result = union(result, fs.ret)
        return result

    def c_map(self, node: ast.Call, argvals: list[Val], scope: Scope) -> Val:
        if len(node.args) == 2 and isinstance(node.args[1], (ast.List, ast.Tuple, ast.Set)):
            # ``map(os.remove, ["/etc/x", …])``: each element is a call's argument
            for atom in argvals[0].atoms:
                if atom.startswith("q:"):
                    for elt in node.args[1].elts:
                        call = ast.copy_location(ast.Call(func=node.args[0], args=[elt], keywords=[]), node)
                        self.writes.func_call(call, atom[2:], scope)
        if not node.args or not any(a[0] == "f" for a in argvals[0].atoms):
            return UNK
        result = UNK
        for i, it in enumerate(node.args[1:]):
            rec: Rec = ("iter", it, scope, 0)
            result = union(result, self._callback(argvals[0], i, contents(argvals[i + 1]), rec))
        return container(result)

    def c_filter(self, node: ast.Call, argvals: list[Val], scope: Scope) -> Val:
        if len(node.args) < 2:
            return UNK
        if any(a[0] == "f" for a in argvals[0].atoms):
            self._callback(argvals[0], 0, contents(argvals[1]), ("iter", node.args[1], scope, 0))
        return argvals[1]

    def c_keyfunc(self, node: ast.Call, argvals: list[Val], scope: Scope) -> Val:
        """``sorted``/``min``/``max`` with ``key=``: the key function sees the elements."""
        if not node.args:
            return UNK
        for kw in node.keywords:
            if kw.arg == "key":
                lam = self.scopes.get(id(kw.value))
                fv = self.atom_val(f"f:{lam.ident}") if lam is not None else self.quiet(kw.value, scope)
                self._callback(fv, 0, contents(argvals[0]), ("iter", node.args[0], scope, 0))
        return argvals[0]

    def c_reduce(self, node: ast.Call, argvals: list[Val], scope: Scope) -> Val:
        if len(node.args) >= 2 and any(a[0] == "f" for a in argvals[0].atoms):
            fv = argvals[0]
            acc = argvals[2] if len(node.args) >= 3 else contents(argvals[1])
            acc_rec: Rec = ("=", node.args[2], scope, 0) if len(node.args) >= 3 else _NO_REC
            ret = self._callback(fv, 0, acc, acc_rec)
            self._callback(fv, 0, ret, _NO_REC)
            self._callback(fv, 1, contents(argvals[1]), ("iter", node.args[1], scope, 0))
            return union(acc, ret)
        if len(node.args) < 3 or not any(a == "q:builtins.getattr" for a in argvals[0].atoms):
            return UNK
        names = self.folder.fold(node.args[1], scope)
        obj = argvals[2]
        if names is None or len(names) != 1 or not isinstance(names[0], (list, tuple)):
            return self._unknown_attr(node, obj, None, scope)
        v = obj
        for name in names[0]:
            if not isinstance(name, str):
                return UNK
            d = self.cp.attr_rules.get(name)
            if d is not None:
                self.emit(node, d.rule, d.what)
            v = self.attr_of(v, name)
        self.flag_new(node, v, obj)
        return v

    def c_setattr(self, node: ast.Call, argvals: list[Val], scope: Scope) -> Val:
        if argvals and argvals[0].atoms & TYPING:
            self.tc_tampered = True
        if len(node.args) >= 2:
            self._written(node.args[1], scope)
        if len(node.args) >= 3 and argvals[2] is not UNK:
            for name in self.folder.fold_str(node.args[1], scope) or ():
                self.attr_store(name, argvals[2])
        return UNK

    def _written(self, name_node: ast.expr, scope: Scope) -> None:
        names = self.folder.fold_str(name_node, scope)
        self.attr_written.update(names if names is not None else ("*",))

    def c_next(self, node: ast.Call, argvals: list[Val], scope: Scope) -> Val:
        return contents(argvals[0]) if argvals else UNK

    def c_dict_get(self, node: ast.Call, argvals: list[Val], scope: Scope) -> Val:
        if len(node.args) < 2:
            return UNK
        result = self.subscript_of(argvals[0], node.args[1], scope, node)
        self.flag_new(node, result, argvals[0])
        return result

    def c_getmembers(self, node: ast.Call, argvals: list[Val], scope: Scope) -> Val:
        if argvals and self.sensitive(argvals[0]):
            self.emit(node, "KS302", "inspect.getmembers enumerates a sensitive namespace")
        return UNK

    def _run_deferred(self) -> None:
        for kind, node, obj, key, scope in self.deferred:
            names = self.folder.fold_str(key, scope)
            if names is not None:
                if kind == "ns":
                    out: set[str] = set()
                    self._ns_lookup(key, scope, node, out)
                    self.flag(node, Val(frozenset(out)))
                else:
                    result = UNK
                    for name in self._name_forms(names):
                        d = self.cp.attr_rules.get(name)
                        if d is not None:
                            self.emit(node, d.rule, d.what)
                        result = union(result, self.attr_of(obj, name))
                    self.flag_new(node, result, obj)
                continue
            prefix = self._known_prefix(key, scope)
            if kind == "ns":
                if self._ns_prefix_reaches(prefix):
                    self.emit(node, "KS302", "globals()/locals()/vars() looked up with a computed name")
                continue
            if self.dynamic_target(obj, prefix):
                what = ", ".join(sorted(a[2:] if a.startswith("q:") else a for a in obj.atoms))
                rule = "KS302" if kind == "dict" else "KS301"
                self.emit(node, rule, f"attribute of {what} looked up with a computed name")

    def _known_prefix(self, key: ast.expr, scope: Scope) -> str:
        cands = self.folder.path(key, scope)
        if not cands:
            return ""
        prefixes = [text for text, _ in cands]
        common = prefixes[0]
        for p in prefixes[1:]:
            while not p.startswith(common):
                common = common[:-1]
        return common

    def _ns_prefix_reaches(self, prefix: str) -> bool:
        if not prefix or prefix.startswith("_"):
            return True
        for name in BUILTIN_NAMES:
            if name.startswith(prefix) and self.danger("q:builtins." + name) is not None:
                return True
        for name, v in self.module.env.items():
            if name.startswith(prefix) and (self.sensitive(v) or any(self.danger(a) for a in v.atoms)):
                return True
        return False


CallEvaluator._CALLS = {
    "builtins.map": CallEvaluator.c_map,
    "builtins.filter": CallEvaluator.c_filter,
    "builtins.sorted": CallEvaluator.c_keyfunc,
    "builtins.getattr": CallEvaluator.c_getattr,
    "inspect.getattr_static": CallEvaluator.c_getattr,
    "builtins.vars": CallEvaluator.c_vars,
    "builtins.globals": CallEvaluator.c_globals,
    "builtins.locals": CallEvaluator.c_globals,
    "builtins.__import__": CallEvaluator.c_dunder_import,
    "importlib.__import__": CallEvaluator.c_dunder_import,
    "importlib.import_module": CallEvaluator.c_import_module,
    "builtins.type": CallEvaluator.c_type,
    "operator.attrgetter": CallEvaluator.c_attrgetter,
    "operator.methodcaller": CallEvaluator.c_methodcaller,
    "functools.partial": CallEvaluator.c_partial,
    "functools.partialmethod": CallEvaluator.c_partial,
    "functools.reduce": CallEvaluator.c_reduce,
    "atexit.register": CallEvaluator.c_partial,
    "builtins.setattr": CallEvaluator.c_setattr,
    "builtins.next": CallEvaluator.c_next,
    "builtins.dict.get": CallEvaluator.c_dict_get,
    "builtins.dict.__getitem__": CallEvaluator.c_dict_get,
    "builtins.dict.pop": CallEvaluator.c_dict_get,
    "builtins.dict.setdefault": CallEvaluator.c_dict_get,
    "builtins.object.__getattribute__": CallEvaluator.c_getattr,
    "builtins.type.__getattribute__": CallEvaluator.c_getattr,
    "types.ModuleType.__getattribute__": CallEvaluator.c_getattr,
    "inspect.getmembers": CallEvaluator.c_getmembers,
    "inspect.getmembers_static": CallEvaluator.c_getmembers,
    "builtins.dir": CallEvaluator.c_dir,
    "importlib.util.find_spec": CallEvaluator.c_find_spec,
    "pytest.importorskip": CallEvaluator.c_importorskip,
    "pytest.main": CallEvaluator.c_pytest_main,
    "builtins.max": CallEvaluator.c_pick,
    "builtins.min": CallEvaluator.c_pick,
    **{
        q: CallEvaluator.c_fetching_parser
        for q in (
            "xml.sax.parse",
            "xml.dom.minidom.parse",
            "xml.dom.pulldom.parse",
            "xml.etree.ElementTree.parse",
            "xml.etree.ElementTree.iterparse",
            "pandas.read_csv",
            "pandas.read_json",
            "pandas.read_html",
            "pandas.read_xml",
            "pandas.read_excel",
            "pandas.read_parquet",
            "pandas.read_table",
            "pandas.read_pickle",
            "numpy.loadtxt",
            "numpy.genfromtxt",
            "lxml.etree.parse",
        )
    },
    "importlib.metadata.entry_points": CallEvaluator.c_entry_points,
    "importlib.metadata.distribution": CallEvaluator.c_entry_points,
    "importlib.metadata.distributions": CallEvaluator.c_entry_points,
    "importlib_metadata.entry_points": CallEvaluator.c_entry_points,
}
