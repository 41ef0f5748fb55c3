"""File-system access that is statically visible: writes, secret reads, chdir, temp files.

During the analysis the engine reports every call found in the sink tables of
:mod:`kavi.policy.scan_sinks`; after the last pass :class:`WriteChecker` folds each
target path (through variables, parameters of local functions, f-strings,
``os.path.join``, ``Path / "x"`` and the skill context) and judges it with
:mod:`kavi.policy.scan_places`:

* writes (KS501/KS502): a constant path must lie below ``allowed_write_paths``; any
  other path must come from ``ctx.resolve_write_path(...)`` (or, in tests, pytest's
  ``tmp_path``); a path whose start is computed at run time is a finding;
* reads (KS601/KS602/KS603): the home directory, credentials files and directories,
  ``/proc/…/environ``, and ``ctx.vault_root`` joined with a computed part;
* the working directory (KS504) and :mod:`tempfile` without ``dir=`` outside a test
  module (KS503);
* directories put on ``sys.path`` (KS202).

The checker knows the analysis only through :class:`SinkHost`, so this module sits
below the engine in the scanner's layering.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from kavi.policy.scan_places import (
    CODE_ROOT,
    JOINED,
    MARK,
    NOT_A_PATH,
    Verdict,
    judge_chdir,
    judge_read,
    judge_write,
    outside_allowed,
    show,
    unknown_start,
)
from kavi.policy.scan_sinks import FUNC_TABLE, METHOD_TABLE, Sink

if TYPE_CHECKING:
    from kavi.policy.scan_pathfold import PathFolder
    from kavi.policy.scan_rules import CompiledPolicy
    from kavi.policy.scan_scope import Rec, Scope, Val

_PATH_RETURNING = frozenset(
    ("resolve", "absolute", "expanduser", "joinpath", "with_suffix", "with_name", "with_stem")
)
_PATH_OBJECTS = frozenset(("pathlib.Path", "pathlib.Path.home", "pathlib.Path.cwd", "zipfile.Path"))
_WRITE_FLAGS = frozenset(("O_WRONLY", "O_RDWR", "O_CREAT", "O_APPEND", "O_TRUNC", "O_EXCL", "O_TMPFILE"))
_READ_FLAGS = frozenset(
    ("O_RDONLY", "O_CLOEXEC", "O_NOFOLLOW", "O_DIRECTORY", "O_NONBLOCK", "O_NOCTTY", "O_BINARY")
)
_FILELIKE = re.compile(
    r"[/\\]|\.(md|txt|csv|tsv|jsonl?|ya?ml|toml|ini|cfg|xml|html?|png|jpe?g|gif|svg|pdf|pkl|pickle"
    r"|pt|pth|ckpt|h5|hdf5|npy|npz|parquet|feather|xlsx?|db|sqlite3?|log|zip|tar|gz|bz2|xz|bin|dat"
    r"|wav|mp3|mp4)$",
    re.IGNORECASE,
)
_IMPORT_DIR_CALLS: dict[str, int] = {"sys.path.insert": 1, "sys.path.append": 0, "sys.path.extend": 0}

_NOT_WRITTEN = (CODE_ROOT, NOT_A_PATH, JOINED)
#: Method names that may be sinks (the engine reports only these).
METHOD_NAMES: frozenset[str] = frozenset(METHOD_TABLE)
#: Methods whose receiver is the path: a reference (``f = p.read_text``) is judged too.
RECEIVER_METHODS: frozenset[str] = frozenset(
    name for name, sinks in METHOD_TABLE.items() if all(s.receiver and not s.paths for _, s in sinks)
)

Pending = tuple[str, Sink, ast.Call, "Scope", str]


class SinkHost(Protocol):
    """What the checker needs from the analysis (implemented by the engine)."""

    cp: CompiledPolicy
    folder: PathFolder
    test_module: bool

    def emit(self, node: ast.AST, rule: str, msg: str) -> None: ...

    def quiet(self, node: ast.expr, scope: Scope) -> Val: ...

    def recs_for(self, name: str, scope: Scope) -> dict[tuple[int, int], Rec] | None: ...

    def own_methods(self) -> frozenset[str]: ...


class WriteChecker:
    def __init__(self, host: SinkHost) -> None:
        self.host = host
        self.pending: list[Pending] = []
        self.import_dirs: list[tuple[ast.AST, Scope, str, ast.expr]] = []

    def import_dir(self, node: ast.AST, scope: Scope, what: str, value: ast.expr) -> None:
        """``value`` (a directory, or a list of them) is put on ``sys.path`` by ``what``."""
        self.import_dirs.append((node, scope, what, value))

    def reset(self) -> None:
        self.pending = []
        self.import_dirs = []

    def func_call(self, node: ast.Call, qual: str, scope: Scope) -> None:
        sinks = FUNC_TABLE.get(qual)
        if sinks is not None:
            for kind, sink in sinks:
                self.pending.append((kind, sink, node, scope, qual))
        if qual in _IMPORT_DIR_CALLS:
            arg = self._arg(node, _IMPORT_DIR_CALLS[qual], None)
            if arg is not None:
                self.import_dir(node, scope, qual + "()", arg)

    def method_call(self, node: ast.Call, attr: str, scope: Scope) -> None:
        for kind, sink in METHOD_TABLE.get(attr, ()):
            self.pending.append((kind, sink, node, scope, "." + attr))

    def method_ref(self, node: ast.Attribute, scope: Scope) -> None:
        """``p.read_text`` not called here (bound, passed on): judged as if called bare."""
        self.method_call(ast.copy_location(ast.Call(func=node, args=[], keywords=[]), node), node.attr, scope)

    def outside(self, text: str, complete: bool) -> bool:
        """Is a plain path (or a path known to start with ``text``) certainly outside?"""
        return outside_allowed(text, complete, self.host.cp.allowed_writes)

    # -- judging -------------------------------------------------------------------

    def check_all(self) -> None:
        self._check_import_dirs()
        seen: set[tuple[str, int, str]] = set()
        checks: dict[str, Callable[[Sink, ast.Call, Scope, str], None]] = {
            "write": self._check_write,
            "read": self._check_read,
            "chdir": self._check_chdir,
            "temp": self._check_temp,
        }
        for kind, sink, node, scope, name in self.pending:
            key = (kind, id(node), name)
            if key not in seen:
                seen.add(key)
                checks[kind](sink, node, scope, name)

    def _check_import_dirs(self) -> None:
        """``sys.path.insert(0, "/tmp/x")``: a fixed directory whose planted modules later
        imports would run; ``tmp_path`` or the vault: modules written at run time.
        Paths derived from ``__file__`` are fine."""
        host = self.host
        for node, scope, what, value in self.import_dirs:
            items = value.elts if isinstance(value, (ast.List, ast.Tuple)) else [value]
            for item in items:
                cands = host.folder.path(item, scope) or ()
                written = [t for t, _ in cands if t.startswith(MARK) and not t.startswith(_NOT_WRITTEN)]
                fixed = [t for t, complete in cands if complete and not t.startswith(MARK)]
                if written:
                    host.emit(
                        node,
                        "KS202",
                        f"{what} adds {show(written[0], True)}: later imports load code written at run time",
                    )
                    break
                if fixed:
                    host.emit(
                        node,
                        "KS202",
                        f"{what} adds the fixed directory {fixed[0]!r}: later imports load code from it",
                    )
                    break

    def _arg(self, node: ast.Call, index: int, kw: str | None) -> ast.expr | None:
        positional = node.args
        if any(isinstance(a, ast.Starred) for a in positional[: index + 1]):
            return None
        if index < len(positional):
            return positional[index]
        for keyword in node.keywords:
            if keyword.arg is not None and keyword.arg == kw:
                return keyword.value
        return None

    def _targets(self, sink: Sink, node: ast.Call) -> list[ast.expr]:
        targets: list[ast.expr] = []
        if sink.receiver and isinstance(node.func, ast.Attribute):
            targets.append(node.func.value)
        for i, index in enumerate(sink.paths):
            arg = self._arg(node, index, sink.kws[i] if i < len(sink.kws) else None)
            if arg is not None:
                targets.append(arg)
        if not sink.paths:
            for keyword in node.keywords:
                if keyword.arg in sink.kws:
                    targets.append(keyword.value)
        return targets

    def _own_method(self, name: str) -> bool:
        return name.startswith(".") and name[1:] in self.host.own_methods()

    def _report(self, node: ast.Call, name: str, verb: str, verdict: Verdict, shown: str) -> None:
        self.host.emit(node, verdict.rule, f"{name.lstrip('.')}() {verb} {shown}: {verdict.detail}")

    def _check_write(self, sink: Sink, node: ast.Call, scope: Scope, name: str) -> None:
        receiver = node.func.value if isinstance(node.func, ast.Attribute) else None
        if sink.receiver:
            if receiver is None:
                return
            if sink.pathobj and not self._is_pathobj(receiver, scope, 0):
                return
        if not self._writes(sink, node, scope):
            return
        allowed = self.host.cp.allowed_writes
        for target in self._targets(sink, node):
            for text, complete in self.host.folder.path(target, scope) or [("", False)]:
                if sink.filelike and (not complete or not _FILELIKE.search(text)):
                    continue
                if not complete and unknown_start(text) and (sink.fileobj or self._own_method(name)):
                    continue  # may be a file object, or the file's own method of that name
                verdict = judge_write(text, complete, allowed)
                if verdict is not None:
                    self._report(node, name, "writes to", verdict, show(text, complete))
                    return

    def _check_read(self, sink: Sink, node: ast.Call, scope: Scope, name: str) -> None:
        for target in self._targets(sink, node):
            for text, complete in self.host.folder.path(target, scope) or ():
                if sink.filelike and (not complete or not _FILELIKE.search(text)):
                    continue
                verdict = judge_read(text, complete)
                if verdict is not None:
                    self._report(node, name, "reads", verdict, show(text, complete))
                    return

    def _check_chdir(self, sink: Sink, node: ast.Call, scope: Scope, name: str) -> None:
        targets = self._targets(sink, node)
        if not targets and isinstance(node.func, ast.Attribute):
            targets = [node.func.value]  # ``tmpdir.chdir()``, ``tmpdir.as_cwd()``
        for target in targets:
            cands = self.host.folder.path(target, scope)
            if cands is None and self._own_method(name):
                continue
            for text, complete in cands or [("", False)]:
                verdict = judge_chdir(text, complete)
                if verdict is not None:
                    self._report(node, name, "moves into", verdict, show(text, complete))
                    return

    def _check_temp(self, sink: Sink, node: ast.Call, scope: Scope, name: str) -> None:
        if self.host.test_module or self._targets(sink, node):
            return  # tests get a private temporary directory; ``dir=`` is judged as a write
        verdict = Verdict(
            "KS503",
            "a skill sees no system temporary directory; pass dir=ctx.resolve_write_path(...) "
            "or keep the data in memory (io.BytesIO)",
        )
        self._report(node, name, "creates a file in", verdict, "the system temporary directory")

    def _writes(self, sink: Sink, node: ast.Call, scope: Scope) -> bool:
        if sink.mode == "always":
            return True
        mode_node = self._arg(node, sink.mode_index, sink.mode_kw)
        if sink.mode == "flags":
            return mode_node is None or self._flags_write(mode_node)
        if mode_node is None and (
            any(k.arg is None for k in node.keywords) or any(isinstance(a, ast.Starred) for a in node.args)
        ):
            return True  # the mode may arrive through ``**kwargs`` / ``*args``: assume a write
        if mode_node is None:
            modes: list[str] | None = [sink.default_mode]
        else:
            modes = self.host.folder.fold_str(mode_node, scope)
        if modes is None:
            return True
        for mode in modes:
            head = mode.split(":", 1)[0]
            if any(ch in head for ch in "wax+cn"):
                return True
        return False

    def _flags_write(self, node: ast.expr) -> bool:
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            return self._flags_write(node.left) or self._flags_write(node.right)
        if isinstance(node, ast.Attribute):
            name = node.attr
        elif isinstance(node, ast.Name):
            name = node.id
        elif isinstance(node, ast.Constant) and isinstance(node.value, int):
            return bool(node.value & 0o3103)
        else:
            return True
        if name in _WRITE_FLAGS:
            return True
        return name not in _READ_FLAGS

    def _is_pathobj(self, expr: ast.expr, scope: Scope, depth: int) -> bool:
        if depth > 8:
            return False
        if isinstance(expr, ast.BinOp):
            return isinstance(expr.op, ast.Div)
        if isinstance(expr, ast.Attribute):
            return expr.attr == "parent"
        if isinstance(expr, ast.Subscript):
            return isinstance(expr.value, ast.Attribute) and expr.value.attr == "parents"
        if isinstance(expr, ast.Call):
            func = expr.func
            quals = [a[2:] for a in self.host.quiet(func, scope).atoms if a.startswith("q:")]
            if any(q in _PATH_OBJECTS for q in quals):
                return True
            if isinstance(func, ast.Attribute) and not quals and func.attr in _PATH_RETURNING:
                return self._is_pathobj(func.value, scope, depth + 1)
            return False
        if isinstance(expr, ast.Name):
            for kind, value, rscope, _ in (self.host.recs_for(expr.id, scope) or {}).values():
                if (
                    kind == "="
                    and isinstance(value, ast.expr)
                    and rscope is not None
                    and self._is_pathobj(value, rscope, depth + 1)
                ):
                    return True
        return False
