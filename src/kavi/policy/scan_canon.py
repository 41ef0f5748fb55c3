"""Canonical spellings of names for the AST scanner.

One object, many names: ``posix.system`` and ``nt.system`` are ``os.system``,
``io.open`` is ``builtins.open``, ``asyncio.open_connection`` lives in
``asyncio.streams``, and a module imported by another module is reachable as its
attribute (``shutil.os``, ``tempfile._os``, ``typing.sys``). The scanner compares
canonical names, so every spelling of a dangerous object meets the same table entry.
"""

from __future__ import annotations

import builtins

BUILTIN_NAMES: frozenset[str] = frozenset(dir(builtins))

ROOT_ALIASES: dict[str, str] = {
    "posix": "os",
    "nt": "os",
    "posixpath": "os.path",
    "ntpath": "os.path",
    "genericpath": "os.path",
    "macpath": "os.path",
    "__builtin__": "builtins",
    "_io": "io",
}

QUAL_ALIASES: dict[str, str] = {
    "io.open": "builtins.open",
    "io.FileIO": "builtins.open",
    "os.path.os": "os",
    "types.LambdaType": "types.FunctionType",
    "pathlib.PosixPath": "pathlib.Path",
    "pathlib.WindowsPath": "pathlib.Path",
    "pathlib.PurePath": "pathlib.Path",
    "pathlib.PurePosixPath": "pathlib.Path",
    "pathlib.PureWindowsPath": "pathlib.Path",
    "asyncio.open_connection": "asyncio.streams.open_connection",
    "asyncio.open_unix_connection": "asyncio.streams.open_unix_connection",
    "asyncio.start_server": "asyncio.streams.start_server",
    "asyncio.start_unix_server": "asyncio.streams.start_unix_server",
    "asyncio.StreamReader": "asyncio.streams.StreamReader",
    "asyncio.StreamWriter": "asyncio.streams.StreamWriter",
    "asyncio.subprocess.create_subprocess_exec": "asyncio.create_subprocess_exec",
    "asyncio.subprocess.create_subprocess_shell": "asyncio.create_subprocess_shell",
    "concurrent.futures.ProcessPoolExecutor": "concurrent.futures.process.ProcessPoolExecutor",
    "importlib.__builtins__": "builtins",
}

#: Attribute names that are themselves a module we care about: ``shutil.os``,
#: ``tempfile._os``, ``typing.sys``. "Strong" names are unambiguous on any imported
#: object; "weak" ones only when read from a standard-library module.
STRONG_MODULE_ATTRS: dict[str, str] = {
    "os": "os",
    "sys": "sys",
    "subprocess": "subprocess",
    "builtins": "builtins",
    "__builtins__": "builtins",
    "posix": "os",
    "nt": "os",
    "_posixsubprocess": "_posixsubprocess",
}
WEAK_MODULE_ATTRS: dict[str, str] = {
    name: name
    for name in [
        "importlib",
        "socket",
        "ctypes",
        "pickle",
        "marshal",
        "pty",
        "runpy",
        "gc",
        "inspect",
        "multiprocessing",
        "webbrowser",
        "pdb",
        "shutil",
        "io",
        "types",
        "threading",
        "asyncio",
        "signal",
        "pathlib",
        "functools",
        "operator",
        "_imp",
        "imp",
        "_socket",
        "_pickle",
        "_ctypes",
        "_thread",
        "_weakref",
        "codecs",
        "platform",
        "urllib",
        "http",
        "ssl",
        "ftplib",
        "smtplib",
        "poplib",
        "imaplib",
        "nntplib",
        "telnetlib",
        "xmlrpc",
        "socketserver",
        "pkgutil",
        "zipimport",
        "code",
        "codeop",
        "pydoc",
        "doctest",
        "_frozen_importlib",
        "_frozen_importlib_external",
        "_cffi_backend",
    ]
}
WEAK_MODULE_ATTRS.update(
    {
        "_io": "io",
        "_bootstrap": "importlib._bootstrap",
        "_bootstrap_external": "importlib._bootstrap_external",
    }
)
STDLIB_HINT: frozenset[str] = frozenset(
    [
        "os",
        "pydoc",
        "xml",
        "sys",
        "subprocess",
        "shutil",
        "tempfile",
        "typing",
        "logging",
        "json",
        "pathlib",
        "glob",
        "fnmatch",
        "random",
        "platform",
        "inspect",
        "codecs",
        "locale",
        "functools",
        "collections",
        "importlib",
        "pkgutil",
        "runpy",
        "socket",
        "ssl",
        "http",
        "urllib",
        "email",
        "asyncio",
        "threading",
        "multiprocessing",
        "concurrent",
        "pickle",
        "copy",
        "copyreg",
        "tokenize",
        "linecache",
        "traceback",
        "warnings",
        "weakref",
        "zipfile",
        "tarfile",
        "gzip",
        "bz2",
        "lzma",
        "zipimport",
        "site",
        "sysconfig",
        "uuid",
        "string",
        "re",
        "enum",
        "abc",
        "dataclasses",
        "contextlib",
        "io",
        "types",
        "operator",
        "signal",
        "builtins",
        "time",
        "datetime",
        "calendar",
        "pprint",
        "reprlib",
        "textwrap",
        "difflib",
        "hashlib",
        "hmac",
        "secrets",
        "base64",
        "binascii",
        "struct",
        "array",
        "queue",
        "sched",
        "selectors",
        "select",
        "mmap",
        "ctypes",
        "code",
        "codeop",
        "pdb",
        "bdb",
        "cProfile",
        "profile",
        "trace",
        "timeit",
        "doctest",
        "unittest",
        "posixpath",
        "ntpath",
        "genericpath",
        "getpass",
        "netrc",
        "mailcap",
        "cgi",
        "argparse",
        "optparse",
        "shlex",
        "stat",
        "filecmp",
        "fileinput",
        "heapq",
        "bisect",
        "keyword",
        "token",
        "ast",
        "dis",
        "symtable",
    ]
)


#: Submodules whose name is also a module we canonicalise (``asyncio.subprocess`` is
#: not ``subprocess``).
REAL_SUBMODULES: frozenset[str] = frozenset(("asyncio.subprocess", "email.parser"))


def canon(qual: str) -> str:
    """The canonical spelling of a dotted name (re-exports and platform aliases)."""
    root, dot, rest = qual.partition(".")
    alias = ROOT_ALIASES.get(root)
    if alias is not None:
        qual = alias + dot + rest
    return QUAL_ALIASES.get(qual, qual)


def canon_attr(qual: str, attr: str) -> str:
    """``qual.attr`` canonicalised, resolving modules re-exported as attributes."""
    if f"{qual}.{attr}" in REAL_SUBMODULES:
        return f"{qual}.{attr}"
    key = attr.lstrip("_") if attr.startswith("_") and not attr.startswith("__") else attr
    mod = STRONG_MODULE_ATTRS.get(attr) or STRONG_MODULE_ATTRS.get(key)
    if mod is None and qual.split(".", 1)[0] in STDLIB_HINT:
        mod = WEAK_MODULE_ATTRS.get(attr) or WEAK_MODULE_ATTRS.get(key)
    if mod is not None:
        return canon(mod)
    return canon(qual + "." + attr)
