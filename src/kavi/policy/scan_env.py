"""Reading the process environment (KS601): which uses of ``os.environ`` are allowed.

A skill receives the secrets it declared in ``ctx.secrets``; the process environment is
Kavi's (API keys, other skills' secrets, the user's tokens), so ``os.environ``,
``os.getenv`` and their aliases are findings wherever they are *reached* (the tables of
:mod:`kavi.policy.scan_tables`). The capability model gives a skill locale and time
zone, and changing its own environment harms nobody, so :class:`EnvChecker` lets these
forms through, spelled on ``os.environ``/``os.getenv`` directly:

* reading a locale variable by a constant name: ``os.environ.get("TZ")``,
  ``os.getenv("LANG")``, ``os.environ["LC_ALL"]``;
* setting or deleting a variable: ``os.environ["TZ"] = "UTC"``, ``del os.environ[k]``,
  ``os.environ.update(...)``, ``monkeypatch.setitem(os.environ, …)``,
  ``mock.patch.dict(os.environ, …)``;
* asking whether a variable is set: ``"CI" in os.environ``.

Keys are folded after the last pass, when every binding is known; a key that may be
anything else (a parameter, a computed name) is a finding.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from kavi.policy.scan_fold import Folder
    from kavi.policy.scan_scope import Scope, Val

#: Variables the capability model gives every skill: locale and time zone.
LOCALE_VARIABLES = frozenset(("TZ", "LANG", "LANGUAGE"))
_ENV_NAMES = frozenset(("environ", "environb"))
_ENV_ATOMS = frozenset(("q:os.environ", "q:os.environb"))
_GETENV_NAMES = frozenset(("getenv", "getenvb"))
_GETENV_ATOMS = frozenset(("q:os.getenv", "q:os.getenvb"))
_KEY_READS = frozenset(("get", "setdefault", "pop", "__getitem__", "__contains__"))
_WRITES = frozenset(("update", "__setitem__", "__delitem__"))
_PATCHERS = frozenset(("setitem", "delitem"))
_PATCH_DICT = frozenset(("q:unittest.mock.patch.dict", "q:mock.patch.dict"))
#: Method names :meth:`EnvChecker.call` looks at (the engine asks only for these).
ENV_CALL_ATTRS = _KEY_READS | _WRITES | _GETENV_NAMES | _PATCHERS | {"dict"}


def _key(node: ast.Call) -> ast.expr | None:
    """The variable name a ``get``/``getenv``-style call reads."""
    if node.args:
        return node.args[0]
    return next((k.value for k in node.keywords if k.arg == "key"), None)


def locale_variable(name: str) -> bool:
    return name in LOCALE_VARIABLES or name.startswith("LC_")


class EnvHost(Protocol):
    """What the checker needs from the analysis (implemented by the engine)."""

    @property
    def folder(self) -> Folder: ...

    def quiet(self, node: ast.expr, scope: Scope) -> Val: ...

    def emit(self, node: ast.AST, rule: str, msg: str) -> None: ...


class EnvChecker:
    def __init__(self, host: EnvHost) -> None:
        self.host = host
        #: ids of ``os.environ``/``os.getenv`` nodes reached in an allowed form
        self.ok: set[int] = set()
        #: ids of calls used as a bare ``with`` item or a decorator (their value is not kept)
        self.bare: set[int] = set()
        self.pending: list[tuple[ast.AST, ast.expr | None, Scope]] = []

    def reset(self) -> None:
        self.pending = []

    def _is_env(self, node: ast.expr, scope: Scope) -> bool:
        if not (isinstance(node, ast.Attribute) and node.attr in _ENV_NAMES):
            return False
        atoms = self.host.quiet(node, scope).atoms
        return bool(atoms) and atoms <= _ENV_ATOMS

    def call(self, node: ast.Call, scope: Scope) -> None:
        """Before a call is evaluated: ``os.environ.get(k)``, ``os.getenv(k)``, patchers."""
        func = node.func
        if not isinstance(func, ast.Attribute):
            return
        attr = func.attr
        if attr in _KEY_READS or attr in _WRITES:
            if self._is_env(func.value, scope):
                self.ok.add(id(func.value))
                if attr in _KEY_READS:
                    self.pending.append((node, _key(node), scope))
        elif attr in _GETENV_NAMES:
            atoms = self.host.quiet(func, scope).atoms
            if atoms and atoms <= _GETENV_ATOMS:
                self.ok.add(id(func))
                self.pending.append((node, _key(node), scope))
        elif (
            (attr in _PATCHERS or attr == "dict")
            and node.args
            and self._is_env(node.args[0], scope)
            and (
                attr != "dict" or (id(node) in self.bare and self.host.quiet(func, scope).atoms & _PATCH_DICT)
            )
        ):
            # ``with mock.patch.dict(os.environ, …) as env`` would hand out the environment
            self.ok.add(id(node.args[0]))

    def subscript(self, node: ast.Subscript, scope: Scope, reads: bool) -> None:
        """``os.environ[k]`` read (the key is judged later), set or deleted."""
        if self._is_env(node.value, scope):
            self.ok.add(id(node.value))
            if reads:
                self.pending.append((node, node.slice, scope))

    def compare(self, node: ast.Compare, scope: Scope) -> None:
        """``"CI" in os.environ`` asks whether a variable is set, not what it holds."""
        if isinstance(node.left, ast.Constant) and isinstance(node.left.value, str):
            for op, comp in zip(node.ops, node.comparators, strict=True):
                if isinstance(op, (ast.In, ast.NotIn)) and self._is_env(comp, scope):
                    self.ok.add(id(comp))

    def check_all(self) -> None:
        folder = self.host.folder
        seen: set[int] = set()
        for node, key, scope in self.pending:
            if id(node) in seen:
                continue
            seen.add(id(node))
            names = folder.fold_str(key, scope) if key is not None else None
            if names is not None and all(locale_variable(n) for n in names):
                continue
            what = (
                "a variable named at run time"
                if names is None
                else ", ".join(repr(n) for n in names if not locale_variable(n))
            )
            self.host.emit(
                node,
                "KS601",
                f"reads the environment ({what}): a skill gets only its declared secrets, "
                "from ctx.secrets[...], and locale/TZ",
            )
