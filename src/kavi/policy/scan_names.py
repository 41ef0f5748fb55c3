"""Names, scopes and bindings for the scanner's analysis (the base of :class:`Analyzer`).

Python's scoping, modelled as it is: function locals, closures, ``global`` and
``nonlocal``, class bodies that functions cannot see, and module names that shadow
builtins only once they are bound (``eval("x"); def eval(): ...`` still calls the
builtin). A name's value is the union of all values bound to it in its scope; a
binding that arrives after a read of the same name, and could change a verdict,
marks the analysis *dirty* so the module is analysed again.

Findings are emitted here (:meth:`NameResolver.emit`), deduplicated per
(line, column, rule).
"""

from __future__ import annotations

import ast
import functools
import weakref
from collections.abc import Callable
from typing import Any, ClassVar

from kavi.policy.scan_canon import BUILTIN_NAMES, canon, canon_attr
from kavi.policy.scan_env import EnvChecker
from kavi.policy.scan_pathfold import PathFolder
from kavi.policy.scan_rules import CompiledPolicy
from kavi.policy.scan_scope import (
    CLASS,
    COMP,
    FUNCTION,
    MODULE,
    UNK,
    Rec,
    Scope,
    Val,
    container,
    union,
)
from kavi.policy.scan_sinks import FUNC_TABLE
from kavi.policy.scan_tables import Danger
from kavi.policy.scan_writes import WriteChecker

canon_attr_cached = functools.lru_cache(maxsize=8192)(canon_attr)
canon_cached = functools.lru_cache(maxsize=4096)(canon)

Key = tuple[int, int]
TYPING = frozenset(("q:typing", "q:typing_extensions"))
CONTAINER_FUNCS = frozenset(
    (
        "builtins.list",
        "builtins.tuple",
        "builtins.set",
        "builtins.frozenset",
        "builtins.sorted",
        "builtins.reversed",
        "builtins.iter",
        "builtins.dict",
        "builtins.enumerate",
        "builtins.zip",
        "builtins.filter",
        "collections.deque",
        "collections.OrderedDict",
        "collections.ChainMap",
        "copy.copy",
        "copy.deepcopy",
    )
)
_PATH_QUALS = frozenset(
    ("pathlib.Path", "os.path.join", "pathlib.Path.home", "pathlib.Path.cwd", "tempfile.gettempdir")
)


