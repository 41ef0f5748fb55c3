"""Folding file-system paths for the write rule.

:class:`PathFolder` extends the constant folder to paths: string constants,
f-strings, ``+`` and ``/``, ``os.path.join``/``expanduser``/``dirname``,
``pathlib.Path(...)`` and its ``joinpath``/``parent``/``with_suffix``/``resolve``,
``Path.home()``/``cwd()``, ``tempfile.gettempdir()``, ``os.environ["HOME"]`` and
friends, through variables, parameters and attributes. A candidate is
``(text, complete)``: when only the start of a path is known (``f"/etc/{name}"``,
``Path("/tmp") / x``) the text is that known prefix and ``complete`` is False.
"""

from __future__ import annotations

import ast
import posixpath

from kavi.policy.scan_fold import MAX_CANDS, MAX_DEPTH, Folder
from kavi.policy.scan_scope import Rec, Scope

PathCand = tuple[str, bool]  # (text, complete?)

_PATH_CTORS: frozenset[str] = frozenset(("pathlib.Path", "os.path.join", "zipfile.Path"))
_PATH_SAME: frozenset[str] = frozenset(
    (
        "os.path.expanduser",
        "os.path.abspath",
        "os.path.normpath",
        "os.path.realpath",
        "os.path.expandvars",
        "os.fspath",
        "os.fsencode",
        "os.fsdecode",
        "builtins.str",
    )
)
_PATH_SAME_METHODS: frozenset[str] = frozenset(
    ("resolve", "absolute", "expanduser", "as_posix", "__fspath__", "__str__")
)
_PATH_SIBLING_METHODS: frozenset[str] = frozenset(("with_suffix", "with_name", "with_stem"))
_ENV_PATHS: dict[str, str] = {
    "HOME": "~",
    "USERPROFILE": "~",
    "APPDATA": "~/AppData",
    "LOCALAPPDATA": "~/AppData",
    "XDG_CONFIG_HOME": "~/.config",
    "XDG_DATA_HOME": "~/.local/share",
    "XDG_CACHE_HOME": "~/.cache",
    "TMPDIR": "/tmp",
    "TMP": "/tmp",
    "TEMP": "/tmp",
}


