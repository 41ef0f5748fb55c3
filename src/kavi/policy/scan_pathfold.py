"""Folding file-system paths for the file-access rules.

:class:`PathFolder` extends the constant folder to paths: string constants,
f-strings, ``+`` and ``/``, ``os.path.join``/``expanduser``/``dirname``,
``pathlib.Path(...)`` and its ``joinpath``/``parent``/``with_suffix``/``resolve``,
``Path.home()``/``cwd()``, :mod:`tempfile`, ``os.environ["HOME"]`` and friends,
through variables, parameters and attributes. A candidate is ``(text, complete)``:
when only the start of a path is known (``f"/etc/{name}"``, ``Path("/tmp") / x``) the
text is that known prefix and ``complete`` is False.

Paths the skill contract sanctions start with a root marker of
:mod:`kavi.policy.scan_places`: what ``ctx.resolve_write_path(...)`` /
``ctx.resolve_read_path(...)`` return when ``ctx`` really is the context Kavi passes
(a parameter named ``ctx``/``context`` or annotated ``SkillContext``, followed through
assignments and attributes; never an object the file builds or a context whose
attributes it rewrites), ``ctx.vault_root``, and in a test module pytest's ``tmp_path``
and the temporary directory. A parameter of a function that may be called from out of
sight (see :meth:`Scope.from_outside`) is unknown, whatever its default.
"""

from __future__ import annotations

import ast
import posixpath

from kavi.policy.scan_fold import MAX_CANDS, MAX_DEPTH
from kavi.policy.scan_origin import NOT_PATH_METHODS, NOT_PATHS, Origins, PathCand
from kavi.policy.scan_places import (
    CODE_ROOT,
    JOINED,
    MARK,
    NOT_A_PATH,
    READ_ROOT,
    SCRATCH,
    VAULT_ROOT,
    WRITE_ROOT,
    unknown_start,
)
from kavi.policy.scan_scope import Rec, Scope

UNKNOWN: PathCand = ("", False)  # nothing known, not even the start

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
_RESOLVERS: dict[str, str] = {"resolve_write_path": WRITE_ROOT, "resolve_read_path": READ_ROOT}
_SCRATCH_METHODS = frozenset(("mktemp", "getbasetemp", "join", "mkdir", "ensure", "mkdtemp"))
_TEMP_DIRS = frozenset(("tempfile.gettempdir", "tempfile.gettempdirb"))
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


