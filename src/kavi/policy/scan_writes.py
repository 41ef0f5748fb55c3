"""Writes outside ``allowed_write_paths`` that are statically visible.

During the analysis the engine reports every call that may write to the file system
(``open(p, "w")``, ``os.remove(p)``, ``shutil.copy(src, dst)``,
``Path(p).write_text(...)``, ``logging.FileHandler(p)``, …); after the last pass
:class:`WriteChecker` folds each target path (through variables, parameters of
local functions, f-strings, ``os.path.join`` and ``Path / "x"``) and reports those
that are certainly outside the allowed prefixes: absolute paths, ``~``, ``..``
escapes, and relative paths not under an allowed prefix. A path whose start is
unknown (``ctx.vault / name``, a parameter, ``tmp_path``) is not judged.
"""

from __future__ import annotations

import ast
import posixpath
import re
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from kavi.policy.scan_engine import Analyzer
    from kavi.policy.scan_scope import Scope


class Sink(NamedTuple):
    paths: tuple[int, ...] = (0,)
    kws: tuple[str, ...] = ()
    mode: str = "always"  # always | open | flags
    mode_index: int = 1
    mode_kw: str = "mode"
    default_mode: str = "r"
    receiver: bool = False  # method: the receiver is a target path
    pathobj: bool = False  # method: only if the receiver is visibly a Path object
    filelike: bool = False  # only literal paths that look like file names


_OPEN = Sink(kws=("file",), mode="open")
_PATH1 = Sink(kws=("path",))
_DST = Sink(paths=(1,), kws=("dst",))

FUNC_SINKS: dict[str, Sink] = {
    "builtins.open": _OPEN,
    "codecs.open": Sink(kws=("filename",), mode="open"),
    "gzip.open": Sink(kws=("filename",), mode="open", default_mode="rb"),
    "gzip.GzipFile": Sink(kws=("filename",), mode="open", default_mode="rb"),
    "bz2.open": Sink(kws=("filename",), mode="open", default_mode="rb"),
    "bz2.BZ2File": Sink(kws=("filename",), mode="open"),
    "lzma.open": Sink(kws=("filename",), mode="open", default_mode="rb"),
    "lzma.LZMAFile": Sink(kws=("filename",), mode="open"),
    "tarfile.open": Sink(kws=("name",), mode="open"),
    "tarfile.TarFile": Sink(kws=("name",), mode="open"),
    "zipfile.ZipFile": Sink(kws=("file",), mode="open"),
    "dbm.open": Sink(kws=("file",), mode="open", mode_kw="flag"),
    "os.open": Sink(kws=("path",), mode="flags", mode_kw="flags"),
    "os.remove": _PATH1,
    "os.unlink": _PATH1,
    "os.rmdir": _PATH1,
    "os.removedirs": Sink(kws=("name",)),
    "os.mkdir": _PATH1,
    "os.makedirs": Sink(kws=("name",)),
    "os.chmod": _PATH1,
    "os.lchmod": _PATH1,
    "os.chown": _PATH1,
    "os.lchown": _PATH1,
    "os.chflags": _PATH1,
    "os.truncate": _PATH1,
    "os.utime": _PATH1,
    "os.mkfifo": _PATH1,
    "os.mknod": _PATH1,
    "os.setxattr": _PATH1,
    "os.removexattr": _PATH1,
    "os.rename": Sink(paths=(0, 1), kws=("src", "dst")),
    "os.renames": Sink(paths=(0, 1), kws=("old", "new")),
    "os.replace": Sink(paths=(0, 1), kws=("src", "dst")),
    "os.link": Sink(paths=(0, 1), kws=("src", "dst")),
    "os.symlink": Sink(paths=(0, 1), kws=("src", "dst")),
    "shutil.copy": _DST,
    "shutil.copy2": _DST,
    "shutil.copyfile": _DST,
    "shutil.copytree": _DST,
    "shutil.copymode": _DST,
    "shutil.copystat": _DST,
    "shutil.move": Sink(paths=(0, 1), kws=("src", "dst")),
    "shutil.rmtree": _PATH1,
    "shutil.chown": _PATH1,
    "shutil.make_archive": Sink(kws=("base_name",)),
    "shutil.unpack_archive": Sink(paths=(1,), kws=("extract_dir",)),
    "logging.FileHandler": Sink(kws=("filename",)),
    "logging.handlers.RotatingFileHandler": Sink(kws=("filename",)),
    "logging.handlers.TimedRotatingFileHandler": Sink(kws=("filename",)),
    "logging.handlers.WatchedFileHandler": Sink(kws=("filename",)),
    "logging.basicConfig": Sink(paths=(), kws=("filename",)),
    "numpy.save": Sink(kws=("file",)),
    "numpy.savetxt": Sink(kws=("fname",)),
    "numpy.savez": Sink(kws=("file",)),
    "numpy.savez_compressed": Sink(kws=("file",)),
    "sqlite3.connect": Sink(kws=("database",), filelike=True),
    "wave.open": Sink(kws=("f",), mode="open", default_mode="rb"),
    "mailbox.mbox": _PATH1,
    "mailbox.MMDF": _PATH1,
    "mailbox.MH": _PATH1,
    "mailbox.Maildir": Sink(kws=("dirname",)),
    "mailbox.Babyl": _PATH1,
    "zipapp.create_archive": Sink(paths=(1,), kws=("target",)),
    "py_compile.compile": Sink(paths=(1,), kws=("cfile",)),
    "compileall.compile_file": Sink(kws=("fullname",)),
    "compileall.compile_dir": Sink(kws=("dir",)),
    "tempfile.NamedTemporaryFile": Sink(paths=(), kws=("dir",)),
    "tempfile.TemporaryFile": Sink(paths=(), kws=("dir",)),
    "tempfile.SpooledTemporaryFile": Sink(paths=(), kws=("dir",)),
    "tempfile.mkstemp": Sink(paths=(2,), kws=("dir",)),
    "tempfile.mkdtemp": Sink(paths=(2,), kws=("dir",)),
    "tempfile.TemporaryDirectory": Sink(paths=(2,), kws=("dir",)),
    "pathlib.Path.write_text": Sink(),
    "pathlib.Path.write_bytes": Sink(),
    "pathlib.Path.touch": Sink(),
    "pathlib.Path.mkdir": Sink(),
    "pathlib.Path.unlink": Sink(),
    "pathlib.Path.rmdir": Sink(),
    "pathlib.Path.rename": Sink(paths=(0, 1)),
    "pathlib.Path.replace": Sink(paths=(0, 1)),
    "pathlib.Path.symlink_to": Sink(paths=(0, 1)),
    "pathlib.Path.chmod": Sink(),
}

