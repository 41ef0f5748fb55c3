"""The static policy scanner: judge generated code before anything runs it.

Generated code is adversarial by assumption. The scanner reads a file the way Python
does (PEP 263 coding cookie, BOM, NFKC-normalised identifiers), parses it with
:mod:`ast` and runs an abstract interpretation over the whole module that follows
*data*, not spellings: aliases, assignments, tuple unpacking, walrus, containers,
returns of local functions, parameters of local functions, attributes stored on
objects, ``functools.partial``/``operator.attrgetter``/``methodcaller``, computed
attribute names (constant-folded: concatenation, f-strings, ``join``, ``chr``,
``bytes.decode``, slicing, ``%``/``format``, base64/rot13/hex), ``getattr``,
``__dict__``/``vars()``/``globals()`` look-ups, ``sys.modules`` and star imports.
A dangerous object is reported where it is first *reached* (named, imported or
computed), whether or not it is called on that line. Anything that cannot be read
or parsed is a finding: the scanner fails closed, and never raises for bad input.

Public API::

    Finding(path, line, col, rule, message)     # frozen; str(): "path:line:col: RULE message"
    scan_source(source, path, policy) -> list[Finding]
    scan_file(path, policy, display_path=None) -> list[Finding]
    scan_paths(paths, policy) -> list[Finding]  # directories recurse into *.py

Findings are sorted by (path, line, col, rule); ``col`` is 1-based. A file is clean
when its list is empty.

Rule ids (stable; ``rule`` is the id, ``message`` starts with the slug):

=====  =======================  =============================================================
id     slug                     what
=====  =======================  =============================================================
KS001  file-too-large           file larger than 1 MB (not parsed)
KS002  null-byte                source contains a NUL byte
KS003  undecodable              bad coding cookie, undecodable bytes, unreadable encoding
KS004  syntax-error             source does not parse
KS005  suspicious-encoding      coding cookie whose codec changes ASCII (utf-7, unicode_escape…)
KS006  bidi-control             Unicode bidirectional control characters (Trojan Source)
KS007  analysis-limit           too deeply nested to analyse, or an internal analysis error
KS008  unreadable               the file could not be read
KS101  forbidden-import         module in ``forbidden_imports`` (module and submodules; also
                                ``from os import system`` for entry ``os.system``; also
                                ``__import__``/``import_module``/``sys.modules`` with a name)
KS102  forbidden-call           object in ``forbidden_calls`` reached by any route (``os.system``,
                                exec*/spawn*/posix_spawn*/fork, ``loop.subprocess_exec``…)
KS201  dynamic-exec             ``eval``/``exec``/``compile``/``breakpoint``, runpy, code,
                                codeop, timeit, pdb, profilers, trace, doctest, site .pth
                                loading, Tcl, native extension loading (forbid_dynamic_exec)
KS202  dynamic-import           ``__import__``, ``importlib.import_module``, the loaders of
                                ``importlib.util``/``machinery``/``abc``, ``_imp``,
                                ``zipimport``, ``pydoc``, ``sys.meta_path``/``path_hooks``,
                                entry points' ``load()``, ``sys.path`` given a fixed directory,
                                loader variables (``PATH``, ``PYTHONPATH``…) set
KS203  code-object              calling ``types.FunctionType``/``CodeType`` (also via
                                ``type(f)``/``f.__class__``)
KS204  unsafe-deserialization   YAML full/unsafe loaders, ``pandas.read_pickle``, jsonpickle…
KS301  dynamic-attribute        ``getattr``/``attrgetter``/``__getattribute__`` with a name that
                                is not a constant on a sensitive module or object (or a
                                function); ``getattr`` handed to another function; a
                                gateway module (``os``, ``sys``, ``builtins``…) used as a
                                plain value: in a container, passed, returned, stored
KS302  namespace-access         ``sys.modules``, a sensitive module's ``__dict__``/``vars()``,
                                ``globals()``/``locals()``/``vars()`` looked up with a computed
                                key or enumerated, ``gc.get_objects``/``get_referrers``
KS303  builtins-access          ``__builtins__`` (name, attribute or namespace key)
KS304  introspection-escape     ``__subclasses__`` (not of a local class), ``__globals__``,
                                ``__code__`` (not its plain facts), ``__mro__``/``__bases__``
                                from a literal or built-in type, such names as strings,
                                frames (``f_globals``, ``f_back``, ``gi_frame``, ``tb_frame``,
                                ``sys._getframe``, ``inspect.currentframe``/``stack``),
                                ``__loader__``
KS305  guard-tamper             ``sys.addaudithook``, ``sys.settrace``/``setprofile``,
                                ``threading.settrace``… (tampering with the runtime guard)
KS401  network                  module in ``network_modules`` or a connection API
                                (``open_connection``, ``create_connection``, ``urlopen``…)
                                while ``network`` is off
KS501  write-outside-allowed    a statically visible write (``open(p, "w")``,
                                ``Path(p).write_text``, ``os.remove``, ``shutil.copy`` dst, …)
                                to an absolute, ``~``, ``..`` or relative path that is not under
                                ``allowed_write_paths``, to git metadata, to the module's own
                                directory, or climbing out of a sanctioned path with ``..``
KS502  unsanctioned-write-path  a write whose path is neither a constant below
                                ``allowed_write_paths`` nor obtained from
                                ``ctx.resolve_write_path(...)`` (or, in tests, ``tmp_path``):
                                a start computed at run time, a parameter whatever its default,
                                ``ctx.vault_root / <computed>``, a path from
                                ``ctx.resolve_read_path(...)``
KS503  temp-outside-allowed     ``tempfile`` without ``dir=`` outside a test module: the system
                                temporary directory is not the skill's
KS504  working-directory        ``os.chdir``/``fchdir``, ``contextlib.chdir``,
                                ``monkeypatch.chdir`` to anything but a sanctioned path
KS601  environment-read         ``os.environ``/``environb``, ``os.getenv``, ``expandvars``,
                                ``/proc/…/environ``, .env loaders (``dotenv``,
                                ``pydantic_settings``…) — except reading locale/TZ by a
                                constant name and setting or deleting variables
KS602  secret-file-read         reading or listing the home directory, ``.ssh``/``.aws``/
                                ``.git``…, credentials files (``.netrc``, ``.env``, keys),
                                ``/proc`` views of processes, ``netrc``/``keyring``
KS603  unresolved-read-path     reading ``ctx.vault_root`` joined with a computed part (use
                                ``ctx.resolve_read_path(...)``), or climbing out of a
                                sanctioned path with ``..``
=====  =======================  =============================================================

Paths are *sanctioned* when they come from ``ctx.resolve_write_path(...)`` /
``ctx.resolve_read_path(...)`` on the context Kavi passes to ``execute`` (see
:mod:`kavi.policy.scan_pathfold`). A *test module* (test functions, no ``BaseSkill``
subclass) may also use pytest's ``tmp_path`` and :mod:`tempfile`: verify gives its tests a
private scratch directory.

The modules form layers, each importing only those below it (checked by
``tests/test_scanner_layers.py``): tables, canonical names, scopes, places and sinks;
constant and path folding; the compiled policy; the environment and file-access checkers;
name resolution, expressions, calls, the engine; this module.
"""

