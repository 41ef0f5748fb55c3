"""Where generated code touches the file system: the scanner's sink tables.

A *sink* is a call that hands a path to the operating system. Each table maps a
canonical function name (or, for methods, an attribute name) to a :class:`Sink` that
says which arguments are paths and when the call writes:

* :data:`FUNC_SINKS` / :data:`METHOD_SINKS` — writes (``open(p, "w")``, ``os.remove``,
  ``shutil.copy`` dst, ``Path.write_text``…), judged against ``allowed_write_paths``;
* :data:`READ_FUNC_SINKS` / :data:`READ_METHOD_SINKS` — reads and listings
  (``open(p)``, ``shutil.copy`` src, ``os.listdir``, ``Path.read_text``…), judged
  against the places where secrets live;
* :data:`CHDIR_FUNCS` / :data:`CHDIR_METHODS` — changes of the working directory;
* :data:`TEMPFILE_FUNCS` — :mod:`tempfile` calls that create files in the system
  temporary directory unless given ``dir=``.

:mod:`kavi.policy.scan_writes` judges the calls these tables select.
"""

from __future__ import annotations

from typing import NamedTuple


class Sink(NamedTuple):
    """Which arguments of a call are paths, and when the call writes."""

    paths: tuple[int, ...] = (0,)
    kws: tuple[str, ...] = ()
    mode: str = "always"  # always | open | flags
    mode_index: int = 1
    mode_kw: str = "mode"
    default_mode: str = "r"
    receiver: bool = False  # method: the receiver is a target path
    pathobj: bool = False  # method: only if the receiver is visibly a Path object
    filelike: bool = False  # only literal paths that look like file names
    fileobj: bool = False  # the path argument may also be a file object: unknown ones are not judged


_OPEN = Sink(kws=("file",), mode="open")
_PATH1 = Sink(kws=("path",))
_DST = Sink(paths=(1,), kws=("dst",))