class PathFolder(Origins):
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
            if isinstance(value, int) and not isinstance(value, bool):
                return [(NOT_A_PATH, True)]  # a file descriptor
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
        if cls is ast.IfExp or cls is ast.BoolOp:
            values = (node.body, node.orelse) if cls is ast.IfExp else node.values  # type: ignore[attr-defined]
            out: list[PathCand] = []
            for value in values:
                got = self.path(value, scope)
                if got is None:
                    return None
                out.extend(got)
            return out if len(out) <= MAX_CANDS else None
        if cls is ast.Attribute:
            return self._path_attribute(node, scope)  # type: ignore[arg-type]
        if cls is ast.Subscript:
            got = self._path_subscript(node, scope)  # type: ignore[arg-type]
            if got is not None:
                return got
        if cls is ast.Call:
            got = self._path_call(node, scope)  # type: ignore[arg-type]
            if got is not None:
                return got
        if cls is ast.Subscript and self._env_mapping(node.value, scope):  # type: ignore[attr-defined]
            return self._env_path(node.slice, scope)  # type: ignore[attr-defined]
        strs = self.fold_str(node, scope)
        return None if strs is None else [(s, True) for s in strs]

    def _path_attribute(self, node: ast.Attribute, scope: Scope) -> list[PathCand] | None:
        attr = node.attr
        if attr == "parent":
            inner = self.path(node.value, scope)
            return None if inner is None else [_dirname(c) for c in inner]
        if attr == "anchor":
            inner = self.path(node.value, scope)
            return None if inner is None else [_anchor(c) for c in inner]
        if attr == "vault_root" and self.is_context(node.value, scope):
            return [(VAULT_ROOT, True)]
        if attr == "pw_dir":
            return [("~", True)]  # ``pwd.getpwuid(uid).pw_dir``: a home directory
        if attr == "name":  # ``NamedTemporaryFile(dir=…).name``, ``TemporaryDirectory().name``
            temp = self._tempfile_call(node.value, scope, 0)
            if temp is not None:
                return self._temp_dir(*temp)
        quals = self._qual(node, scope)
        if any(q in NOT_PATHS for q in quals):
            return [(NOT_A_PATH, True)]
        if quals or self._is_module(node.value, scope):
            strs = self.fold_str(node, scope)  # ``os.devnull``, ``os.sep``
            return None if strs is None else [(s, True) for s in strs]
        return self._path_recs(self.res.attr_recs_for(attr), "/." + attr)

    def _path_subscript(self, node: ast.Subscript, scope: Scope) -> list[PathCand] | None:
        index = node.slice.value if isinstance(node.slice, ast.Constant) else None
        if not isinstance(index, int) or isinstance(index, bool):
            return None
        if isinstance(node.value, ast.Attribute) and node.value.attr == "parents":
            inner = self.path(node.value.value, scope)
            if inner is None:
                return None
            out = []
            for cand in inner:
                for _ in range(index + 1):
                    cand = _dirname(cand)
                out.append(cand)
            return out
        temp = self._tempfile_call(node.value, scope, 0)
        if temp is not None and temp[0] == "tempfile.mkstemp" and index in (0, 1):
            return self._temp_dir(*temp) if index == 1 else [(NOT_A_PATH, True)]
        return None

    def _path_name(self, name: str, scope: Scope) -> list[PathCand] | None:
        if name == "__file__" and not self.res.recs_for(name, scope):
            return [(CODE_ROOT + "/module.py", True)]
        fs = self.res.param_scope(name, scope)
        if fs is not None and fs.from_outside():
            # A caller out of sight may pass anything: the default (and what this file
            # passes) are some of the values, the rest is unknown.
            origin = self._param_origin(fs, name) or [UNKNOWN]
            recs = fs.recs_of(name)
            more = self._path_recs(recs, "/" + name) if recs else None
            return origin + more if more is not None else origin
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
            for kind, expr, rscope, index in list(recs.values()):
                got: list[PathCand] | None = None
                if kind == "field" and rscope is not None:
                    got = None if rscope.fields_from_outside() else []
                elif not isinstance(expr, ast.expr) or rscope is None:
                    got = None
                elif kind == "=":
                    got = self.path(expr, rscope)
                elif kind == "with":
                    got = self._with_path(expr, rscope)
                elif kind == "iter-unpack":
                    got = self._walked(expr, rscope) if index == 0 else None
                elif kind in ("iter", "unpack"):
                    temp = self._tempfile_call(expr, rscope, 0) if kind == "unpack" else None
                    if temp is not None and temp[0] == "tempfile.mkstemp" and index in (0, 1):
                        got = self._temp_dir(*temp) if index == 1 else [(NOT_A_PATH, True)]
                    elif kind == "iter" and isinstance(expr, ast.Call):
                        got = self._listed(expr, rscope)
                    elif kind == "iter" and isinstance(expr, ast.Name) and self._walked_names(expr, rscope):
                        got = self._walked_names(expr, rscope)
                    else:
                        folded = self._fold_rec(kind, expr, rscope, index)
                        if folded is not None and all(isinstance(c, str) for c in folded):
                            got = [(str(c), True) for c in folded]
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
            for cand in _joined(ltext, lcomplete, rights, sep):
                if cand not in out:
                    out.append(cand)
        return out if len(out) <= MAX_CANDS else None

    def _path_call(self, node: ast.Call, scope: Scope) -> list[PathCand] | None:
        func = node.func
        quals = self._qual(func, scope)
        if isinstance(func, ast.Attribute) and not quals:
            got = self._path_method(node, func, scope)
            return got if got is not None else self._returned_paths(func, scope)
        if not quals:
            return self._returned_paths(func, scope)
        for qual in quals:
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
            if qual in _TEMP_DIRS:
                return [(SCRATCH, True)] if self.res.test_module else [("/tmp", True)]
            if qual in ("tempfile.mkdtemp", "tempfile.mktemp", "tempfile.TemporaryDirectory"):
                return self._temp_dir(qual, node, scope)
            if qual in NOT_PATHS:
                return [(NOT_A_PATH, True)]
            if qual in ("os.getenv", "os.environ.get") and node.args:
                return self._env_path(node.args[0], scope)
        return None

    def _path_method(self, node: ast.Call, func: ast.Attribute, scope: Scope) -> list[PathCand] | None:
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
        if method in _RESOLVERS:
            if not self.is_context(func.value, scope):
                return None
            return self._resolved(node, _RESOLVERS[method], scope)
        if method in NOT_PATH_METHODS:
            return [(NOT_A_PATH, True)]
        if method in _SCRATCH_METHODS:
            inner = self.path(func.value, scope)
            if inner and all(t.startswith(SCRATCH) for t, _ in inner):
                return [(SCRATCH + "/", False)]
        return None

    def _resolved(self, node: ast.Call, root: str, scope: Scope) -> list[PathCand]:
        """``ctx.resolve_write_path("notes/x.md")``: below the root Kavi resolves at run time."""
        arg = next((k.value for k in node.keywords if k.arg == "relative"), None)
        if node.args:
            arg = node.args[0]
        texts = self.fold_str(arg, scope) if arg is not None else None
        if texts is None or any(not t or t.startswith(("/", "~", MARK)) for t in texts):
            return [(root + "/", False)]
        out: list[PathCand] = []
        for text in texts:
            norm = posixpath.normpath(text)  # ``"."`` is the root itself: its parent is outside
            out.append((root if norm == "." else root + "/" + norm, True))
        return out

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
        spread: list[ast.expr] = []
        for arg in args:  # ``os.path.join(*["~", ".ssh"])``
            if isinstance(arg, ast.Starred) and isinstance(arg.value, (ast.List, ast.Tuple)):
                spread.extend(arg.value.elts)
            else:
                spread.append(arg)
        for arg in spread:
            part = None if isinstance(arg, ast.Starred) else self.path(arg, scope)
            if current is None:
                if part is None:
                    return None
                current = part
                continue
            nxt: list[PathCand] = []
            for text, complete in current:
                for cand in _joined(text, complete, part, "/"):
                    if cand not in nxt:
                        nxt.append(cand)
            if len(nxt) > MAX_CANDS:
                return None
            current = nxt
        return current