from __future__ import annotations

import ast
import functools
import gc
import io
import sys
import tokenize
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kavi.policy.scan_engine import Analyzer
from kavi.policy.scan_rules import RULES, compile_policy

if TYPE_CHECKING:
    from kavi.policy.model import ScannerPolicy

__all__ = ["MAX_BYTES", "RULES", "Finding", "scan_file", "scan_paths", "scan_source"]

MAX_BYTES = 1_000_000
_RECURSION_LIMIT = 12_000
_BIDI = ("\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069")
# Printable ASCII plus the escapes that utf-7 ("+...-"), unicode_escape ("\\x41") and the
# iso-2022 family (ESC $ B) would turn into other characters.
_ASCII_PROBE = bytes(range(0x20, 0x7F)) + b"\t\n\r +AGE- \\x41 \\u0041 \\n \x1b$B!!\x1b(B"


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    col: int
    rule: str
    message: str

    def to_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "line": self.line,
            "col": self.col,
            "rule": self.rule,
            "name": RULES.get(self.rule, ""),
            "message": self.message,
        }

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}: {self.rule} {self.message}"


def _finding(path: str, line: int, col: int, rule: str, detail: str) -> Finding:
    return Finding(path, line, col, rule, f"{RULES[rule]}: {detail}")


@functools.lru_cache(maxsize=64)
def _suspicious_encoding(encoding: str) -> bool:
    """Does this codec decode plain ASCII source to something else (utf-7, unicode_escape…)?"""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _ASCII_PROBE.decode(encoding) != _ASCII_PROBE.decode("ascii")
    except Exception:
        return True


def _syntax_finding(path: str, exc: SyntaxError) -> Finding:
    text = str(exc.msg or exc)
    lowered = text.lower()
    rule = "KS003" if ("encod" in lowered or "decode" in lowered or "unicode error" in lowered) else "KS004"
    return _finding(path, exc.lineno or 1, (exc.offset or 0) or 1, rule, text)