_RECV = Sink(paths=(), receiver=True)
_RECV_PATHOBJ = Sink(paths=(), receiver=True, pathobj=True)
METHOD_SINKS: dict[str, Sink] = {
    "write_text": _RECV,
    "write_bytes": _RECV,
    "touch": _RECV_PATHOBJ,
    "symlink_to": Sink(paths=(0,), kws=("target",), receiver=True),
    "hardlink_to": Sink(paths=(0,), kws=("target",), receiver=True),
    "link_to": Sink(paths=(0,), kws=("target",), receiver=True),
    "mkdir": _RECV_PATHOBJ,
    "unlink": _RECV_PATHOBJ,
    "rmdir": _RECV_PATHOBJ,
    "chmod": _RECV_PATHOBJ,
    "lchmod": _RECV_PATHOBJ,
    "rename": Sink(paths=(0,), kws=("target",), receiver=True, pathobj=True),
    "replace": Sink(paths=(0,), kws=("target",), receiver=True, pathobj=True),
    "open": Sink(paths=(), receiver=True, pathobj=True, mode="open", mode_index=0),
    "extractall": Sink(kws=("path",)),
    "extract": Sink(paths=(1,), kws=("path",)),
    "savefig": Sink(kws=("fname",), filelike=True),
    "save": Sink(filelike=True),
    "to_csv": Sink(kws=("path_or_buf",), filelike=True),
    "to_json": Sink(kws=("path_or_buf",), filelike=True),
    "to_parquet": Sink(kws=("path",), filelike=True),
    "to_excel": Sink(kws=("excel_writer",), filelike=True),
    "to_feather": Sink(kws=("path",), filelike=True),
    "to_pickle": Sink(kws=("path",), filelike=True),
    "to_hdf": Sink(kws=("path_or_buf",), filelike=True),
}

_PATH_RETURNING = frozenset(
    ("resolve", "absolute", "expanduser", "joinpath", "with_suffix", "with_name", "with_stem")
)
_PATH_OBJECTS = frozenset(("pathlib.Path", "pathlib.Path.home", "pathlib.Path.cwd", "zipfile.Path"))
_DEVICES = frozenset(("/dev/null", "/dev/stdout", "/dev/stderr"))
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
_DRIVE = re.compile(r"^[A-Za-z]:/")


_IMPORT_DIR_CALLS: dict[str, int] = {"sys.path.insert": 1, "sys.path.append": 0, "sys.path.extend": 0}


