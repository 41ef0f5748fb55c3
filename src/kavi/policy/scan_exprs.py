"""Expression evaluation for the scanner's analysis.

Every expression node is evaluated exactly once per pass to a :class:`Val`; the value
of names, attributes and subscripts follows the data (aliases, containers,
``__dict__``/``vars()``/``globals()``/``sys.modules`` look-ups with folded keys). A
dangerous object is reported at the node that first *reaches* it. Lambdas and
comprehensions get their own scopes; annotations are evaluated including code hidden
in string forward references, which ``typing.get_type_hints`` and pydantic ``eval``.
"""

from __future__ import annotations

import ast
import unicodedata
from collections.abc import Sequence

from kavi.policy.scan_names import NameResolver, canon_attr_cached, canon_cached
from kavi.policy.scan_scope import (
    CLASS,
    COMP,
    EMPTY,
    FUNCTION,
    UNK,
    Rec,
    Scope,
    Val,
    container,
    contents,
    union,
)
from kavi.policy.scan_tables import SENSITIVE_ROOTS, Danger
from kavi.policy.scan_writes import RECEIVER_METHODS

_CONSTANT = ast.Constant
_SYS_MODULES = frozenset(("q:sys.modules",))
_CLASS_WALK = frozenset(("__mro__", "__bases__", "__base__"))
_ESCAPE_NAMES = frozenset(
    (
        "__globals__",
        "__builtins__",
        "__subclasses__",
        "__code__",
        "__loader__",
        "f_globals",
        "f_builtins",
        "gi_frame",
    )
)
_LOADER_VARIABLES = frozenset(
    ("PATH", "LD_PRELOAD", "LD_LIBRARY_PATH", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONHOME", "BASH_ENV", "ENV")
)
_CODE_FACTS = frozenset(
    (
        "co_argcount",
        "co_posonlyargcount",
        "co_kwonlyargcount",
        "co_varnames",
        "co_name",
        "co_qualname",
        "co_filename",
        "co_firstlineno",
        "co_flags",
        "co_nlocals",
    )
)
_NO_REC: Rec = ("?", None, None, 0)


def _gateway_name(atom: str, cp: object) -> str | None:
    if atom.startswith("q:") and "." not in atom[2:]:
        qual = atom[2:]
        if qual == "builtins" or (qual in SENSITIVE_ROOTS and cp.sensitive_qual(qual)):  # type: ignore[attr-defined]
            return f"module {qual}"
    return None


def _own_object(node: ast.AST, base: Val) -> bool:
    """Is the receiver ``self``/``cls`` or an object of a class defined in this file?"""
    value = getattr(node, "value", None)
    if isinstance(value, ast.Name) and value.id in ("self", "cls"):
        return True
    return bool(base.atoms) and all(a[0] in "ci" for a in base.atoms)


class ExprEvaluator(NameResolver):
    def stmts(self, body: Sequence[ast.stmt], scope: Scope, top: bool = False) -> None:
        handlers = self._S
        for st in body:
            handler = handlers.get(st.__class__)
            if handler is not None:
                handler(self, st, scope, top)
            else:
                self.generic(st, scope)

    def generic(self, node: ast.AST, scope: Scope) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                self.ev(child, scope)
            elif isinstance(child, ast.stmt):
                self.stmts([child], scope)
            else:
                self.generic(child, scope)

    def assign(self, target: ast.AST, v: Val, scope: Scope, rec: Rec, top: bool) -> None:
        """Bind an assignment target (names, unpacking, attributes, subscripts) to ``v``."""
        if isinstance(target, ast.Name):
            self.bind(scope, target.id, v, rec, (id(rec[1]), rec[3]), top)
        elif isinstance(target, (ast.Tuple, ast.List)):
            inner = contents(v)
            kind, expr, rscope, _ = rec
            for i, elt in enumerate(target.elts):
                if isinstance(elt, ast.Starred):
                    self.assign(elt.value, container(inner), scope, ("?", expr, None, i + 1000), top)
                elif kind == "=":
                    self.assign(elt, inner, scope, ("unpack", expr, rscope, i), top)
                elif kind == "iter":  # ``for root, dirs, files in os.walk(d)``
                    self.assign(elt, inner, scope, ("iter-unpack", expr, rscope, i), top)
                else:
                    self.assign(elt, inner, scope, ("?", expr, None, i + 1000), top)
        elif isinstance(target, ast.Attribute):
            self.ev(target.value, scope)
            self.attr_written.add(target.attr)
            self.gateway_escape(target, v, f"stored as attribute {target.attr!r}")
            if target.attr == "TYPE_CHECKING":
                self.tc_tampered = True
            if target.attr == "__annotations__":
                self._annotations_store(target, rec[1], dict_value=True)
            if v is not UNK:
                self.attr_store(target.attr, v)
            if rec[0] == "=":
                self.attr_rec(target.attr, (id(rec[1]), rec[3]), rec)
        elif isinstance(target, ast.Subscript):
            self.env.subscript(target, scope, False)
            base = self.ev(target.value, scope)
            self.ev(target.slice, scope)
            if "q:os.environ" in base.atoms and isinstance(target.slice, ast.Constant):
                self._environ_store(target, target.slice.value)
            if "q:sys.path" in base.atoms and isinstance(rec[1], ast.expr):
                self.writes.import_dir(target, scope, "assigning into sys.path", rec[1])
            if isinstance(target.value, ast.Attribute) and target.value.attr == "__annotations__":
                self._annotations_store(target, rec[1], dict_value=False)
            if isinstance(target.value, ast.Name):
                self.update_existing(target.value.id, scope, v)
            self._namespace_store(target, base, v, scope, rec)
        elif isinstance(target, ast.Starred):
            self.assign(target.value, container(contents(v)), scope, _NO_REC, top)
        else:
            self.ev(target, scope)

    def _environ_store(self, node: ast.AST, key: object) -> None:
        """``os.environ["PATH"] = …``: where later programs, libraries and imports load from."""
        if isinstance(key, str) and key.upper() in _LOADER_VARIABLES and self.cp.dynamic:
            self.emit(node, "KS202", f"setting {key} changes where later code is loaded from")

    def _annotations_store(self, target: ast.AST, value: ast.AST | None, dict_value: bool) -> None:
        """Annotations set at run time are evaluated as code by ``get_type_hints()`` when
        they are strings; plain types (``{"x": int}``) are fine."""
        if not self.cp.dynamic:
            return
        if value is not None and dict_value and isinstance(value, ast.Dict):
            items: list[ast.AST] = list(value.values)
            if any(k is None for k in value.keys):
                items = []
        elif value is not None and not dict_value:
            items = [value]
        else:
            items = []
        types_only = all(isinstance(v, (ast.Name, ast.Attribute, ast.Subscript)) for v in items)
        texts = any(isinstance(c, (ast.Constant, ast.JoinedStr)) for v in items for c in ast.walk(v))
        if items and types_only and not texts:
            return
        self.emit(target, "KS201", "annotations set at run time are evaluated as code by get_type_hints()")

    def _namespace_store(self, target: ast.Subscript, base: Val, v: Val, scope: Scope, rec: Rec) -> None:
        """``globals()["x"] = v`` binds a global; ``obj.__dict__["x"] = v`` an attribute."""
        value = target.value
        into_dict = (isinstance(value, ast.Attribute) and value.attr == "__dict__") or (
            isinstance(value, ast.Call) and getattr(value.func, "id", None) == "vars" and value.args
        )
        if "#ns" not in base.atoms and not into_dict:
            return
        if into_dict:
            names = self.folder.fold_str(target.slice, scope)
            self.attr_written.update(names if names is not None else ("*",))
        for name in self.folder.fold_str(target.slice, scope) or ():
            if "#ns" in base.atoms:
                self.bind(self.module, name, v, rec, (id(target), 0))
            else:
                if v is not UNK:
                    self.attr_store(name, v)
                if rec[0] == "=":
                    self.attr_rec(name, (id(target), 0), rec)

    def ev(self, node: ast.AST, scope: Scope) -> Val:
        cls = node.__class__
        if cls is _CONSTANT:
            return UNK
        handler = self._E.get(cls)
        if handler is None:
            self.generic(node, scope)
            return UNK
        return handler(self, node, scope)

    def e_constant(self, node: ast.AST, scope: Scope) -> Val:
        return UNK

    def e_name(self, node: ast.Name, scope: Scope) -> Val:
        if node.ctx.__class__ is not ast.Load:
            return UNK
        name = node.id
        v, builtin = self.lookup(name, scope)
        if builtin:
            if name == "__builtins__":
                self.emit(node, "KS303", "'__builtins__' reaches eval/exec/__import__")
            elif name == "__loader__":
                self.emit(node, "KS304", "'__loader__' can load and run modules")
            else:
                self.flag(node, v)
        return v

    def e_attribute(self, node: ast.Attribute, scope: Scope) -> Val:
        value = node.value
        attr = node.attr
        if attr in _CODE_FACTS and value.__class__ is ast.Attribute and value.attr == "__code__":
            # ``f.__code__.co_argcount``: reading a fact about a function, not its code.
            self.ev(value.value, scope)
            return UNK
        base = self.ev(value, scope)
        self.attr_rule(node, base, attr, None)
        if node.ctx.__class__ is not ast.Load:
            return UNK
        if attr in RECEIVER_METHODS:  # ``read = p.read_text`` … ``read()``
            self.writes.method_ref(node, scope)
        result = self.attr_of(base, attr)
        if base is not UNK and result is not UNK:
            self.flag_new(node, result, base)
            self._flag_marker_attr(node, base, attr)
        return result

    def own_methods(self) -> frozenset[str]:
        """Names of the functions and methods this file defines."""
        cached: frozenset[str] | None = getattr(self, "_own_method_names", None)
        if cached is None:
            names: set[str] = set()
            stack: list[ast.AST] = [self.tree]
            while stack:  # statements only: definitions never hide inside expressions
                node = stack.pop()
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    names.add(node.name)
                for field in ("body", "orelse", "finalbody", "handlers", "cases"):
                    children = getattr(node, field, None)
                    if isinstance(children, list):
                        stack.extend(children)
            cached = frozenset(names)
            self._own_method_names = cached
        return cached

    def gateway_escape(self, node: ast.AST, v: Val, how: str) -> None:
        """A module that hands out dangerous names by attribute (``os``, ``sys``,
        ``builtins``) used as a plain value — put in a container, passed to
        a function, returned, stored on an object: what happens to it next is out of sight."""
        for atom in v.atoms:
            name = _gateway_name(atom, self.cp)
            if name is not None:
                self.emit(
                    node, "KS301", f"the {name} handed out as a value ({how}): its later use cannot be seen"
                )
                return

    def escape_name(self, const: ast.Constant) -> None:
        """A string naming a sandbox-escape attribute (``"__globals__"``, ``"__builtins__"``)
        handed to a call or used as a key: the lookup it feeds is out of sight."""
        if isinstance(const.value, str) and const.value in _ESCAPE_NAMES:
            d = self.cp.attr_rules.get(const.value)
            if d is not None:
                self.emit(const, d.rule, f"{d.what} (named by a string)")

    def attr_rule(self, node: ast.AST, base: Val, attr: str, call: ast.Call | None) -> None:
        """Attribute names dangerous on any receiver, with their benign exceptions:
        ``Local.__subclasses__()`` on a class of this file, ``enable_load_extension(False)``."""
        d = self.cp.attr_rules.get(attr)
        if attr in _CLASS_WALK and self._from_builtin_type(node, base):
            d = Danger("KS304", f"{attr!r} of a built-in type walks to object and its subclasses")
        if d is None:
            return
        if attr == "__subclasses__" and base.atoms and all(a[0] == "c" for a in base.atoms):
            return
        if d.rule in ("KS102", "KS401") and (
            _own_object(node, base)
            or (attr in self.own_methods() and not any(a[0] == "q" for a in base.atoms))
        ):
            return  # ``self.create_connection()``: a method of the skill's own class
        if (
            attr == "enable_load_extension"
            and call is not None
            and len(call.args) == 1
            and not call.keywords
            and isinstance(call.args[0], ast.Constant)
            and call.args[0].value in (False, 0)
        ):
            return
        self.emit(node, d.rule, d.what)

    @staticmethod
    def _from_builtin_type(node: ast.AST, base: Val) -> bool:
        """``().__class__.__mro__``, ``type(1).__bases__``, ``object.__mro__``: the first
        step of the classic walk from a literal to ``object.__subclasses__()``."""
        if any(a.startswith("q:builtins.") for a in base.atoms):
            return True
        value = getattr(node, "value", None)
        while isinstance(value, (ast.Attribute, ast.Subscript)):
            value = value.value
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "type":
            value = value.args[0] if len(value.args) == 1 else None
        return isinstance(value, (ast.Constant, ast.Tuple, ast.List, ast.Dict, ast.Set, ast.JoinedStr))

    def _flag_marker_attr(self, node: ast.AST, base: Val, attr: str) -> None:
        atoms = base.atoms
        if "#spec" in atoms and attr == "loader":
            self.emit(node, "KS304", "'__spec__.loader' can load and run modules")
        if "#entry" in atoms and attr == "load" and self.cp.dynamic:
            self.emit(node, "KS202", "an entry point's load() imports the object it names")
        if "#anyattr" in atoms and attr in self.cp.danger_leaves:
            self.emit(node, "KS301", f"{attr!r} read from an object fetched with a computed name")

    def e_subscript(self, node: ast.Subscript, scope: Scope) -> Val:
        if node.slice.__class__ is _CONSTANT:
            self.escape_name(node.slice)
        elif node.slice.__class__ in (ast.BinOp, ast.JoinedStr, ast.Call):
            for name in self.folder.fold_str(node.slice, scope) or ():
                self.escape_name(ast.copy_location(ast.Constant(name), node.slice))
        if node.value.__class__ is ast.Attribute:
            self.env.subscript(node, scope, node.ctx.__class__ is ast.Load)
        base = self.ev(node.value, scope)
        self.ev(node.slice, scope)
        if base is UNK or node.ctx.__class__ is not ast.Load:
            return UNK
        result = self.subscript_of(base, node.slice, scope, node)
        self.flag_new(node, result, base)
        return result

    def subscript_of(self, base: Val, key: ast.expr, scope: Scope, node: ast.AST) -> Val:
        out: set[str] = set(base.elems)
        for atom in base.atoms:
            if atom == "q:sys.modules":
                names = self.folder.fold_str(key, scope)
                for name in names or ():
                    out.add("q:" + canon_cached(name))
                    d = self.cp.import_danger(name)
                    if d is not None:
                        self.emit(node, d.rule, d.what)
            elif atom == "#ns":
                self._ns_lookup(key, scope, node, out)
            elif atom.startswith("#dict:") or atom == "q:builtins":
                qual = atom[6:] if atom[0] == "#" else "builtins"
                names = self.folder.fold_str(key, scope)
                if names is None:
                    self.deferred.append(("dict", node, self.atom_val("q:" + qual), key, scope))
                    out.add("#anyattr")
                else:
                    for name in self._name_forms(names):
                        out.add("q:" + canon_attr_cached(qual, name))
        if not out:
            return UNK
        return Val(frozenset(out), base.elems)

    def _ns_lookup(self, key: ast.expr, scope: Scope, node: ast.AST, out: set[str]) -> None:
        names = self.folder.fold_str(key, scope)
        if names is None:
            self.deferred.append(("ns", node, UNK, key, scope))
            return
        for name in self._name_forms(names):
            if name == "__builtins__":
                self.emit(node, "KS303", "globals()['__builtins__'] reaches eval/exec/__import__")
                out.add("q:builtins")
                continue
            v, _ = self._lookup_module(name, True)
            out.update(v.atoms)

    @staticmethod
    def _name_forms(names: list[str]) -> list[str]:
        out = list(names)
        for name in names:
            if not name.isascii():
                norm = unicodedata.normalize("NFKC", name)
                if norm not in out:
                    out.append(norm)
        return out

    def e_binop(self, node: ast.BinOp, scope: Scope) -> Val:
        a = self.ev(node.left, scope)
        b = self.ev(node.right, scope)
        if a.elems or b.elems:
            return Val(EMPTY, a.elems | b.elems)
        return UNK

    def e_boolop(self, node: ast.BoolOp, scope: Scope) -> Val:
        out = UNK
        for value in node.values:
            out = union(out, self.ev(value, scope))
        return out

    def e_unaryop(self, node: ast.UnaryOp, scope: Scope) -> Val:
        self.ev(node.operand, scope)
        return UNK

    def e_compare(self, node: ast.Compare, scope: Scope) -> Val:
        if node.left.__class__ is _CONSTANT:
            self.env.compare(node, scope)
        self.ev(node.left, scope)
        for op, comp in zip(node.ops, node.comparators, strict=True):
            # ``"yaml" in sys.modules`` only asks whether a module is loaded.
            if op.__class__ in (ast.In, ast.NotIn) and self.quiet(comp, scope).atoms == _SYS_MODULES:
                continue
            self.ev(comp, scope)
        return UNK

    def e_ifexp(self, node: ast.IfExp, scope: Scope) -> Val:
        self.ev(node.test, scope)
        return union(self.ev(node.body, scope), self.ev(node.orelse, scope))

    def e_seq(self, node: ast.Tuple | ast.List | ast.Set, scope: Scope) -> Val:
        out = UNK
        loading = node.__class__ is ast.Set or node.ctx.__class__ is ast.Load  # type: ignore[union-attr]
        for elt in node.elts:
            v = self.ev(elt, scope)
            if v is not UNK:
                out = union(out, v)
                if loading:
                    self.gateway_escape(elt, v, "put in a container")
        if node.__class__ is not ast.Set and node.ctx.__class__ is not ast.Load:  # type: ignore[union-attr]
            return UNK
        return container(out)

    def e_dict(self, node: ast.Dict, scope: Scope) -> Val:
        out = UNK
        for k in node.keys:
            if k is not None:
                self.ev(k, scope)
        self._logging_config_strings(node)
        for k, value in zip(node.keys, node.values, strict=True):
            v = self.ev(value, scope)
            if v is UNK:
                continue
            out = union(out, v)
            if k is None:  # ``{**other}``: its values too
                out = union(out, contents(v))
            else:
                self.gateway_escape(value, v, "put in a container")
        return container(out)

    def _logging_config_strings(self, node: ast.Dict) -> None:
        """``logging.config.dictConfig`` imports what its strings name: a ``"()"`` factory,
        a handler ``"class"`` and ``"ext://"`` values. Judge those names as references."""
        for k, value in zip(node.keys, node.values, strict=True):
            if not (isinstance(k, ast.Constant) and isinstance(value, ast.Constant)):
                continue
            key, text = k.value, value.value
            if not isinstance(text, str):
                continue
            if key in ("()", "class", "."):
                name = text
            elif text.startswith("ext://"):
                name = text[6:]
            else:
                continue
            if not name.replace(".", "").replace("_", "").isalnum():
                continue
            d = self.danger("q:" + canon_cached(name))
            if d is not None:
                self.emit(value, d.rule, f"{name} (named by a logging configuration string): {d.what}")
            elif key == "()" and not name.startswith("logging.") and self.cp.dynamic:
                self.emit(
                    value, "KS202", f"a logging configuration factory string imports and calls {name!r}"
                )
            if key == "class" and canon_cached(name).startswith("logging.") and name.endswith("FileHandler"):
                for k2, v2 in zip(node.keys, node.values, strict=True):
                    if (
                        isinstance(k2, ast.Constant)
                        and k2.value == "filename"
                        and isinstance(v2, ast.Constant)
                    ):
                        target = v2.value
                        if isinstance(target, str) and self.writes.outside(target, True):
                            self.emit(
                                v2, "KS501", f"{name} writes to {target!r}, outside allowed_write_paths"
                            )

    def e_joinedstr(self, node: ast.JoinedStr, scope: Scope) -> Val:
        for value in node.values:
            if value.__class__ is not ast.Constant:
                self.ev(value, scope)
        return UNK

    def e_formatted(self, node: ast.FormattedValue, scope: Scope) -> Val:
        self.ev(node.value, scope)
        if node.format_spec is not None:
            self.ev(node.format_spec, scope)
        return UNK

    def e_starred(self, node: ast.Starred, scope: Scope) -> Val:
        return self.ev(node.value, scope)

    def e_slice(self, node: ast.Slice, scope: Scope) -> Val:
        for part in (node.lower, node.upper, node.step):
            if part is not None:
                self.ev(part, scope)
        return UNK

    def e_await(self, node: ast.Await, scope: Scope) -> Val:
        return self.ev(node.value, scope)

    def e_yield(self, node: ast.Yield | ast.YieldFrom, scope: Scope) -> Val:
        if node.value is not None:
            v = self.ev(node.value, scope)
            self.gateway_escape(node.value, v, "yielded")
            self.returns(scope, v if isinstance(node, ast.YieldFrom) else container(v))
        return UNK

    def e_namedexpr(self, node: ast.NamedExpr, scope: Scope) -> Val:
        v = self.ev(node.value, scope)
        target_scope = scope
        while target_scope.kind == COMP and target_scope.parent is not None:
            target_scope = target_scope.parent
        self.bind(target_scope, node.target.id, v, ("=", node.value, scope, 0), (id(node.value), 0))
        return v

    def e_lambda(self, node: ast.Lambda, scope: Scope) -> Val:
        fs = self._function_scope(node, node.args, scope)
        v = self.ev(node.body, fs)
        self.gateway_escape(node.body, v, "returned by a lambda")
        self.returns(fs, v)
        return self.atom_val(f"f:{fs.ident}")

    def e_comp(self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp, scope: Scope) -> Val:
        cs = self.scope_for(node, COMP, scope)
        self.loop_depth += 1
        for i, gen in enumerate(node.generators):
            iter_scope = scope if i == 0 else cs
            it = self.ev(gen.iter, iter_scope)
            self.assign(gen.target, contents(it), cs, ("iter", gen.iter, iter_scope, 0), False)
            for cond in gen.ifs:
                self.ev(cond, cs)
        if isinstance(node, ast.DictComp):
            v = union(self.ev(node.key, cs), self.ev(node.value, cs))
        else:
            v = self.ev(node.elt, cs)
        self.loop_depth -= 1
        return container(v)

    def _function_scope(self, node: ast.AST, args: ast.arguments, scope: Scope) -> Scope:
        defaults = [self.ev(d, scope) for d in args.defaults]
        kw_defaults = [None if d is None else self.ev(d, scope) for d in args.kw_defaults]
        for d_node, d_val in zip(args.defaults, defaults, strict=True):
            self.gateway_escape(d_node, d_val, "used as a default value")
        for kd_node, kd_val in zip(args.kw_defaults, kw_defaults, strict=True):
            if kd_node is not None and kd_val is not None:
                self.gateway_escape(kd_node, kd_val, "used as a default value")
        fs = self.scopes.get(id(node))
        if fs is None:
            fs = self._new_scope(FUNCTION, scope, node)
            fs.params = [a.arg for a in (*args.posonlyargs, *args.args)]
            fs.kwonly = [a.arg for a in args.kwonlyargs]
            fs.vararg = args.vararg.arg if args.vararg else None
            fs.kwarg = args.kwarg.arg if args.kwarg else None
            fs.is_method = scope.kind == CLASS
        offset = len(fs.params) - len(defaults)
        for i, name in enumerate(fs.params):
            if i >= offset:
                expr = args.defaults[i - offset]
                self.bind(fs, name, defaults[i - offset], ("=", expr, scope, 0), (id(expr), 0))
            else:
                self.bind(fs, name, UNK, None, (0, 0))
        for i, name in enumerate(fs.kwonly):
            dv = kw_defaults[i]
            kexpr = args.kw_defaults[i]
            if dv is not None and kexpr is not None:
                self.bind(fs, name, dv, ("=", kexpr, scope, 0), (id(kexpr), 0))
            else:
                self.bind(fs, name, UNK, None, (0, 0))
        for extra in (fs.vararg, fs.kwarg):
            if extra is not None:
                self.bind(fs, extra, UNK, _NO_REC, (id(node), 1))
        return fs

    def annotation(self, node: ast.expr, scope: Scope, depth: int = 0) -> None:
        """Evaluate an annotation, including code hidden in string forward references
        (``typing.get_type_hints`` and pydantic ``eval`` them)."""
        self.ev(node, scope)
        if depth > 3:
            return
        strings: list[ast.Constant] = []
        self._annotation_strings(node, strings)
        for const in strings:
            text = const.value
            if not isinstance(text, str) or len(text) > 10_000:
                continue
            try:
                parsed = ast.parse(text.strip(), mode="eval")
            except (SyntaxError, ValueError, RecursionError, MemoryError):
                continue
            saved = self.loc
            if saved is None:
                self.loc = (const.lineno, const.col_offset + 1)
            try:
                self.annotation(parsed.body, scope, depth + 1)
            finally:
                self.loc = saved

    def _annotation_strings(self, node: ast.expr, out: list[ast.Constant]) -> None:
        if isinstance(node, ast.Constant):
            if isinstance(node.value, str):
                out.append(node)
        elif isinstance(node, ast.Subscript):
            head = node.value
            name = head.attr if isinstance(head, ast.Attribute) else getattr(head, "id", "")
            if name == "Literal":
                return
            inner = node.slice
            if name == "Annotated" and isinstance(inner, ast.Tuple) and inner.elts:
                self._annotation_strings(inner.elts[0], out)
                return
            self._annotation_strings(inner, out)
        elif isinstance(node, ast.BinOp):
            self._annotation_strings(node.left, out)
            self._annotation_strings(node.right, out)
        elif isinstance(node, (ast.Tuple, ast.List)):
            for elt in node.elts:
                self._annotation_strings(elt, out)