def _joined(left: str, complete: bool, rights: list[PathCand] | None, sep: str) -> list[PathCand]:
    """``left`` joined with each of ``rights`` (None: unknown). A path join (``sep="/"``:
    ``/``, ``joinpath``, ``os.path.join``) restarts at an absolute part, so a part whose
    start is unknown may put the result anywhere: below ``left``, or :data:`JOINED`.
    String concatenation keeps ``left`` as the start whatever follows."""
    out: list[PathCand] = []
    for rtext, rcomplete in rights if rights is not None else [UNKNOWN]:
        if sep and not rtext.startswith(("/", "~", MARK)) and unknown_start(rtext) and not rcomplete:
            out.append((_join(left, "", sep) if complete else left, False))
            out.append((JOINED, False))
        elif not complete:
            out.append((rtext, rcomplete) if sep and rtext.startswith(("/", "~", MARK)) else (left, False))
        else:
            out.append((_join(left, rtext, sep), rcomplete))
    return out


def _join(left: str, right: str, sep: str) -> str:
    if not sep:
        return left + right
    if right.startswith(("/", "~", MARK)):
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
    if stripped.startswith(MARK) and "/" not in stripped:
        return (stripped + "/..", True)  # above a sanctioned root
    head = posixpath.dirname(stripped)
    return (head or ".", True)