FUNC_SINKS: dict[str, Sink] = {
    "builtins.open": _OPEN,
    "codecs.open": Sink(kws=("filename",), mode="open"),
    "gzip.open": Sink(kws=("filename",), mode="open", default_mode="rb", fileobj=True),
    "gzip.GzipFile": Sink(kws=("filename",), mode="open", default_mode="rb", fileobj=True),
    "bz2.open": Sink(kws=("filename",), mode="open", default_mode="rb", fileobj=True),
    "bz2.BZ2File": Sink(kws=("filename",), mode="open", fileobj=True),
    "lzma.open": Sink(kws=("filename",), mode="open", default_mode="rb", fileobj=True),
    "lzma.LZMAFile": Sink(kws=("filename",), mode="open", fileobj=True),
    "tarfile.open": Sink(kws=("name",), mode="open", fileobj=True),
    "tarfile.TarFile": Sink(kws=("name",), mode="open", fileobj=True),
    "zipfile.ZipFile": Sink(kws=("file",), mode="open", fileobj=True),
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
    "numpy.save": Sink(kws=("file",), fileobj=True),
    "numpy.savetxt": Sink(kws=("fname",), fileobj=True),
    "numpy.savez": Sink(kws=("file",), fileobj=True),
    "numpy.savez_compressed": Sink(kws=("file",), fileobj=True),
    "sqlite3.connect": Sink(kws=("database",), filelike=True),
    "wave.open": Sink(kws=("f",), mode="open", default_mode="rb", fileobj=True),
    "mailbox.mbox": _PATH1,
    "mailbox.MMDF": _PATH1,
    "mailbox.MH": _PATH1,
    "mailbox.Maildir": Sink(kws=("dirname",)),
    "mailbox.Babyl": _PATH1,
    "zipapp.create_archive": Sink(paths=(1,), kws=("target",), fileobj=True),
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

_READ = Sink()
#: Calls that read a file (or list a directory) named by a path argument.
READ_FUNC_SINKS: dict[str, Sink] = {
    "builtins.open": Sink(kws=("file",)),
    "codecs.open": Sink(kws=("filename",)),
    "os.open": _READ,
    "os.listdir": _READ,
    "os.scandir": _READ,
    "os.walk": Sink(kws=("top",)),
    "os.fwalk": Sink(kws=("top",)),
    "os.readlink": _READ,
    "os.stat": _READ,
    "os.lstat": _READ,
    "os.rename": _READ,
    "os.renames": _READ,
    "os.replace": _READ,
    "os.link": _READ,
    "os.symlink": _READ,
    "gzip.open": _READ,
    "bz2.open": _READ,
    "lzma.open": _READ,
    "tarfile.open": Sink(kws=("name",)),
    "zipfile.ZipFile": Sink(kws=("file",)),
    "dbm.open": _READ,
    "sqlite3.connect": Sink(kws=("database",)),
    "wave.open": _READ,
    "shutil.copy": Sink(kws=("src",)),
    "shutil.copy2": Sink(kws=("src",)),
    "shutil.copyfile": Sink(kws=("src",)),
    "shutil.copytree": Sink(kws=("src",)),
    "shutil.move": Sink(kws=("src",)),
    "shutil.make_archive": Sink(paths=(2,), kws=("root_dir",)),
    "glob.glob": Sink(kws=("pathname",)),
    "glob.iglob": Sink(kws=("pathname",)),
    "linecache.getline": Sink(kws=("filename",)),
    "linecache.getlines": Sink(kws=("filename",)),
    "linecache.updatecache": Sink(kws=("filename",)),
    "fileinput.input": Sink(kws=("files",)),
    "fileinput.FileInput": Sink(kws=("files",)),
    "mimetypes.read_mime_types": _READ,
    "filecmp.cmp": Sink(paths=(0, 1)),
    "configparser.ConfigParser.read": Sink(paths=(1,)),
    "xml.etree.ElementTree.parse": _READ,
    "xml.dom.minidom.parse": _READ,
    "numpy.load": _READ,
    "numpy.loadtxt": _READ,
    "numpy.genfromtxt": _READ,
    "numpy.fromfile": _READ,
    "pandas.read_csv": _READ,
    "pandas.read_json": _READ,
    "pandas.read_table": _READ,
    "pandas.read_excel": _READ,
    "pandas.read_parquet": _READ,
    "pathlib.Path.read_text": _READ,
    "pathlib.Path.read_bytes": _READ,
    "pathlib.Path.open": _READ,
    "pathlib.Path.iterdir": _READ,
    "pathlib.Path.glob": _READ,
    "pathlib.Path.rglob": _READ,
    "pathlib.Path.readlink": _READ,
}

#: Methods that read the file their receiver names (``Path.read_text``) or a path
#: argument (``ConfigParser.read``, ``ZipFile.write``, ``TarFile.add``).
READ_METHOD_SINKS: dict[str, Sink] = {
    "read_text": _RECV,
    "read_bytes": _RECV,
    "open": _RECV,
    "iterdir": _RECV,
    "glob": _RECV,
    "rglob": _RECV,
    "walk": _RECV,
    "readlink": _RECV,
    # generic names: only judged on complete paths that look like files
    "read": Sink(kws=("filenames",), filelike=True),
    "write": Sink(kws=("filename",), filelike=True),
    "add": Sink(kws=("name",), filelike=True),
}

#: Calls that change the working directory (what every relative path means).
CHDIR_FUNCS: dict[str, Sink] = {
    "os.chdir": _PATH1,
    "os.fchdir": Sink(kws=("fd",)),
    "contextlib.chdir": _PATH1,
}
CHDIR_METHODS: dict[str, Sink] = {
    "chdir": Sink(kws=("path",)),
    "as_cwd": _RECV,
}

#: :mod:`tempfile` calls that create a file or directory: in the system temporary
#: directory unless ``dir=`` names another one (positional index of ``dir``).
TEMPFILE_FUNCS: dict[str, int] = {
    "tempfile.NamedTemporaryFile": 7,
    "tempfile.TemporaryFile": 7,
    "tempfile.SpooledTemporaryFile": 8,
    "tempfile.mkstemp": 2,
    "tempfile.mkdtemp": 2,
    "tempfile.TemporaryDirectory": 2,
    "tempfile.mktemp": 2,
}


def _by_name(tables: dict[str, dict[str, Sink]]) -> dict[str, tuple[tuple[str, Sink], ...]]:
    out: dict[str, list[tuple[str, Sink]]] = {}
    for kind, table in tables.items():
        for name, sink in table.items():
            out.setdefault(name, []).append((kind, sink))
    return {name: tuple(sinks) for name, sinks in out.items()}


#: Every function sink by canonical name: ``(kind, sink)`` pairs, kind one of
#: ``write``, ``read``, ``chdir``, ``temp``.
FUNC_TABLE = _by_name(
    {
        "write": FUNC_SINKS,
        "read": READ_FUNC_SINKS,
        "chdir": CHDIR_FUNCS,
        "temp": {name: Sink(paths=(index,), kws=("dir",)) for name, index in TEMPFILE_FUNCS.items()},
    }
)
#: Every method sink by attribute name.
METHOD_TABLE = _by_name({"write": METHOD_SINKS, "read": READ_METHOD_SINKS, "chdir": CHDIR_METHODS})