def scan_source(source: bytes | str, path: str, policy: ScannerPolicy) -> list[Finding]:
    """Scan one module's source. ``bytes`` are decoded as Python would (cookie, BOM)."""
    compiled = compile_policy(policy)
    findings: list[Finding] = []
    if isinstance(source, str):
        if len(source) > MAX_BYTES or len(source.encode("utf-8", "surrogatepass")) > MAX_BYTES:
            return [_finding(path, 1, 1, "KS001", f"source larger than {MAX_BYTES} bytes")]
        if "\x00" in source:
            return [_finding(path, 1, 1, "KS002", "source contains a NUL byte")]
        probe = source[:4096].encode("utf-8", "surrogatepass")
        text: str | None = source
        to_parse: bytes | str = source
    else:
        data = bytes(source)
        if len(data) > MAX_BYTES:
            return [_finding(path, 1, 1, "KS001", f"source larger than {MAX_BYTES} bytes")]
        if b"\x00" in data:
            return [_finding(path, 1, 1, "KS002", "source contains a NUL byte")]
        probe = data
        text = None
        to_parse = data
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(probe).readline)
    except SyntaxError as exc:
        return [_finding(path, 1, 1, "KS003", str(exc))]
    if _suspicious_encoding(encoding):
        findings.append(
            _finding(path, 1, 1, "KS005", f"coding {encoding!r} decodes ASCII differently (can hide code)")
        )
    if text is None and not probe.isascii():
        try:
            text = probe.decode(encoding)
        except (UnicodeDecodeError, LookupError) as exc:
            return [*findings, _finding(path, 1, 1, "KS003", f"cannot decode as {encoding}: {exc}")]
    if text is not None and not text.isascii():
        for lineno, source_line in enumerate(text.splitlines(), start=1):
            for ch in _BIDI:
                col = source_line.find(ch)
                if col >= 0:
                    findings.append(
                        _finding(path, lineno, col + 1, "KS006", f"bidirectional control U+{ord(ch):04X}")
                    )
                    break
    # The parse and the analysis allocate millions of acyclic objects; the cyclic
    # collector would traverse them over and over for nothing (about a third of the
    # run time), so it is paused for the duration of one file.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    old_limit = sys.getrecursionlimit()
    if old_limit < _RECURSION_LIMIT:
        sys.setrecursionlimit(_RECURSION_LIMIT)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(to_parse, filename=path)
        raw = Analyzer(compiled, tree).run()
    except SyntaxError as exc:
        return [*findings, _syntax_finding(path, exc)]
    except (ValueError, UnicodeError) as exc:
        return [*findings, _finding(path, 1, 1, "KS004", str(exc))]
    except (RecursionError, MemoryError):
        return [*findings, _finding(path, 1, 1, "KS007", "too deeply nested to analyse")]
    except Exception as exc:  # fail closed: an analysis bug must not pass a file
        return [*findings, _finding(path, 1, 1, "KS007", f"internal analysis error: {type(exc).__name__}")]
    finally:
        if old_limit < _RECURSION_LIMIT:
            sys.setrecursionlimit(old_limit)
        if gc_was_enabled:
            gc.enable()
    for line, col, rule, msg in raw:
        findings.append(Finding(path, line, col, rule, f"{RULES[rule]}: {msg}"))
    findings.sort(key=lambda f: (f.path, f.line, f.col, f.rule))
    return findings


def scan_file(path: Path, policy: ScannerPolicy, display_path: str | None = None) -> list[Finding]:
    """Scan one file; unreadable or oversized files are findings, never exceptions."""
    shown = display_path if display_path is not None else str(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        return [_finding(shown, 1, 1, "KS008", f"cannot read: {exc.strerror or exc}")]
    if len(data) > MAX_BYTES:
        return [_finding(shown, 1, 1, "KS001", f"file larger than {MAX_BYTES} bytes")]
    return scan_source(data, shown, policy)


def scan_paths(paths: Sequence[Path], policy: ScannerPolicy) -> list[Finding]:
    """Scan files and directories (recursing into ``*.py``); sorted findings."""
    files: list[Path] = []
    seen: set[str] = set()
    findings: list[Finding] = []
    for path in paths:
        path = Path(path)
        try:
            is_dir = path.is_dir()
            found = sorted(p for p in path.rglob("*.py") if p.is_file()) if is_dir else [path]
        except OSError as exc:
            findings.append(_finding(str(path), 1, 1, "KS008", f"cannot list: {exc.strerror or exc}"))
            continue
        for f in found:
            key = str(f)
            if key not in seen:
                seen.add(key)
                files.append(f)
    for f in files:
        findings.extend(scan_file(f, policy))
    findings.sort(key=lambda f: (f.path, f.line, f.col, f.rule))
    return findings