class WriteChecker:
    def __init__(self, analyzer: Analyzer) -> None:
        self.an = analyzer
        self.pending: list[tuple[Sink, ast.Call, Scope, str]] = []
        self.import_dirs: list[tuple[ast.AST, Scope, str, ast.expr]] = []

    def import_dir(self, node: ast.AST, scope: Scope, what: str, value: ast.expr) -> None:
        """``value`` (a directory, or a list of them) is put on ``sys.path`` by ``what``."""
        self.import_dirs.append((node, scope, what, value))

    def reset(self) -> None:
        self.pending = []
        self.import_dirs = []

    def func_call(self, node: ast.Call, qual: str, scope: Scope) -> None:
        sink = FUNC_SINKS.get(qual)
        if sink is not None:
            self.pending.append((sink, node, scope, qual))
        if qual in _IMPORT_DIR_CALLS:
            arg = self._arg(node, _IMPORT_DIR_CALLS[qual], None)
            if arg is not None:
                self.import_dir(node, scope, qual + "()", arg)

    def method_call(self, node: ast.Call, attr: str, scope: Scope) -> None:
        sink = METHOD_SINKS.get(attr)
        if sink is not None:
            self.pending.append((sink, node, scope, "." + attr))

    # -- judging -------------------------------------------------------------------

    def _check_import_dirs(self) -> None:
        """``sys.path.insert(0, "/tmp/x")``: a fixed directory whose planted modules later
        imports would run. Paths derived from ``__file__`` or the skill's context are fine."""
        for node, scope, what, value in self.import_dirs:
            items = value.elts if isinstance(value, (ast.List, ast.Tuple)) else [value]
            for item in items:
                fixed = [t for t, complete in self.an.folder.path(item, scope) or () if complete]
                if fixed:
                    self.an.emit(
                        node,
                        "KS202",
                        f"{what} adds the fixed directory {fixed[0]!r}: later imports load code from it",
                    )
                    break

    def check_all(self) -> None:
        self._check_import_dirs()
        seen: set[tuple[int, str]] = set()
        for sink, node, scope, name in self.pending:
            key = (id(node), name)
            if key not in seen:
                seen.add(key)
                self._check(sink, node, scope, name)

    def _arg(self, node: ast.Call, index: int, kw: str | None) -> ast.expr | None:
        positional = [a for a in node.args]
        if any(isinstance(a, ast.Starred) for a in positional[: index + 1]):
            return None
        if index < len(positional):
            return positional[index]
        for keyword in node.keywords:
            if keyword.arg is not None and keyword.arg == kw:
                return keyword.value
        return None

    def _check(self, sink: Sink, node: ast.Call, scope: Scope, name: str) -> None:
        receiver: ast.expr | None = None
        if isinstance(node.func, ast.Attribute):
            receiver = node.func.value
        if sink.receiver:
            if receiver is None:
                return
            if sink.pathobj and not self._is_pathobj(receiver, scope, 0):
                return
        if not self._writes(sink, node, scope):
            return
        targets: list[ast.expr] = []
        if sink.receiver and receiver is not None:
            targets.append(receiver)
        for i, index in enumerate(sink.paths):
            arg = self._arg(node, index, sink.kws[i] if i < len(sink.kws) else None)
            if arg is not None:
                targets.append(arg)
        if not sink.paths:
            for keyword in node.keywords:
                if keyword.arg in sink.kws:
                    targets.append(keyword.value)
        for target in targets:
            cands = self.an.folder.path(target, scope)
            for text, complete in cands or ():
                if sink.filelike and (not complete or not _FILELIKE.search(text)):
                    continue
                if self.outside(text, complete):
                    shown = text if complete else text + "…"
                    self.an.emit(
                        node,
                        "KS501",
                        f"{name.lstrip('.')}() writes to {shown!r}, outside allowed_write_paths",
                    )
                    return

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
            modes = self.an.folder.fold_str(mode_node, scope)
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
            quals = [a[2:] for a in self.an.quiet(func, scope).atoms if a.startswith("q:")]
            if any(q in _PATH_OBJECTS for q in quals):
                return True
            if isinstance(func, ast.Attribute) and not quals and func.attr in _PATH_RETURNING:
                return self._is_pathobj(func.value, scope, depth + 1)
            return False
        if isinstance(expr, ast.Name):
            for kind, value, rscope, _ in (self.an.recs_for(expr.id, scope) or {}).values():
                if (
                    kind == "="
                    and isinstance(value, ast.expr)
                    and rscope is not None
                    and self._is_pathobj(value, rscope, depth + 1)
                ):
                    return True
        return False

    def outside(self, text: str, complete: bool) -> bool:
        """Is a path (or a path known to start with ``text``) certainly outside?"""
        t = text.replace("\\", "/")
        allowed = self.an.cp.allowed_writes
        if complete:
            if not t or t in _DEVICES:
                return False
            if t.startswith("~"):
                return not any(a.startswith("~") for a, _ in allowed)
            absolute = t.startswith("/") or bool(_DRIVE.match(t))
            norm = posixpath.normpath(t)
            if norm.startswith("//"):
                norm = "/" + norm.lstrip("/")
            for a, a_abs in allowed:
                if a_abs == absolute and (norm == a or norm.startswith(a + "/")):
                    return False
            return True
        while t.startswith("./"):
            t = t[2:]
        cut = t.rfind("/")
        head, rest = (t[: cut + 1], t[cut + 1 :]) if cut >= 0 else ("", t)
        if head:
            norm_head = posixpath.normpath(head)
            if norm_head.startswith("//"):
                norm_head = "/" + norm_head.lstrip("/")
            if norm_head == ".":
                norm_head = ""
            t = (norm_head.rstrip("/") + "/" if norm_head and norm_head != "/" else norm_head) + rest
        if not t:
            return False
        if t.startswith("~"):
            return not any(a.startswith("~") for a, _ in allowed)
        if t == ".." or t.startswith("../"):
            return True
        absolute = t.startswith("/") or bool(_DRIVE.match(t))
        for a, a_abs in allowed:
            if a_abs != absolute:
                continue
            if a.startswith(t) or t.startswith(a + "/") or t == a:
                return False
        return True