class PathFolder(Folder):
    def path(self, node: ast.AST, scope: Scope) -> list[PathCand] | None:
        if self._depth > MAX_DEPTH:
            return None
        self._depth += 1
        try:
            return self._path(node, scope)
        except (RecursionError, MemoryError):
            return None
        finally:
            self._depth -= 1

    def _path(self, node: ast.AST, scope: Scope) -> list[PathCand] | None:
        cls = node.__class__
        if cls is ast.Constant:
            value = node.value  # type: ignore[attr-defined]
            if isinstance(value, bytes):
                value = value.decode("latin-1")
            return [(value, True)] if isinstance(value, str) else None
        if cls is ast.Name:
            return self._path_name(node.id, scope)  # type: ignore[attr-defined]
        if cls is ast.JoinedStr:
            return self._path_joined(node, scope)  # type: ignore[arg-type]
        if cls is ast.BinOp:
            op = node.op.__class__  # type: ignore[attr-defined]
            if op is ast.Add:
                return self._path_concat(node.left, node.right, scope, "")  # type: ignore[attr-defined]
            if op is ast.Div:
                return self._path_concat(node.left, node.right, scope, "/")  # type: ignore[attr-defined]
        if cls is ast.IfExp:
            a = self.path(node.body, scope)  # type: ignore[attr-defined]
            b = self.path(node.orelse, scope)  # type: ignore[attr-defined]
            if a is None or b is None:
                return None
            return a + b
        if cls is ast.Attribute:
            if node.attr == "parent":  # type: ignore[attr-defined]
                inner = self.path(node.value, scope)  # type: ignore[attr-defined]
                return None if inner is None else [_dirname(c) for c in inner]
            if node.attr == "anchor":  # type: ignore[attr-defined]
                inner = self.path(node.value, scope)  # type: ignore[attr-defined]
                return None if inner is None else [_anchor(c) for c in inner]
            if not self._is_module(node.value, scope):  # type: ignore[attr-defined]
                attr = node.attr  # type: ignore[attr-defined]
                return self._path_recs(self.res.attr_recs_for(attr), "/." + attr)
        if (
            cls is ast.Subscript
            and isinstance(node.value, ast.Attribute)  # type: ignore[attr-defined]
            and node.value.attr == "parents"  # type: ignore[attr-defined]
            and isinstance(node.slice, ast.Constant)  # type: ignore[attr-defined]
            and isinstance(node.slice.value, int)  # type: ignore[attr-defined]
        ):
            inner = self.path(node.value.value, scope)  # type: ignore[attr-defined]
            if inner is None:
                return None
            out = []
            for cand in inner:
                for _ in range(node.slice.value + 1):  # type: ignore[attr-defined]
                    cand = _dirname(cand)
                out.append(cand)
            return out
        if cls is ast.Call:
            got = self._path_call(node, scope)  # type: ignore[arg-type]
            if got is not None:
                return got
        if cls is ast.Subscript and self._env_mapping(node.value, scope):  # type: ignore[attr-defined]
            return self._env_path(node.slice, scope)  # type: ignore[attr-defined]
        strs = self.fold_str(node, scope)
        return None if strs is None else [(s, True) for s in strs]

    def _path_name(self, name: str, scope: Scope) -> list[PathCand] | None:
        return self._path_recs(self.res.recs_for(name, scope), "/" + name)

    def _path_recs(self, recs: dict[tuple[int, int], Rec] | None, name: str) -> list[PathCand] | None:
        if not recs:
            return None
        key = (id(recs), name)
        if key in self._active:
            return None
        self._active.add(key)
        try:
            out: list[PathCand] = []
            for kind, expr, rscope, _index in list(recs.values()):
                if kind != "=" or expr is None or rscope is None:
                    strs = (
                        self.fold_str(expr, rscope)
                        if expr is not None and rscope is not None and kind in ("iter", "unpack")
                        else None
                    )
                    got = None if strs is None else [(s, True) for s in strs]
                    if kind in ("iter", "unpack"):
                        folded = self._fold_rec(kind, expr, rscope, _index)
                        got = (
                            None
                            if folded is None or not all(isinstance(c, str) for c in folded)
                            else [(str(c), True) for c in folded]
                        )
                else:
                    got = self.path(expr, rscope)
                if got is None:
                    return None
                out.extend(got)
                if len(out) > MAX_CANDS:
                    return None
            return out
        finally:
            self._active.discard(key)

    def _path_joined(self, node: ast.JoinedStr, scope: Scope) -> list[PathCand] | None:
        prefixes: list[str] = [""]
        for value in node.values:
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                prefixes = [p + value.value for p in prefixes]
                continue
            inner = (
                self.path(value.value, scope)
                if isinstance(value, ast.FormattedValue) and value.format_spec is None
                else None
            )
            if inner is None:
                return [(p, False) for p in prefixes]
            grown: list[str] = []
            for p in prefixes:
                for text, complete in inner:
                    if not complete:
                        return [(p + text, False)]
                    grown.append(p + text)
            if len(grown) > MAX_CANDS:
                return None
            prefixes = grown
        return [(p, True) for p in prefixes]

    def _path_concat(self, left: ast.expr, right: ast.expr, scope: Scope, sep: str) -> list[PathCand] | None:
        lefts = self.path(left, scope)
        if lefts is None:
            return None
        rights = self.path(right, scope)
        out: list[PathCand] = []
        for ltext, lcomplete in lefts:
            if not lcomplete:
                out.append((ltext, False))
                continue
            if rights is None:
                out.append((_join(ltext, "", sep), False))
                continue
            for rtext, rcomplete in rights:
                out.append((_join(ltext, rtext, sep), rcomplete))
        return out if len(out) <= MAX_CANDS else None

    def _path_call(self, node: ast.Call, scope: Scope) -> list[PathCand] | None:
        func = node.func
        if isinstance(func, ast.Attribute) and not self._qual(func, scope):
            method = func.attr
            if method in _PATH_SAME_METHODS:
                return self.path(func.value, scope)
            if method == "joinpath":
                return self._path_join_all(func.value, node.args, scope)
            if method in _PATH_SIBLING_METHODS:
                inner = self.path(func.value, scope)
                if inner is None:
                    return None
                args = self.fold_str(node.args[0], scope) if len(node.args) == 1 else None
                out: list[PathCand] = []
                for cand in inner:
                    for arg in args if args is not None and cand[1] else [None]:
                        out.append(_sibling(cand, method, arg))
                return out if len(out) <= MAX_CANDS else None
            return None
        for qual in self._qual(func, scope):
            if qual in _PATH_CTORS:
                if not node.args:
                    return [(".", True)]
                return self._path_join_all(None, node.args, scope)
            if qual in _PATH_SAME and node.args:
                return self.path(node.args[0], scope)
            if qual == "os.path.dirname" and node.args:
                inner = self.path(node.args[0], scope)
                return None if inner is None else [_dirname(c) for c in inner]
            if qual in ("os.getcwd", "pathlib.Path.cwd"):
                return [(".", True)]
            if qual == "pathlib.Path.home":
                return [("~", True)]
            if qual == "tempfile.gettempdir":
                return [("/tmp", True)]
            if qual in ("os.getenv", "os.environ.get") and node.args:
                return self._env_path(node.args[0], scope)
        return None

    def _env_mapping(self, node: ast.expr, scope: Scope) -> bool:
        return "q:os.environ" in self.res.quiet(node, scope).atoms

    def _env_path(self, key: ast.expr, scope: Scope) -> list[PathCand] | None:
        """``os.environ["HOME"]``-style prefixes that are certainly outside the repository."""
        names = self.fold_str(key, scope)
        if not names:
            return None
        out: list[PathCand] = []
        for name in names:
            base = _ENV_PATHS.get(name)
            if base is None:
                return None
            out.append((base, True))
        return out

    def _path_join_all(
        self, first: ast.expr | None, args: list[ast.expr], scope: Scope
    ) -> list[PathCand] | None:
        current: list[PathCand] | None = None if first is None else self.path(first, scope)
        if first is not None and current is None:
            return None
        for arg in args:
            if isinstance(arg, ast.Starred):
                return None if current is None else [(_join(t, "", "/"), False) for t, _ in current]
            part = self.path(arg, scope)
            if current is None:
                if part is None:
                    return None
                current = part
                continue
            nxt: list[PathCand] = []
            for text, complete in current:
                if not complete:
                    nxt.append((text, False))
                elif part is None:
                    nxt.append((_join(text, "", "/"), False))
                else:
                    nxt.extend((_join(text, ptext, "/"), pc) for ptext, pc in part)
            if len(nxt) > MAX_CANDS:
                return None
            current = nxt
        return current