class NameResolver:
    """State of one analysis, name resolution, binding and emission."""

    # Dispatch tables, filled in by the modules that define the handlers: plain
    # functions (not bound methods), so an analyzer holds no reference cycle and is
    # freed by reference counting.
    _E: ClassVar[dict[type, Callable[[Any, Any, Scope], Val]]] = {}
    _S: ClassVar[dict[type, Callable[[Any, Any, Scope, bool], None]]] = {}
    _CALLS: ClassVar[dict[str, Callable[[Any, ast.Call, list[Val], Scope], Val]]] = {}

    def __init__(self, cp: CompiledPolicy, tree: ast.Module) -> None:
        self.cp = cp
        self.tree = tree
        self.findings: dict[tuple[int, int, str], str] = {}
        self.scopes: dict[int, Scope] = {}
        self.by_ident: list[Scope] = []
        self.module = self._new_scope(MODULE, None, tree)
        self.attrs: dict[str, Val] = {}
        self.attr_recs: dict[str, dict[Key, Rec]] = {}
        self.attr_reads: set[str] = set()
        #: attribute names assigned anywhere in the file ("*": a name computed at run time)
        self.attr_written: set[str] = set()
        self.dirty = False
        self.loop_depth = 0
        self.loc: tuple[int, int] | None = None
        self.type_checking: tuple[ast.expr, Scope] | None = None
        self.tc_findings: list[tuple[ast.AST, Danger, ast.expr, Scope]] = []
        self.tc_tampered = False
        self.deferred: list[tuple[str, ast.AST, Val, ast.expr, Scope]] = []
        #: a test module (test functions, no skill class): pytest's tmp_path and the
        #: temporary directory are its scratch space
        self.test_module = False
        me = weakref.proxy(self)
        self.folder = PathFolder(me)
        self.writes = WriteChecker(me)
        self.env = EnvChecker(me)
        self._atom_vals: dict[str, Val] = {}
        self._danger: dict[str, Danger | None] = {}
        self._builtin_vals: dict[str, Val | None] = {}
        self._interest: dict[str, bool] = {}
        self._in_interest: set[int] = set()

    def emit(self, node: ast.AST, rule: str, msg: str) -> None:
        if self.loc is not None:
            line, col = self.loc
        else:
            line = getattr(node, "lineno", 1)
            col = getattr(node, "col_offset", 0) + 1
        key = (line, col, rule)
        if key not in self.findings:
            if rule == "KS601" and id(node) in self.env.ok:
                return  # ``os.environ.get("TZ")``, ``os.environ[k] = v``: judged by scan_env
            self.findings[key] = msg

    def danger(self, atom: str) -> Danger | None:
        try:
            return self._danger[atom]
        except KeyError:
            pass
        found: Danger | None = None
        if atom.startswith("q:"):
            found = self.cp.danger_qual(atom[2:])
        elif atom.startswith("#dict:"):
            qual = atom[6:]
            if self.cp.sensitive_qual(qual):
                found = Danger("KS302", f"namespace of {qual} hands out its functions by name")
        self._danger[atom] = found
        return found

    def flag(self, node: ast.AST, v: Val) -> None:
        for atom in v.atoms:
            d = self.danger(atom)
            if d is not None and not d.call_only:
                self.emit(node, d.rule, d.what)

    def flag_new(self, node: ast.AST, v: Val, base: Val) -> None:
        """Flag dangers of ``v`` under rules that ``base`` was not already flagged for."""
        if v is UNK:
            return
        have: set[str] | None = None
        for atom in v.atoms:
            d = self.danger(atom)
            if d is None or d.call_only:
                continue
            if have is None:
                have = set()
                for b in base.atoms:
                    bd = self.danger(b)
                    if bd is not None:
                        have.add(bd.rule)
            if d.rule not in have:
                self.emit(node, d.rule, d.what)

    def atom_val(self, atom: str) -> Val:
        v = self._atom_vals.get(atom)
        if v is None:
            v = self._atom_vals[atom] = Val(frozenset((atom,)))
        return v

    def q(self, qual: str) -> Val:
        return self.atom_val("q:" + qual)

    def sensitive(self, v: Val) -> bool:
        for atom in v.atoms:
            if atom[0] == "#" or (atom.startswith("q:") and self.cp.sensitive_qual(atom[2:])):
                return True
        return False

    def interesting(self, v: Val) -> bool:
        for atoms in (v.atoms, v.elems):
            for atom in atoms:
                if self._interesting_atom(atom):
                    return True
        return False

    def _interesting_atom(self, atom: str) -> bool:
        first = atom[0]
        if first == "f":
            ident = int(atom[2:])
            if ident in self._in_interest:
                return False
            self._in_interest.add(ident)
            try:
                return self.interesting(self.by_ident[ident].ret)
            finally:
                self._in_interest.discard(ident)
        if first == "c":
            return False
        cached = self._interest.get(atom)
        if cached is None:
            qual = atom[2:]
            cached = (
                first == "#"
                or self.cp.leads_to_danger(qual)
                or qual in self._CALLS
                or qual in CONTAINER_FUNCS
                or qual in FUNC_TABLE
                or qual in _PATH_QUALS
            )
            self._interest[atom] = cached
        return cached

    def _new_scope(self, kind: int, parent: Scope | None, node: ast.AST) -> Scope:
        scope = Scope(kind, parent, node, len(self.by_ident))
        self.by_ident.append(scope)
        self.scopes[id(node)] = scope
        return scope

    def scope_for(self, node: ast.AST, kind: int, parent: Scope) -> Scope:
        scope = self.scopes.get(id(node))
        if scope is None:
            scope = self._new_scope(kind, parent, node)
        return scope

    def _builtin(self, name: str) -> Val | None:
        try:
            return self._builtin_vals[name]
        except KeyError:
            pass
        atoms: set[str] = set()
        if name == "__builtins__":
            atoms.add("q:builtins")
        elif name == "__loader__":
            atoms.add("q:builtins.__loader__")
        elif name == "__spec__":
            atoms.add("#spec")
        elif name in BUILTIN_NAMES:
            atoms.add("q:builtins." + name)
        for star in self.module.stars:
            atoms.add("q:" + canon_cached(star + "." + name))
        v = Val(frozenset(atoms)) if atoms else None
        self._builtin_vals[name] = v
        return v

    def lookup(self, name: str, scope: Scope) -> tuple[Val, bool]:
        """The value of ``name`` read in ``scope``; True if (partly) a builtin or star import."""
        s: Scope | None = scope
        deferred = False
        if name in scope.globals_decl:
            return self._lookup_module(name, scope.kind != MODULE)
        first = True
        while s is not None:
            kind = s.kind
            if kind == MODULE:
                return self._lookup_module(name, deferred)
            s.reads.add(name)
            if kind == CLASS:
                if first:
                    v = s.env.get(name)
                    if v is not None:
                        if name in s.bound_now:
                            return v, False
                        outer, builtin = self.lookup(name, s.parent) if s.parent else (UNK, False)
                        return union(v, outer), builtin
            elif name not in s.nonlocals_decl:
                v = s.env.get(name)
                if v is not None:
                    return v, False
                if kind == FUNCTION:
                    deferred = True
            first = False
            s = s.parent
        return UNK, False

    def _lookup_module(self, name: str, deferred: bool) -> tuple[Val, bool]:
        m = self.module
        m.reads.add(name)
        v = m.env.get(name)
        if v is not None:
            if name in (m.definite if deferred else m.bound_now):
                return v, False
            b = self._builtin(name)
            if b is None:
                return v, False
            return union(v, b), True
        b = self._builtin(name)
        if b is None:
            return UNK, False
        return b, True

    def binding_scope(self, name: str, scope: Scope) -> Scope | None:
        """The scope whose binding of ``name`` a read in ``scope`` would see (no builtins)."""
        if name in scope.globals_decl:
            return self.module
        s: Scope | None = scope
        first = True
        while s is not None:
            if s.kind == MODULE:
                return s if name in s.env else None
            if (s.kind != CLASS or first) and name not in s.nonlocals_decl and name in s.env:
                return s
            first = False
            s = s.parent
        return None

    def param_scope(self, name: str, scope: Scope) -> Scope | None:
        """The function whose parameter ``name`` (read in ``scope``) is, if it is one."""
        target = self.binding_scope(name, scope)
        return target if target is not None and target.is_param(name) else None

    def recs_for(self, name: str, scope: Scope) -> dict[Key, Rec] | None:
        target = self.binding_scope(name, scope)
        if target is None:
            return None
        return target.recs_of(name)

    def quiet(self, node: ast.expr, scope: Scope) -> Val:
        """The value of a name/attribute chain, without emitting findings."""
        if isinstance(node, ast.Name):
            return self.lookup(node.id, scope)[0]
        if isinstance(node, ast.Attribute):
            base = self.quiet(node.value, scope)
            return self.attr_of(base, node.attr)
        return UNK

    def bind(self, scope: Scope, name: str, v: Val, rec: Rec | None, key: Key, top: bool = False) -> None:
        s = scope
        if name in s.globals_decl:
            s = self.module
        elif name in s.nonlocals_decl:
            s = self._nonlocal_target(s, name)
        env = s.env
        old = env.get(name)
        if old is None:
            env[name] = v
            if v is not UNK and name in s.reads and self.interesting(v):
                self.dirty = True
        elif v is not UNK:
            new = union(old, v)
            if new is not old:
                env[name] = new
                if name in s.reads and self.interesting(v):
                    self.dirty = True
        if rec is not None:
            s.add_rec(name, key, rec)
        if top:
            scope.bound_now.add(name)
        if s.kind == CLASS:
            self.attr_written.add(name)
            if v is not UNK:
                self.attr_store(name, v)
            if rec is not None:
                self.attr_rec(name, key, rec)

    def _nonlocal_target(self, scope: Scope, name: str) -> Scope:
        s = scope.parent
        while s is not None and s.kind != MODULE:
            if s.kind == FUNCTION and name in s.env:
                return s
            s = s.parent
        s = scope.parent
        while s is not None and s.kind not in (FUNCTION, MODULE):
            s = s.parent
        return s or self.module

    def update_existing(self, name: str, scope: Scope, v: Val) -> None:
        """``name[...] = v`` / ``name.append(v)``: grow the container bound to ``name``."""
        if v is UNK:
            return
        target = self.binding_scope(name, scope)
        if target is None:
            return
        old = target.env.get(name, UNK)
        new = union(old, container(v))
        if new is not old:
            target.env[name] = new
            if name in target.reads and self.interesting(v):
                self.dirty = True

    def attr_rec(self, name: str, key: Key, rec: Rec) -> None:
        """Remember the expression stored into attribute ``name`` (for constant folding)."""
        recs = self.attr_recs.get(name)
        if recs is None:
            self.attr_recs[name] = {key: rec}
        elif key not in recs:
            recs[key] = rec

    def attr_recs_for(self, name: str) -> dict[Key, Rec] | None:
        return self.attr_recs.get(name)

    def attr_store(self, name: str, v: Val) -> None:
        if name == "TYPE_CHECKING":
            self.tc_tampered = True
        old = self.attrs.get(name)
        new = v if old is None else union(old, v)
        if new is not old:
            self.attrs[name] = new
            if name in self.attr_reads and self.interesting(v):
                self.dirty = True

    def attr_of(self, base: Val, attr: str) -> Val:
        """The value of ``<base>.attr`` (no findings)."""
        if base is UNK:
            self.attr_reads.add(attr)
            return self.attrs.get(attr, UNK)
        atoms: list[str] = []
        other = False
        for atom in base.atoms:
            first = atom[0]
            if first == "q":
                qual = atom[2:]
                if attr == "__dict__":
                    if atom in TYPING:
                        self.tc_tampered = True
                    if self.cp.sensitive_qual(qual):
                        atoms.append("#dict:" + qual)
                    else:
                        other = True
                elif attr == "__self__" and qual.startswith("builtins."):
                    atoms.append("q:builtins")
                else:
                    atoms.append("q:" + canon_attr_cached(qual, attr))
            elif first == "f":
                if attr == "__class__":
                    atoms.append("q:types.FunctionType")
                other = True
            elif atom == "#spec" and attr == "loader":
                atoms.append("q:builtins.__loader__")
            elif atom == "#entry":
                atoms.append(atom)
            elif atom == "#anyattr":
                mod = canon_attr_cached("", attr)
                atoms.append("q:" + mod if not mod.startswith(".") else "#anyattr")
            else:
                other = True
        if not atoms and not base.atoms:
            other = True
        result = Val(frozenset(atoms)) if atoms else UNK
        if other:
            self.attr_reads.add(attr)
            extra = self.attrs.get(attr)
            if extra is not None:
                result = union(result, extra)
        return result

    def returns(self, scope: Scope, v: Val) -> None:
        s: Scope | None = scope
        while s is not None and s.kind == COMP:
            s = s.parent
        if s is None or s.kind != FUNCTION or v is UNK:
            return
        new = union(s.ret, v)
        if new is not s.ret:
            s.ret = new
            if s.ret_read and self.interesting(v):
                self.dirty = True
