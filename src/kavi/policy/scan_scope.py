"""Abstract values and scopes for the AST scanner's data-flow analysis.

A :class:`Val` is what the scanner knows about the object an expression may evaluate
to, as a set of *atoms* (strings, so they hash and compare fast):

* ``q:<dotted.name>`` — a canonical qualified name: a module (``q:os``) or an object
  reached from one (``q:os.system``, ``q:builtins.eval``);
* ``f:<n>`` / ``c:<n>`` — a function / class defined in the scanned file (scope id);
* ``#ns`` — a namespace dict from ``globals()``/``locals()``/``vars()``;
* ``#dict:<qual>`` — the ``__dict__`` of module ``qual``;
* ``#attrgetter:<name>`` / ``#methodcaller:<name>`` — ``operator`` helpers (``?`` if unknown);
* ``#spec`` — the module's ``__spec__``.

``elems`` holds the atoms of the *contents* of a container (``[os][0]`` is ``os``),
collapsed to one level. Unknown values are the shared :data:`UNK`.

A :class:`Scope` mirrors Python's scoping (module, class, function/lambda,
comprehension). Its ``env`` maps names to the union of every value bound to them
(flow-insensitive, grown across passes), ``recs`` keeps the bound *expressions* for
lazy constant folding, and ``reads`` the names read so far, to detect bindings that
arrive after a use (which triggers another pass).
"""

from __future__ import annotations

import ast
from typing import Final

EMPTY: Final[frozenset[str]] = frozenset()


class Val:
    __slots__ = ("atoms", "elems")

    def __init__(self, atoms: frozenset[str] = EMPTY, elems: frozenset[str] = EMPTY) -> None:
        self.atoms = atoms
        self.elems = elems

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"Val({sorted(self.atoms)}, elems={sorted(self.elems)})"


UNK: Final[Val] = Val()


def union(a: Val, b: Val) -> Val:
    if a is UNK or a is b:
        return b
    if b is UNK:
        return a
    if a.atoms >= b.atoms and a.elems >= b.elems:
        return a
    if b.atoms >= a.atoms and b.elems >= a.elems:
        return b
    return Val(a.atoms | b.atoms, a.elems | b.elems)


def contents(v: Val) -> Val:
    """The value of an element of container ``v`` (subscript, iteration, unpacking).

    Nesting is collapsed: an element may itself be a container of the same atoms."""
    if not v.elems:
        return UNK
    return Val(v.elems, v.elems)


def container(v: Val) -> Val:
    """A container holding ``v``."""
    if v is UNK:
        return UNK
    return Val(EMPTY, v.atoms | v.elems)


MODULE: Final = 0
CLASS: Final = 1
FUNCTION: Final = 2
COMP: Final = 3

#: A binding record for constant folding: (kind, expression, scope it is evaluated in,
#: index). kind: "=" value, "iter" element of an iterable, "unpack" element ``index``
#: of a sequence, "iter-unpack" element ``index`` of each element, "with" what a
#: ``with`` item binds, "aug" augmented assignment (``index`` = 1 inside a loop),
#: "field" a class field (scope: the class), "?" unknown.
Rec = tuple[str, ast.AST | None, "Scope | None", int]


class Scope:
    __slots__ = (
        "bases",
        "bound_now",
        "called",
        "definite",
        "env",
        "escaped",
        "fields",
        "globals_decl",
        "ident",
        "is_method",
        "is_property",
        "is_static",
        "kind",
        "kwarg",
        "kwonly",
        "node",
        "nonlocals_decl",
        "params",
        "parent",
        "reads",
        "rec_indexed",
        "rec_log",
        "recs",
        "ret",
        "ret_read",
        "stars",
        "vararg",
    )

    def __init__(self, kind: int, parent: Scope | None, node: ast.AST | None, ident: int) -> None:
        self.kind = kind
        self.parent = parent
        self.node = node
        self.ident = ident
        self.env: dict[str, Val] = {}
        self.recs: dict[str, dict[tuple[int, int], Rec]] = {}
        self.rec_log: list[tuple[str, tuple[int, int], Rec]] = []
        self.rec_indexed = 0
        self.reads: set[str] = set()
        self.globals_decl: set[str] = set()
        self.nonlocals_decl: set[str] = set()
        self.bound_now: set[str] = set()
        self.definite: frozenset[str] = EMPTY
        self.stars: list[str] = []
        self.ret: Val = UNK
        self.ret_read = False
        self.params: list[str] = []
        self.kwonly: list[str] = []
        self.vararg: str | None = None
        self.kwarg: str | None = None
        self.is_method = False
        self.is_static = False
        self.is_property = False
        self.fields: list[str] = []  # class: annotated names in order (dataclass-style __init__)
        self.bases: list[Val] = []  # class: values of the base-class expressions
        self.called = False  # function: called from this file (its parameters bound here)
        self.escaped = False  # function: handed to code out of sight, which may call it

    def is_param(self, name: str) -> bool:
        return self.kind == FUNCTION and (
            name in self.params or name in self.kwonly or name == self.vararg or name == self.kwarg
        )

    def fields_from_outside(self) -> bool:
        """Class: may objects be built out of sight (Kavi validating a pydantic input, a
        test, a library)? Only a plain class this file instantiates has known fields."""
        if self.escaped or not self.called:
            return True
        return any(base is UNK or any(a[0] != "c" for a in base.atoms) for base in self.bases)

    def from_outside(self) -> bool:
        """May this function receive arguments the file does not show (from Kavi, pytest,
        another module, a library callback)? Then a parameter is not its default."""
        return self.escaped or not self.called

    def add_rec(self, name: str, key: tuple[int, int], rec: Rec) -> None:
        self.rec_log.append((name, key, rec))

    def recs_of(self, name: str) -> dict[tuple[int, int], Rec] | None:
        """Binding records of ``name``, indexed lazily from the append-only log."""
        log = self.rec_log
        if self.rec_indexed < len(log):
            recs = self.recs
            for i in range(self.rec_indexed, len(log)):
                rname, key, rec = log[i]
                entry = recs.get(rname)
                if entry is None:
                    recs[rname] = {key: rec}
                elif key not in entry:
                    entry[key] = rec
            self.rec_indexed = len(log)
        return self.recs.get(name)