def _join(left: str, right: str, sep: str) -> str:
    if not sep:
        return left + right
    if right.startswith(("/", "~")):
        return right
    if not left or left.endswith("/"):
        return left + right
    return left + "/" + right


def _sibling(cand: PathCand, method: str, arg: str | None) -> PathCand:
    """``p.with_name(n)`` / ``with_suffix`` / ``with_stem``: the same directory, another name."""
    head = _dirname(cand)[0]
    prefix = "" if head == "." else head.rstrip("/") + "/"
    if arg is None or not cand[1]:
        return (prefix, False)
    base = posixpath.basename(cand[0].rstrip("/"))
    stem, suffix = posixpath.splitext(base)
    name = {"with_name": arg, "with_suffix": stem + arg, "with_stem": arg + suffix}[method]
    return (prefix + name, True)


def _anchor(cand: PathCand) -> PathCand:
    text, complete = cand
    return ("/", True) if text.startswith("/") else ("", True) if complete else ("", False)


def _dirname(cand: PathCand) -> PathCand:
    text, complete = cand
    if not complete:
        cut = text.rfind("/")
        return (text[: cut + 1], False) if cut >= 0 else ("", False)
    stripped = text.rstrip("/") or text
    head = posixpath.dirname(stripped)
    return (head or ".", True)
