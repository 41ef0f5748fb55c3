"""Runtime guard for LLM-written code, built on PEP 578 audit hooks.

Generated code has passed the static scanner before it runs; when it *does* run
(its tests at verify time, the skill at ``run-skill`` time) it runs under this
guard. The guard raises :class:`kavi.errors.GuardViolation` from inside the audit
hook (as :class:`GuardRefusal`, a subclass that is also a ``PermissionError``),
which aborts the operation, and records every refusal in
:attr:`GuardHandle.violations` (so a violation that the guarded code catches and
swallows is still seen).

Two ways to install it:

* :func:`install_process_guard` -- one permanent hook for every thread of the
  process (audit hooks cannot be removed). Used by the pytest plugin
  (:mod:`kavi.policy.pytest_guard`) and by child processes.
* :func:`guarded` -- a ``with`` block. One process-wide hook is installed lazily,
  once, and enforces only for the thread inside the block (and for threads that
  thread starts, see below). After the block, the thread is free again, so Kavi can
  write its ledger.

What is refused (CPython 3.11 event names; each verified by experiment)
------------------------------------------------------------------------
Writes outside ``write_roots`` (paths resolved against the cwd or the ``dir_fd``,
``..`` and symlinks resolved; ``/dev/null`` is always writable; reading is free):
    ``open`` (write/append/create/truncate flags or mode), ``os.remove``,
    ``os.rmdir``, ``os.mkdir``, ``os.rename`` (both ends; ``os.replace`` and
    ``shutil.move`` raise it), ``os.link`` (both ends: a hard link to an outside
    file would make it writable), ``os.symlink`` (the link), ``os.chmod``,
    ``os.chown``, ``os.utime``, ``os.truncate``, ``os.setxattr``,
    ``os.removexattr``, ``os.chflags``; early, clearer refusals for
    ``shutil.rmtree``/``copyfile``/``copytree``/``copymode``/``copystat``/
    ``move``/``chown`` (their underlying ``os``/``open`` events are checked
    anyway); ``sqlite3.connect`` (a ``str``/``bytes`` path only: sqlite converts
    a path object itself, through a class attribute guarded code can re-assign;
    ``file:`` URIs are refused); a fresh import of ``readline``, ``_dbm`` or
    ``_gdbm``, which write files without any event. Calls on a file descriptor
    (``os.fchmod``, ``os.ftruncate`` ...) are resolved through ``/proc/self/fd``.
    The ``open`` event does not carry the ``dir_fd`` argument, so a *relative*
    write-open is checked against the cwd *and* every directory currently open in
    the process.
Subprocesses (unless ``allow_subprocess``):
    ``subprocess.Popen``, ``os.system``, ``os.exec``, ``os.posix_spawn``,
    ``os.spawn``, ``os.fork``, ``os.forkpty``, ``pty.spawn``, ``os.startfile``,
    ``os.kill``, ``os.killpg``, ``signal.pthread_kill``, ``resource.prlimit``,
    ``webbrowser.open``, ``_winapi.CreateProcess``, a fresh ``import
    _posixsubprocess``; the process guard also replaces
    ``_posixsubprocess.fork_exec`` (which raises no event in 3.11).
Native code (always): every ``ctypes.*`` event (``ctypes.dlopen``,
    ``ctypes.dlsym``, ``ctypes.addressof``, ``ctypes.cdata``,
    ``ctypes.call_function`` ...), so ``import ctypes`` itself fails; sqlite's
    ``enable_load_extension``/``load_extension``.
Network (unless ``allow_network``):
    ``socket.__new__`` of any family but ``AF_UNIX``, ``socket.connect``,
    ``socket.bind``, ``socket.sendto``, ``socket.sendmsg``,
    ``socket.getaddrinfo``, ``socket.gethostbyname``, ``socket.gethostbyaddr``,
    ``socket.getnameinfo``, ``socket.getservbyname``, ``socket.getservbyport``,
    ``socket.sethostname``, ``syslog.openlog``, ``syslog.syslog`` and the
    ``http.client``/``urllib``/``ftplib``/``smtplib``/``imaplib``/``poplib``/
    ``nntplib``/``telnetlib`` events.
    ``AF_UNIX`` socket *objects* are allowed because ``asyncio`` makes a
    ``socketpair`` for its event loop; connecting or binding them is not.
    With ``allow_network``, binding an ``AF_UNIX`` path is still a file write.
Dynamic code (unless ``allow_dynamic_code``): see the rule below; ``compile``
    (``exec``/``eval`` of a string raise it too), ``marshal.loads``,
    ``marshal.load``, ``code.__new__`` (also ``code.replace``),
    ``function.__new__``, setting ``__code__``, ``pickle.find_class``.
Tampering (always): ``sys.addaudithook``, ``sys.settrace``, ``sys.setprofile``,
    ``sys._current_frames``, ``sys._current_exceptions``, ``gc.get_objects``,
    ``gc.get_referrers``, ``gc.get_referents``, ``builtins.breakpoint``,
    ``cpython.PyInterpreterState_New`` and importing ``_xxsubinterpreters``
    (a sub-interpreter has no Python audit hooks), and reading ``__code__`` /
    ``__defaults__`` / ``__kwdefaults__`` of, or setting any attribute on, the
    guard's own functions, classes and objects (``object.__getattr__`` /
    ``object.__setattr__`` / ``object.__delattr__``).

The dynamic-code rule
---------------------
Every code object in a CPython process comes from compiling text or an AST
(``compile``; ``exec``/``eval`` of a string raise the ``compile`` event too), from
unmarshalling bytecode (``marshal.loads``) or from the ``code`` constructor
(``code.replace`` included). The guard gates these entries, plus
``function.__new__`` and ``__code__`` assignment; running an *existing* code
object (the ``exec`` event) is then harmless and allowed. A ``compile`` passes
only when one of these holds:

1. **It is a source file.** The source handed to ``compile`` is byte-for-byte the
   content of the file named by its ``filename`` argument, that file lies in a
   code root (stdlib, site-packages, the write roots and the ``sys.path`` entries
   at install time) and was not produced by guarded code. Every allowed write that
   can put content at a path (write-open of a file, mkdir, rename/link/symlink
   target, truncate, shutil copy/move target) *taints* that path and everything
   under it. This is what an import does, so a forged ``filename`` gains nothing:
   the result is the code of a file that could have been imported anyway. A file
   the guarded code wrote can never be compiled, whoever calls ``compile``
   (importlib loaders called by hand included).
2. **It only builds an AST**: the caller is ``ast.parse`` and its local ``flags``
   carries ``PyCF_ONLY_AST`` (read from the frame, so patching
   ``ast.PyCF_ONLY_AST`` does not help), or it is the guard's own parser. And a
   compile raised with *no* Python frame at all (CPython's C traceback printer
   parsing one line to place its ``^^^`` markers) passes if its text is part of
   the untainted file it names: with no frame, the result reaches no code, and an
   ``exec`` of a string from a bare C thread names ``<string>``.
3. **It comes from a known standard-library generator and has its shape.** The
   immediate caller's code object is (by identity, captured at import)
   ``dataclasses._create_fn``, ``collections.namedtuple``,
   ``typing.ForwardRef.__init__`` or the comprehension in
   ``inspect.get_annotations``, and the text parses to an AST of a whitelisted
   shape: dataclass methods may only call ``type``/``super``/``hash``/
   ``FrozenInstanceError``/``_dflt_*`` and ``x.__setattr__``/``__delattr__``/
   ``__post_init__``; a namedtuple constructor is exactly
   ``lambda _cls, ...: _tuple_new(_cls, (...))``; a string annotation is a type
   expression (names, non-underscore attributes, subscripts, literals, ``|``, and
   calls of capitalised names or ``con*`` constraints, e.g.
   ``Annotated[int, Field(gt=0)]``). Generated text with a backslash, or a number
   glued to a letter, is refused before parsing (the parser would warn, and the
   warning machinery can run user code). ``types.coroutine`` may
   ``code.replace`` and set ``__code__`` (it only flips a flag).
4. **It comes from a known installed library generator**, identified by the
   caller's qualified name and file (under site-packages, outside the write
   roots, untainted), again with a whitelisted shape: pytest's assertion
   rewriter ``_rewrite_test`` compiling an AST for an untainted file (the event
   carries no filename for an AST; pytest's ``strfn`` local is used);
   hypothesis' ``source_exec_as_module`` (its signature-copying template; its
   ``impersonate`` may rename a code object); ``typing_inspection``'s
   ``is_<name>(obj, /)`` helpers; ``typing_extensions.get_annotations``.

``marshal.loads`` passes only when called by importlib's ``_compile_bytecode`` on
exactly the bytes of the untainted ``.pyc`` named in its ``bytecode_path`` local,
outside every write root (a ``.pyc`` in the sandbox is never trusted: run with
``PYTHONDONTWRITEBYTECODE=1`` and no ``__pycache__`` there).

Known limits of that rule: running an existing code object is allowed; a type
expression may call a capitalised callable (which then meets the other rules);
pytest's rewriter is trusted, so code that monkeypatches ``_pytest.assertion``
helpers before a later test module is collected can shape its AST (the scanner
must forbid ``_pytest`` imports); ``pytest.mark.skipif("string")`` conditions,
doctests, ``timeit``, ``runpy`` of a script and unpickling are refused; a
generator of another library must be added to ``_LIBRARY_GENERATORS``.

How the guard protects itself
-----------------------------
* The hook calls no code it does not own: only exact ``str``/``bytes``/``int``
  arguments are interpreted (no ``__fspath__``, ``__eq__``, ``__hash__``,
  ``__repr__`` of guarded objects), and the garbage collector is paused while it
  runs (a finaliser could otherwise look at its frames).
* Nothing it uses is looked up at call time: builtins, ``os``/``stat``/``sys``
  functions, constants, tables and helper functions are bound as keyword
  defaults when each function is defined, so re-assigning ``builtins.len``,
  ``os.lstat`` or any attribute of this module changes nothing. Assigning an
  attribute of a Python *class* raises no audit event, so the hook never reads
  one: policies and state are plain tuples, AST node fields are read through
  ``ast.AST``'s instance-dict getter.
* No guard function has a closure (cells are writable through ``__closure__``,
  which is not audited); the mutable state (violation lists, taint set, scope
  registry) is reachable only through keyword defaults of this module's
  functions, and reading or replacing ``__kwdefaults__``/``__defaults__``/
  ``__code__`` of any function of this module is refused (recognised by
  ``__globals__``, which cannot be forged without ``function.__new__``).
* The hook's own frame, which a caught exception's traceback exposes, holds only
  immutable values and such functions. A handle is an immutable tuple whose only
  element is a protected function; :func:`read_violations` reads it without
  trusting ``GuardHandle`` class attributes.
* A new hook that an active guard refuses is silently dropped by CPython, so each
  install proves its hook runs (a private ``kavi.guard.armed`` event) or raises.

Other known limits (documented, not fixable from Python)
--------------------------------------------------------
* ``os.mkfifo``/``os.mknod``/``os.memfd_create``, writes through already-open
  descriptors (``os.write``), closing them, ``os._exit`` and ``signal.signal``
  raise no audit event in 3.11. So guarded code can cut a session short and write
  to inherited descriptors: refusals are guaranteed, reports are best effort.
  A signal handler runs between any two bytecodes, including the hook's, and
  could inspect its frames: the policies are immutable, but the violation lists,
  the taint set and ``guarded()``'s registry are not.
* Re-creating ``_posixsubprocess`` through ``importlib`` internals can recover
  the real ``fork_exec``; the scanner must forbid ``_posixsubprocess`` and
  ``importlib`` internals.
* Path checks race with concurrent ``rename``/``symlink``/``chdir`` in another
  thread (TOCTOU). A file inside a root that is a hard link to an outside file
  (made before the guard) is writable.
* ``guarded()`` runs in Kavi's own process: it protects the OS (files, network,
  processes) but cannot stop the skill from re-assigning attributes of Kavi's
  modules and classes (that raises no event), including ``GuardHandle`` and the
  ``guarded`` object for *later* blocks. Import the skill *inside* the block,
  bind ``guarded``/``read_violations`` at import time, never reuse a process in
  which a skill ran, and prefer a child process with
  :func:`install_process_guard` for untrusted code. Threads started inside the
  block are guarded too, during and after it (identified by Linux thread start
  time; elsewhere every other thread is guarded while a block is active), but a
  worker thread that existed before the block and takes work from the skill is
  not.
"""

from __future__ import annotations

import _thread
import ast
import collections
import dataclasses
import gc
import inspect
import json
import os
import re
import socket
import stat
import sys
import sysconfig
import types
import typing
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any, ClassVar

from kavi.errors import GovernanceError, GuardViolation, KaviError

__all__ = [
    "GuardHandle",
    "GuardPolicy",
    "GuardRefusal",
    "guarded",
    "install_process_guard",
    "read_violations",
]


class GuardRefusal(GuardViolation, PermissionError):
    """What the hook raises: a :class:`GuardViolation` that is also a ``PermissionError``.

    Standard-library fallbacks written for ``OSError`` (importlib skipping a
    ``.pyc`` it cannot write, tempfile trying the next directory, a cache giving
    up) then degrade instead of crashing; the refusal is recorded either way.
    """

    @property
    def kind(self) -> str:
        return "GuardViolation"


_POLICY_KEYS = (
    "write_roots",
    "allow_subprocess",
    "allow_network",
    "allow_dynamic_code",
    "protected",
    "read_roots",
)
_FLAG_KEYS = _POLICY_KEYS[1:4]


def _bad_policy(message: str) -> GuardViolation:
    return GuardViolation(
        f"invalid runtime guard policy: {message}",
        why="the runtime guard refuses to run code under a policy it cannot read",
        remedy=(
            'pass a JSON object {"write_roots": ["/abs/dir", ...], "allow_subprocess": false, '
            '"allow_network": false, "allow_dynamic_code": false}'
        ),
    )


def _real_roots(roots: object, what: str) -> tuple[Path, ...]:
    if isinstance(roots, (str, bytes, Path)) or not isinstance(roots, (tuple, list)):
        raise _bad_policy(f"{what}s must be a list of absolute directory paths")
    resolved: list[Path] = []
    for root in roots:
        if not isinstance(root, (str, Path)) or not str(root):
            raise _bad_policy(f"{what} {root!r} is not a path")
        path = Path(root)
        if not path.is_absolute():
            raise _bad_policy(f"{what} {str(root)!r} is not absolute")
        real = Path(os.path.realpath(path))
        if real not in resolved:
            resolved.append(real)
    return tuple(resolved)


@dataclasses.dataclass(frozen=True)
class GuardPolicy:
    """What guarded code may do. Roots are made absolute and symlink-free.

    ``protected``: directories below the roots that are never writable (and, where the
    guard confines reads, never readable).
    ``read_roots``: None (reads are free: the operating system confines them), or the
    directories guarded code may read below — besides the write roots and the code
    roots (standard library, site-packages, ``sys.path``) — where nothing else does.
    """

    write_roots: tuple[Path, ...]
    allow_subprocess: bool = False
    allow_network: bool = False
    allow_dynamic_code: bool = False
    protected: tuple[Path, ...] = ()
    read_roots: tuple[Path, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "write_roots", _real_roots(self.write_roots, "write root"))
        object.__setattr__(self, "protected", _real_roots(self.protected, "protected root"))
        if self.read_roots is not None:
            object.__setattr__(self, "read_roots", _real_roots(self.read_roots, "read root"))
        for name in _FLAG_KEYS:
            if type(getattr(self, name)) is not bool:
                raise _bad_policy(f"{name} must be true or false")

    @classmethod
    def from_json(cls, text: str) -> GuardPolicy:
        """Parse the ``KAVI_GUARD`` JSON form; raise :class:`GuardViolation` if malformed."""
        try:
            data = json.loads(text)
        except (TypeError, ValueError) as exc:
            raise _bad_policy(f"not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise _bad_policy("expected a JSON object")
        unknown = sorted(set(data) - set(_POLICY_KEYS))
        if unknown:
            raise _bad_policy(f"unknown keys {unknown}")
        lists: dict[str, tuple[Path, ...] | None] = {}
        for name in ("write_roots", "protected", "read_roots"):
            roots = data.get(name, [] if name == "protected" else None)
            if roots is None and name == "read_roots":
                lists[name] = None
                continue
            if not isinstance(roots, list) or not all(isinstance(r, str) for r in roots):
                raise _bad_policy(f"{name} must be a list of strings")
            lists[name] = tuple(Path(r) for r in roots)
        flags: dict[str, bool] = {}
        for name in _FLAG_KEYS:
            value = data.get(name, False)
            if type(value) is not bool:
                raise _bad_policy(f"{name} must be true or false")
            flags[name] = value
        return cls(
            write_roots=lists["write_roots"] or (),
            protected=lists["protected"] or (),
            read_roots=lists["read_roots"],
            **flags,
        )

    def to_json(self) -> str:
        return json.dumps(
            {
                "write_roots": [str(p) for p in self.write_roots],
                "allow_subprocess": self.allow_subprocess,
                "allow_network": self.allow_network,
                "allow_dynamic_code": self.allow_dynamic_code,
                "protected": [str(p) for p in self.protected],
                "read_roots": None if self.read_roots is None else [str(p) for p in self.read_roots],
            },
            sort_keys=True,
        )


class GuardHandle(tuple[Callable[[], list[str]]]):
    """What an installed guard refused so far.

    An immutable tuple holding one protected function, so guarded code that gets
    hold of the handle can neither swap nor clear what it reports.
    """

    __slots__ = ()

    @property
    def violations(self) -> list[str]:
        """Every refused operation, in order (a fresh copy on each access).

        Guarded code in the same process can re-assign this property (assigning a
        class attribute raises no audit event): code that must not trust it calls
        :func:`read_violations`, bound at import time, instead.
        """
        return read_violations(self)

    def __repr__(self) -> str:
        return f"GuardHandle(violations={len(self.violations)})"


class _GuardScope(tuple[GuardPolicy]):
    """The context manager returned by :func:`guarded`."""

    __slots__ = ()
    _enter_fn: ClassVar[Callable[[_GuardScope], GuardHandle]]
    _leave_fn: ClassVar[Callable[[_GuardScope], str | None]]

    def __enter__(self) -> GuardHandle:
        return self.__class__._enter_fn(self)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        msg = self.__class__._leave_fn(self)
        if msg is not None:
            raise GuardRefusal(msg, why="a guarded() block can only be left by its with statement")


class _Guarded:
    """Type of :data:`guarded`: an object, not a function, so nothing can re-bind it."""

    __slots__ = ()
    _scope: ClassVar[type[_GuardScope]] = _GuardScope

    def __call__(self, policy: GuardPolicy) -> _GuardScope:
        """``with guarded(policy) as handle:`` -- enforce ``policy`` in this thread.

        Use a plain ``with`` statement: the block can only be left by the frame
        that entered it (an ``ExitStack`` or a hand-called ``__exit__`` is refused
        and the thread stays guarded).
        """
        if not isinstance(policy, GuardPolicy):
            raise TypeError("guarded() needs a GuardPolicy")
        return type(self)._scope((policy,))


guarded = _Guarded()


# --- event tables ---------------------------------------------------------------------

# Kinds and path modes are string literals in the code (constants cannot be re-bound).
# event -> ((path index, dir_fd index or -1, "follow"|"nofollow"|"both", soft, taints), ...)
# soft: a Python-level event whose non-str path is skipped (its os events are checked);
# taints: the operation can put new content at that path (see the dynamic-code rule).
_PATH_SPECS: MappingProxyType[str, tuple[tuple[int, int, str, bool, bool], ...]] = MappingProxyType(
    {
        "os.remove": ((0, 1, "nofollow", False, False),),
        "os.rmdir": ((0, 1, "nofollow", False, False),),
        "os.mkdir": ((0, 2, "nofollow", False, True),),
        "os.rename": ((0, 2, "nofollow", False, False), (1, 3, "nofollow", False, True)),
        "os.link": ((0, 2, "both", False, False), (1, 3, "nofollow", False, True)),
        "os.symlink": ((1, 2, "nofollow", False, True),),
        "os.chmod": ((0, 2, "both", False, False),),
        "os.chown": ((0, 3, "both", False, False),),
        "os.utime": ((0, 3, "both", False, False),),
        "os.truncate": ((0, -1, "follow", False, True),),
        "os.setxattr": ((0, -1, "both", False, False),),
        "os.removexattr": ((0, -1, "both", False, False),),
        "os.chflags": ((0, -1, "both", False, False),),
        "shutil.rmtree": ((0, 1, "nofollow", True, False),),
        "shutil.move": ((0, -1, "nofollow", True, False), (1, -1, "nofollow", True, True)),
        "shutil.copyfile": ((1, -1, "follow", True, True),),
        "shutil.copytree": ((1, -1, "nofollow", True, True),),
        "shutil.copymode": ((1, -1, "both", True, False),),
        "shutil.copystat": ((1, -1, "both", True, False),),
        "shutil.chown": ((0, -1, "both", True, False),),
    }
)

_SUB_EVENTS = (
    "subprocess.Popen os.system os.exec os.posix_spawn os.spawn os.fork os.forkpty pty.spawn "
    "os.startfile os.startfile/2 os.kill os.killpg signal.pthread_kill resource.prlimit "
    "webbrowser.open _winapi.CreateProcess _posixsubprocess.fork_exec"
)
_NATIVE_EVENTS = (
    "ctypes.dlopen ctypes.dlsym ctypes.dlsym/handle ctypes.addressof ctypes.call_function "
    "ctypes.cdata ctypes.cdata/buffer ctypes.create_string_buffer ctypes.create_unicode_buffer "
    "ctypes.get_errno ctypes.set_errno ctypes.get_last_error ctypes.set_last_error "
    "ctypes.seh_exception ctypes.string_at ctypes.wstring_at ctypes.PyObj_FromPtr "
    "ctypes.set_exception ctypes.memoryview_at sqlite3.enable_load_extension sqlite3.load_extension"
)
_NET_EVENTS = (
    "socket.connect socket.sendto socket.sendmsg socket.getaddrinfo socket.gethostbyname "
    "socket.gethostbyaddr socket.getnameinfo socket.getservbyname socket.getservbyport "
    "socket.sethostname http.client.connect http.client.send urllib.Request ftplib.connect "
    "ftplib.sendcmd smtplib.connect smtplib.send imaplib.open imaplib.send nntplib.connect "
    "nntplib.putline poplib.connect poplib.putline telnetlib.Telnet.open telnetlib.Telnet.write "
    "syslog.openlog syslog.syslog"
)
_DYN_EVENTS = "compile marshal.loads marshal.load code.__new__ function.__new__ pickle.find_class"
_TAMPER_EVENTS = (
    "sys.addaudithook sys.settrace sys.setprofile sys._current_frames sys._current_exceptions "
    "gc.get_objects gc.get_referrers gc.get_referents builtins.breakpoint "
    "cpython.PyInterpreterState_New"
)


def _kinds() -> dict[str, str]:
    kinds: dict[str, str] = {"open": "open", "socket.__new__": "sock", "socket.bind": "bind"}
    kinds["sqlite3.connect"] = "sqlite"
    kinds.update(dict.fromkeys(_PATH_SPECS, "path"))
    for names, kind in (
        (_SUB_EVENTS, "sub"),
        (_NATIVE_EVENTS, "native"),
        (_NET_EVENTS, "net"),
        (_DYN_EVENTS, "dyn"),
        (_TAMPER_EVENTS, "tamper"),
    ):
        kinds.update(dict.fromkeys(names.split(), kind))
    kinds.update({"object.__getattr__": "getattr", "object.__delattr__": "getattr"})
    kinds.update({"object.__setattr__": "setattr", "import": "import"})
    kinds.update({"os.listdir": "list", "os.scandir": "list"})
    return kinds


_KIND: MappingProxyType[str, str] = MappingProxyType(_kinds())
# Raised by install code right after sys.addaudithook (which silently drops a hook that
# an active guard refuses): each guard hook appends its marker to the list argument.
_ARMED_EVENT = "kavi.guard.armed"
_REL: frozenset[str] = frozenset({*_KIND, _ARMED_EVENT})
_TAMPER_IMPORTS = frozenset({"_xxsubinterpreters", "_xxinterpchannels", "_interpreters"})
# C modules that write files without raising any audit event
_UNAUDITED_WRITER_IMPORTS = frozenset({"readline", "_dbm", "_gdbm"})


# --- captured primitives ------------------------------------------------------------------
#
# Everything below that runs inside the audit hook touches only builtin types
# (str, bytes, int, tuple, list, dict, frozenset, functions, frames, code objects).
# A Python class's attributes can be re-assigned without any audit event, so the hook
# never looks anything up on a class defined in Python (not even its own): values it
# needs are bound as keyword defaults when each function is defined, policies and
# state are plain tuples that are unpacked, and AST node fields are read through the
# instance-dict getter of ``ast.AST``.

_TYPE_NAME: Any = vars(type)["__name__"].__get__
_NODE_DICT: Any = vars(ast.AST)["__dict__"].__get__
_TUPLE_ITEM: Any = tuple.__getitem__
_O_READ = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_O_TMPFILE: int = getattr(os, "O_TMPFILE", -1)
_AF_UNIX = int(getattr(socket, "AF_UNIX", 1))
_FS_ENC, _FS_ERR = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()
_NULL_TARGETS = frozenset({os.devnull})
_MODULE_DICT = globals()
_PENDING, _UNKNOWN = (-1, -1), (-2, -2)
_SCOPED_MARKER = object()

# A policy, frozen: (roots, root_prefixes, code_prefixes, allow_subprocess,
# allow_network, allow_dynamic_code, violations list, report fd or -1,
# protected roots, protected prefixes, read roots or None (reads free), read prefixes).
_Pol = tuple[
    frozenset[str],
    tuple[str, ...],
    tuple[str, ...],
    bool,
    bool,
    bool,
    list[str],
    int,
    frozenset[str],
    tuple[str, ...],
    "frozenset[str] | None",
    tuple[str, ...],
]
# Always readable where the guard confines reads (devices every runtime opens).
_READABLE = frozenset({os.devnull, "/dev/urandom", "/dev/random", "/dev/zero"})


def _parse_only(
    source: bytes,
    mode: str,
    *,
    _compile: Any = compile,
    _flag: int = ast.PyCF_ONLY_AST,
    _error: type[Exception] = Exception,
) -> Any:
    """Parse to an AST (never to code). The guard trusts this function's own compiles."""
    try:
        return _compile(source, "<kavi-guard>", mode, _flag, True)
    except _error:
        return None


def _fork_exec_refused(*args: object, _audit: Any = sys.audit, **kwargs: object) -> Any:
    """Stands in for ``_posixsubprocess.fork_exec``, which raises no audit event."""
    _audit("_posixsubprocess.fork_exec")
    raise PermissionError("subprocesses are refused by the Kavi runtime guard")


def _lib_prefixes() -> tuple[str, ...]:
    out: list[str] = []
    paths = sysconfig.get_paths()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        raw = paths.get(key)
        if not raw:
            continue
        for candidate in (os.path.abspath(raw), os.path.realpath(raw)):
            prefix = candidate.rstrip("/") + "/"
            if prefix not in out:
                out.append(prefix)
    return tuple(out)


def _inner_code(func: Any, name: str) -> Any:
    for const in func.__code__.co_consts:
        if isinstance(const, types.CodeType) and const.co_name == name:
            return const
    return func.__code__


def _ast_tables() -> tuple[dict[Any, tuple[str, ...]], dict[str, Any]]:
    fields: dict[Any, tuple[str, ...]] = {}
    by_name: dict[str, Any] = {}
    for name, obj in vars(ast).items():
        if isinstance(obj, type) and issubclass(obj, ast.AST):
            fields[obj] = tuple(obj._fields)
            by_name[name] = obj
    return fields, by_name


_LIB_PREFIXES = _lib_prefixes()
_AST_FIELDS_RAW, _AST_BY_NAME = _ast_tables()
_AST_FIELDS = MappingProxyType(_AST_FIELDS_RAW)
_NODE_CLASSES: MappingProxyType[str, Any] = MappingProxyType(_AST_BY_NAME)


def _nodes(names: str) -> frozenset[Any]:
    return frozenset(_AST_BY_NAME[n] for n in names.split())


_TYPEEXPR_NODES = _nodes(
    "Expression Name Load Attribute Subscript Tuple List Constant BinOp BitOr UnaryOp USub "
    "Starred Call keyword"
)
_DATACLASS_NODES = _nodes(
    "Module FunctionDef arguments arg Return Assign If IfExp Expr Raise Pass BoolOp And Or "
    "Not UnaryOp BinOp Add Compare Eq NotEq Lt LtE Gt GtE Is IsNot In NotIn Call keyword "
    "Attribute Name Load Store Constant Tuple JoinedStr FormattedValue"
)
_NAMEDTUPLE_NODES = _nodes("Expression Lambda arguments arg Call Name Load Tuple")
_CHECKFN_NODES = _nodes(
    "Module FunctionDef arguments arg Return Name Load Compare Is BoolOp Or Call Constant"
)
_HYPOTHESIS_NODES = _nodes(
    "Module ImportFrom alias FunctionDef AsyncFunctionDef arguments arg Return Call Name Load "
    "Store Starred keyword With AsyncWith withitem YieldFrom Await AsyncFor Yield Expr"
)
# Text with a backslash, or a number glued to a letter, makes the parser warn, and
# warning machinery can run guarded code: such generated text is refused unparsed.
_BAD_TEXT: Any = re.compile(rb"\\|(?<![A-Za-z0-9_])[0-9][0-9_.]*[A-Za-z]").search

# Code generators in the standard library, by code object identity.
_CODE_PARSE_ONLY = _parse_only.__code__
_CODE_AST_PARSE = ast.parse.__code__
_CODE_CREATE_FN = vars(dataclasses)["_create_fn"].__code__
_CODE_NAMEDTUPLE = collections.namedtuple.__code__
_CODE_FWDREF_INIT = vars(typing.ForwardRef)["__init__"].__code__
_CODE_GET_ANNOTATIONS = _inner_code(inspect.get_annotations, "<dictcomp>")
_CODE_COMPILE_BYTECODE = sys.modules["_frozen_importlib_external"]._compile_bytecode.__code__
_CODE_TYPES_COROUTINE = types.coroutine.__code__
_CODE_SCOPE_EXIT = _GuardScope.__exit__.__code__

# Code generators in installed libraries, found by the qualified name of the function
# calling compile() and the end of its file's path: qualname -> ((suffix, shape), ...).
_LIBRARY_GENERATORS: MappingProxyType[str, tuple[tuple[str, str], ...]] = MappingProxyType(
    {
        "_rewrite_test": (("/_pytest/assertion/rewrite.py", "pytest-ast"),),
        "source_exec_as_module": (("/hypothesis/internal/reflection.py", "hypothesis"),),
        "impersonate.<locals>.accept": (("/hypothesis/internal/reflection.py", "code-rename"),),
        "_compile_identity_check_function": (("/typing_inspection/typing_objects.py", "checkfn"),),
        "_compile_isinstance_check_function": (("/typing_inspection/typing_objects.py", "checkfn"),),
        "get_annotations.<locals>.<dictcomp>": (("/typing_extensions.py", "typeexpr"),),
        # not a code generator: hypothesis checks whether a Random it tracks is still
        # referenced (it never hands the referrers to the caller)
        "register_random": (("/hypothesis/internal/entropy.py", "gc-referrers"),),
    }
)

# The guard's own classes: special attributes (__class__, __name__, __bases__ ...)
# of them and of their instances cannot be re-assigned while a guard is active.
_PROTECTED_TYPE_IDS = frozenset(id(c) for c in (GuardHandle, _GuardScope, _Guarded))
_PROTECTED_OBJ_IDS = frozenset(
    id(c)
    for c in (
        GuardHandle,
        GuardPolicy,
        GuardRefusal,
        _GuardScope,
        _Guarded,
        KaviError,
        GovernanceError,
        GuardViolation,
    )
)

# Mutable state shared by every hook. Bound into keyword defaults below, then removed
# from the module namespace so it is reachable only through protected functions:
# (taint set, thread-local cache, scopes by thread ident, active scopes,
#  scopes inherited by threads started in a block, [True] once the hook is in).
_STATE: tuple[
    set[str], Any, dict[int, list[list[Any]]], list[list[Any]], dict[Any, list[list[Any]]], list[bool]
]
_STATE = (set(), _thread._local(), {}, [], {}, [])


# --- path helpers -------------------------------------------------------------------------


def _safe_repr(
    value: object,
    *,
    _type: Any = type,
    _len: Any = len,
    _tname: Any = _TYPE_NAME,
    _plain: tuple[type, ...] = (str, bytes, int, bool, type(None)),
    _seq: tuple[type, ...] = (tuple, list),
) -> str:
    """repr() of exact builtin values only: never runs a __repr__ of guarded code."""
    t = _type(value)
    if t in _seq:
        parts: list[str] = []
        for item in value[:6]:  # type: ignore[index]
            if _type(item) in _plain:
                text = f"{item!r}"
                parts.append(text if _len(text) <= 80 else text[:77] + "...")
            else:
                parts.append("<" + _tname(_type(item)) + ">")
        more = ", ..." if _len(value) > 6 else ""
        if t is _seq[0]:
            return "(" + ", ".join(parts) + more + ")"
        return "[" + ", ".join(parts) + more + "]"
    if t in _plain:
        text = f"{value!r}"
        return text if _len(text) <= 160 else text[:157] + "..."
    name: str = _tname(t)
    return "<" + name + ">"


def _to_str(
    value: object,
    *,
    _type: Any = type,
    _enc: str = _FS_ENC,
    _err: str = _FS_ERR,
    _str_t: Any = str,
    _bytes_t: Any = bytes,
) -> str | None:
    t = _type(value)
    if t is _str_t:
        return value  # type: ignore[return-value]
    if t is _bytes_t:
        decoded: str = value.decode(_enc, _err)  # type: ignore[attr-defined]
        return decoded
    return None


def _fd_path(fd: int, *, _readlink: Any = os.readlink, _str: Any = str, _error: Any = OSError) -> str | None:
    """The path an open descriptor refers to, or None if it has none we can trust."""
    try:
        target: str = _readlink("/proc/self/fd/" + _str(fd))
    except _error:
        return None
    if not target.startswith("/") or target.endswith(" (deleted)"):
        return None
    return target


def _resolve(
    path: str,
    base: str,
    follow: bool,
    *,
    _lstat: Any = os.lstat,
    _readlink: Any = os.readlink,
    _islnk: Any = stat.S_ISLNK,
    _error: Any = OSError,
) -> str | None:
    """Like os.path.realpath (non-strict), from captured primitives only.

    ``follow=False`` leaves the last component alone (unlink, rename, mkdir ...).
    Returns None for a symlink loop.
    """
    if not path.startswith("/"):
        path = base + "/" + path
    pending = path.split("/")
    pending.reverse()
    if not follow:
        while pending and (pending[0] == "" or pending[0] == "."):
            del pending[0]
    out: list[str] = []
    hops = 0
    while pending:
        comp = pending.pop()
        if comp == "" or comp == ".":
            continue
        if comp == "..":
            if out:
                out.pop()
            continue
        if not pending and not follow:
            out.append(comp)
            break
        out.append(comp)
        candidate = "/" + "/".join(out)
        try:
            mode = _lstat(candidate).st_mode
        except _error:
            continue
        if not _islnk(mode):
            continue
        hops += 1
        if hops > 40:
            return None
        try:
            target: str = _readlink(candidate)
        except _error:
            continue
        out.pop()
        if target.startswith("/"):
            out = []
        parts = target.split("/")
        parts.reverse()
        pending.extend(parts)
    return "/" + "/".join(out)


def _under(path: str, roots: frozenset[str], prefixes: tuple[str, ...]) -> bool:
    return path in roots or path.startswith(prefixes)


def _writable(path: str, pol: _Pol, *, _null: frozenset[str] = _NULL_TARGETS) -> bool:
    if path in pol[8] or path.startswith(pol[9]):
        return False  # a protected directory below a write root
    return path in pol[0] or path.startswith(pol[1]) or path in _null


def _readable(path: str, pol: _Pol, *, _always: frozenset[str] = _READABLE) -> bool:
    roots = pol[10]
    if roots is None:
        return True
    if path in pol[8] or path.startswith(pol[9]):
        return False  # Kavi's own artifacts, git and governance directories
    return (
        path in roots
        or path.startswith(pol[11])
        or path.startswith(pol[2])
        or path in pol[0]
        or path.startswith(pol[1])
        or path in _always
    )


def _is_tainted(path: str, *, _taint: set[str] = _STATE[0]) -> bool:
    """Written by guarded code: the path itself or a directory above it."""
    while True:
        if path in _taint:
            return True
        cut = path.rfind("/")
        if cut <= 0:
            return "/" in _taint
        path = path[:cut]


def _read_file(
    path: str,
    size: int,
    *,
    _open: Any = os.open,
    _read: Any = os.read,
    _close: Any = os.close,
    _fstat: Any = os.fstat,
    _isreg: Any = stat.S_ISREG,
    _flags: int = _O_READ,
    _len: Any = len,
    _error: Any = OSError,
) -> bytes | None:
    """Bytes of a regular file; with ``size >= 0`` only if it has exactly that size.

    With ``size < 0`` reads to end of file (``/proc`` files report a size of 0).
    """
    try:
        fd = _open(path, _flags)
    except _error:
        return None
    try:
        info = _fstat(fd)
        if not _isreg(info.st_mode) or (size >= 0 and info.st_size != size):
            return None
        chunks: list[bytes] = []
        got = 0
        while size < 0 or got < size:
            chunk: bytes = _read(fd, size - got if size >= 0 else 65536)
            if not chunk:
                break
            chunks.append(chunk)
            got += _len(chunk)
        if size >= 0 and got != size:
            return None
        return b"".join(chunks)
    except _error:
        return None
    finally:
        _close(fd)


_OWN_FDS = "/proc/self/fd"


def _dir_anchors(
    *,
    _listdir: Any = os.listdir,
    _stat: Any = os.stat,
    _isdir: Any = stat.S_ISDIR,
    _int: Any = int,
    _fdp: Any = _fd_path,
    _error: Any = OSError,
) -> list[str]:
    """Every directory the process holds open: a possible dir_fd of an ``open``."""
    found: list[str] = []
    try:
        names = _listdir(_OWN_FDS)
    except _error:
        return found
    for name in names:
        try:
            mode = _stat("/proc/self/fd/" + name).st_mode
        except _error:
            continue
        if _isdir(mode):
            target = _fdp(_int(name))
            found.append(target if target is not None else "/\x00unresolvable")
    return found


def _record(pol: _Pol, msg: str, *, _write: Any = os.write, _error: Any = OSError) -> None:
    store, fd = pol[6], pol[7]
    store.append(msg)
    if fd >= 0:
        try:
            _write(fd, ("KAVI-GUARD-LIVE: " + msg + "\n").encode("utf-8", "replace"))
        except _error:
            pass


def _is_protected(
    obj: object,
    *,
    _type: Any = type,
    _id: Any = id,
    _fn: Any = types.FunctionType,
    _globals: dict[str, Any] = _MODULE_DICT,
    _type_ids: frozenset[int] = _PROTECTED_TYPE_IDS,
    _obj_ids: frozenset[int] = _PROTECTED_OBJ_IDS,
) -> bool:
    """A function of this module, or one of the guard's classes or their instances."""
    t = _type(obj)
    if t is _fn:
        return obj.__globals__ is _globals  # type: ignore[attr-defined]
    return _id(t) in _type_ids or _id(obj) in _obj_ids


# --- read checks (only where nothing else confines reads) ---------------------------------


def _check_read(
    pol: _Pol,
    path: object,
    event: str,
    *,
    _type: Any = type,
    _getcwd: Any = os.getcwd,
    _str: Any = _to_str,
    _res: Any = _resolve,
    _ok: Any = _readable,
    _anchors: Any = _dir_anchors,
    _sr: Any = _safe_repr,
    _int_t: Any = int,
) -> str | None:
    if pol[10] is None or _type(path) is _int_t:
        return None  # reads are free, or an already-open descriptor
    text = _str(path) if path is not None else "."
    if text is None:
        return f"read: {event}() of an unverifiable path object {_sr(path)}"
    if text == _OWN_FDS and event == "os.listdir":
        return None  # the guard's own look at the open descriptors (_dir_anchors): names only
    bases: list[str] = [""] if text.startswith("/") else [_getcwd(), *_anchors()]
    for base in bases:
        real = _res(text, base, True)
        if real is None or not _ok(real, pol):
            return f"read outside read roots: {event}({text!r}) -> {real}"
    return None


# --- write checks ---------------------------------------------------------------------------


def _check_open(
    pol: _Pol,
    args: tuple[Any, ...],
    *,
    _type: Any = type,
    _getcwd: Any = os.getcwd,
    _flags: int = _WRITE_FLAGS,
    _tmpfile: int = _O_TMPFILE,
    _stat: Any = os.stat,
    _isdir: Any = stat.S_ISDIR,
    _error: Any = OSError,
    _taint: set[str] = _STATE[0],
    _str: Any = _to_str,
    _res: Any = _resolve,
    _ok: Any = _writable,
    _anchors: Any = _dir_anchors,
    _sr: Any = _safe_repr,
    _int_t: Any = int,
    _str_t: Any = str,
    _read: Any = _check_read,
) -> str | None:
    path, mode, flags = args[0], args[1], args[2]
    if _type(flags) is _int_t:
        reading = not flags & _flags
    else:
        reading = _type(mode) is _str_t and not ("w" in mode or "a" in mode or "x" in mode or "+" in mode)
    if reading:
        result: str | None = _read(pol, path, "open")
        return result
    if _type(path) is _int_t:
        return None  # an already-open descriptor: it was checked when it was opened
    text = _str(path)
    if text is None:
        return f"write: open() of an unverifiable path object {_sr(path)}"
    bases: list[str] = [""] if text.startswith("/") else [_getcwd(), *_anchors()]
    resolved: list[str] = []
    for base in bases:
        real = _res(text, base, True)
        if real is None or not _ok(real, pol):
            return f"write outside write roots: open({text!r}, {_sr(mode)}) -> {real}"
        resolved.append(real)
    if _type(flags) is not _int_t or flags & _tmpfile != _tmpfile:
        for real in resolved:
            # an existing directory gets no named content from an open (O_TMPFILE
            # files are nameless until linked, and a link taints its target)
            try:
                is_dir = _isdir(_stat(real).st_mode)
            except _error:
                is_dir = False
            if not is_dir:
                _taint.add(real)
    return None


def _check_path(
    pol: _Pol,
    event: str,
    args: tuple[Any, ...],
    *,
    _type: Any = type,
    _len: Any = len,
    _getcwd: Any = os.getcwd,
    _specs: Any = _PATH_SPECS,
    _taint: set[str] = _STATE[0],
    _str: Any = _to_str,
    _res: Any = _resolve,
    _ok: Any = _writable,
    _fdp: Any = _fd_path,
    _sr: Any = _safe_repr,
    _int_t: Any = int,
) -> str | None:
    targets: list[str] = []
    tainted: list[str] = []
    for index, fd_index, how, soft, taints in _specs[event]:
        raw = args[index] if index < _len(args) else None
        if _type(raw) is _int_t:
            where = _fdp(raw)
            if where is None:
                return f"write: {event} on descriptor {raw} with no checkable path"
            targets.append(where)
            if taints:
                tainted.append(where)
            continue
        text = _str(raw)
        if text is None:
            if soft:
                continue
            return f"write: {event} on an unverifiable path object {_sr(raw)}"
        dir_fd = args[fd_index] if 0 <= fd_index < _len(args) else None
        if dir_fd is None or (_type(dir_fd) is _int_t and dir_fd < 0):
            base = "" if text.startswith("/") else _getcwd()
        elif _type(dir_fd) is _int_t:
            fd_base = _fdp(dir_fd)
            if fd_base is None:
                return f"write: {event}({text!r}) relative to an uncheckable dir_fd {dir_fd}"
            base = fd_base
        else:
            return f"write: {event}({text!r}) with an unverifiable dir_fd"
        if how != "nofollow":
            targets.append(_res(text, base, True))
        if how != "follow":
            targets.append(_res(text, base, False))
        if taints:
            tainted.extend(targets[-2:] if how == "both" else targets[-1:])
    for real in targets:
        if real is None or not _ok(real, pol):
            return f"write outside write roots: {event}{_sr(args[:2])} -> {real}"
    for real in tainted:
        _taint.add(real)
    return None


# --- dynamic code ---------------------------------------------------------------------------


def _ast_nodes(
    tree: object,
    *,
    _type: Any = type,
    _fields: Any = _AST_FIELDS,
    _node_dict: Any = _NODE_DICT,
    _dict_t: Any = dict,
    _list_t: Any = list,
) -> list[Any] | None:
    """All nodes of ``tree`` with their field dicts, walked by hand, or None.

    Returns ``[(node_class, fields_dict), ...]``; fields come from each instance's
    own ``__dict__`` (a class-level property cannot interpose).
    """
    stack: list[Any] = [tree]
    out: list[Any] = []
    while stack:
        node = stack.pop()
        t = _type(node)
        names = _fields.get(t)
        if names is None:
            return None
        data = _node_dict(node)
        if _type(data) is not _dict_t:
            return None
        out.append((t, data))
        for name in names:
            value = data.get(name)
            kind = _type(value)
            if kind is _list_t:
                for item in value:
                    if _fields.get(_type(item)) is not None:
                        stack.append(item)
            elif _fields.get(kind) is not None:
                stack.append(value)
    return out


def _parse_checked(
    src: bytes,
    mode: str,
    allowed: frozenset[Any],
    *,
    _bad: Any = _BAD_TEXT,
    _parse: Any = _parse_only,
    _walk: Any = _ast_nodes,
) -> list[Any] | None:
    """Nodes of ``src`` (first one: the root) if every node's class is ``allowed``."""
    if _bad(src) is not None:
        return None
    tree = _parse(src, mode)
    if tree is None:
        return None
    nodes = _walk(tree)
    if nodes is None:
        return None
    for t, _ in nodes:
        if t not in allowed:
            return None
    result: list[Any] = nodes
    return result


def _field(
    data: dict[str, Any],
    name: str,
    *,
    _type: Any = type,
    _node_dict: Any = _NODE_DICT,
    _fields: Any = _AST_FIELDS,
) -> Any:
    """A field of a node (given its dict) that is itself a node: its dict, or None."""
    value = data.get(name)
    if value is None or _fields.get(_type(value)) is None:
        return None
    return (_type(value), _node_dict(value))


def _valid_typeexpr(
    src: bytes,
    *,
    _pc: Any = _parse_checked,
    _f: Any = _field,
    A: Any = _NODE_CLASSES,
    _allowed: frozenset[Any] = _TYPEEXPR_NODES,
) -> bool:
    """A string annotation: names, attributes, subscripts, literals, ``|``, Field(...)."""
    nodes = _pc(src, "eval", _allowed)
    if nodes is None:
        return False
    for t, d in nodes:
        if t is A["Name"] and d["id"].startswith("__"):
            return False
        if t is A["Attribute"] and d["attr"].startswith("_"):
            return False
        if t is A["BinOp"] and _f(d, "op")[0] is not A["BitOr"]:
            return False
        if t is A["UnaryOp"] and _f(d, "op")[0] is not A["USub"]:
            return False
        if t is A["Call"]:
            func = _f(d, "func")
            if func is None or func[0] not in (A["Name"], A["Attribute"]):
                return False
            name = func[1]["id"] if func[0] is A["Name"] else func[1]["attr"]
            if not (name[:1].isupper() or name.startswith("con")):
                return False
    return True


def _valid_dataclass(
    src: bytes,
    *,
    _pc: Any = _parse_checked,
    _f: Any = _field,
    A: Any = _NODE_CLASSES,
    _len: Any = len,
    _type: Any = type,
    _allowed: frozenset[Any] = _DATACLASS_NODES,
) -> bool:
    """The text of one method generated by ``dataclasses._create_fn``."""
    nodes = _pc(src, "exec", _allowed)
    if nodes is None:
        return False
    body = nodes[0][1]["body"]
    if _len(body) != 1 or _type(body[0]) is not A["FunctionDef"]:
        return False
    dunders = ("__class__", "__qualname__", "__setattr__", "__delattr__", "__post_init__")
    for t, d in nodes:
        if t is A["FunctionDef"] and d["decorator_list"]:
            return False
        if t is A["BinOp"] and _f(d, "op")[0] is not A["Add"]:
            return False
        if t is A["UnaryOp"] and _f(d, "op")[0] is not A["Not"]:
            return False
        if t is A["Attribute"] and d["attr"].startswith("__") and d["attr"] not in dunders:
            return False
        if t is A["Call"]:
            func = _f(d, "func")
            if func is None:
                return False
            if func[0] is A["Name"]:
                name = func[1]["id"]
                known = name in ("type", "super", "hash", "FrozenInstanceError")
                if not known and not name.startswith("_dflt_"):
                    return False
            elif func[0] is A["Attribute"]:
                if func[1]["attr"] not in ("__setattr__", "__delattr__", "__post_init__"):
                    return False
            else:
                return False
    named: bool = nodes[1][1].get("name") == "__create_fn__"
    return named


def _valid_namedtuple(
    src: bytes,
    *,
    _pc: Any = _parse_checked,
    _f: Any = _field,
    A: Any = _NODE_CLASSES,
    _allowed: frozenset[Any] = _NAMEDTUPLE_NODES,
) -> bool:
    """Exactly ``lambda _cls, a, b: _tuple_new(_cls, (a, b))``."""
    nodes = _pc(src, "eval", _allowed)
    if nodes is None:
        return False
    lam = _f(nodes[0][1], "body")
    if lam is None or lam[0] is not A["Lambda"]:
        return False
    calls = 0
    for t, d in nodes:
        if t is A["Call"]:
            calls += 1
            func = _f(d, "func")
            if func is None or func[0] is not A["Name"] or func[1]["id"] != "_tuple_new":
                return False
        if t is A["Lambda"] and d is not lam[1]:
            return False
        if t is A["arguments"] and (d["defaults"] or d["kw_defaults"] or d["kwonlyargs"]):
            return False
    return calls == 1


def _valid_checkfn(
    src: bytes,
    *,
    _pc: Any = _parse_checked,
    _f: Any = _field,
    A: Any = _NODE_CLASSES,
    _len: Any = len,
    _type: Any = type,
    _allowed: frozenset[Any] = _CHECKFN_NODES,
) -> bool:
    """typing_inspection's ``def is_x(obj, /) -> bool: return obj is _obj`` helpers."""
    nodes = _pc(src, "exec", _allowed)
    if nodes is None:
        return False
    body = nodes[0][1]["body"]
    if _len(body) != 1 or _type(body[0]) is not A["FunctionDef"]:
        return False
    for t, d in nodes:
        if t is A["FunctionDef"] and d["decorator_list"]:
            return False
        if t is A["Call"]:
            func = _f(d, "func")
            if func is None or func[0] is not A["Name"] or func[1]["id"] != "isinstance":
                return False
    return True


def _valid_hypothesis(
    src: bytes,
    *,
    _pc: Any = _parse_checked,
    _f: Any = _field,
    _nd: Any = _NODE_DICT,
    A: Any = _NODE_CLASSES,
    _len: Any = len,
    _type: Any = type,
    _allowed: frozenset[Any] = _HYPOTHESIS_NODES,
) -> bool:
    """hypothesis' COPY_SIGNATURE_SCRIPT: forwards a call under a copied signature."""
    nodes = _pc(src, "exec", _allowed)
    if nodes is None:
        return False
    body = nodes[0][1]["body"]
    if not body or _type(body[-1]) is not A["FunctionDef"]:
        return False
    accept_args = _nd(_nd(body[-1])["args"])["args"]
    if _len(accept_args) != 1:
        return False
    forward = _nd(accept_args[0])["arg"]
    imports = {"contextlib": ("aclosing", "closing"), "hypothesis.utils.conventions": ("not_set",)}
    for t, d in nodes:
        if t is A["ImportFrom"]:
            allowed = imports.get(d["module"]) if d["level"] == 0 else None
            if allowed is None:
                return False
            for alias in d["names"]:
                ad = _nd(alias)
                if ad["name"] not in allowed or ad.get("asname") is not None:
                    return False
        elif t is A["FunctionDef"] or t is A["AsyncFunctionDef"]:
            if d["decorator_list"] or d.get("returns") is not None:
                return False
        elif t is A["arg"]:
            if d.get("annotation") is not None:
                return False
        elif t is A["arguments"]:
            for default in [*d["defaults"], *d["kw_defaults"]]:
                if default is None:
                    continue
                if _type(default) is not A["Name"] or _nd(default)["id"] != "not_set":
                    return False
        elif t is A["Call"]:
            func = _f(d, "func")
            if func is None or func[0] is not A["Name"]:
                return False
            if func[1]["id"] not in ("closing", "aclosing") and func[1]["id"] != forward:
                return False
    return True


def _library_shape(
    pol: _Pol,
    code: Any,
    *,
    _type: Any = type,
    _prefixes: tuple[str, ...] = _LIB_PREFIXES,
    _generators: Any = _LIBRARY_GENERATORS,
    _res: Any = _resolve,
    _u: Any = _under,
    _t: Any = _is_tainted,
    _str_t: Any = str,
) -> str | None:
    """The shape ``code`` may generate if it is a known installed library generator."""
    if code is None:
        return None
    entries = _generators.get(code.co_qualname)
    if entries is None:
        return None
    filename = code.co_filename
    if _type(filename) is not _str_t:
        return None
    if "/../" in filename or "/./" in filename or not filename.startswith(_prefixes):
        return None
    for suffix, shape in entries:
        if filename.endswith(suffix):
            real = _res(filename, "/", True)
            if real is None or _u(real, pol[0], pol[1]) or _t(real):
                return None
            found: str = shape
            return found
    return None


def _code_file(
    pol: _Pol, filename: str, *, _getcwd: Any = os.getcwd, _res: Any = _resolve, _t: Any = _is_tainted
) -> str | None:
    """``filename`` resolved, if it is in a code root and untainted."""
    if not filename or filename.startswith("<"):
        return None
    real: str | None = _res(filename, _getcwd(), True)
    if real is None or not real.startswith(pol[2]) or _t(real):
        return None
    return real


def _check_dynamic(
    pol: _Pol,
    event: str,
    args: tuple[Any, ...],
    caller: Any,
    *,
    _type: Any = type,
    _len: Any = len,
    _bytes: Any = bytes,
    _memoryview: Any = memoryview,
    _only_ast: int = ast.PyCF_ONLY_AST,
    _ast_module: Any = ast.Module,
    _file: Any = _code_file,
    _read: Any = _read_file,
    _lib: Any = _library_shape,
    _tx: Any = _valid_typeexpr,
    _dc: Any = _valid_dataclass,
    _nt: Any = _valid_namedtuple,
    _cf: Any = _valid_checkfn,
    _hy: Any = _valid_hypothesis,
    _u: Any = _under,
    _sr: Any = _safe_repr,
    _c_parse_only: Any = _CODE_PARSE_ONLY,
    _c_ast_parse: Any = _CODE_AST_PARSE,
    _c_create_fn: Any = _CODE_CREATE_FN,
    _c_namedtuple: Any = _CODE_NAMEDTUPLE,
    _c_fwdref: Any = _CODE_FWDREF_INIT,
    _c_annotations: Any = _CODE_GET_ANNOTATIONS,
    _c_bytecode: Any = _CODE_COMPILE_BYTECODE,
    _c_coroutine: Any = _CODE_TYPES_COROUTINE,
    _int_t: Any = int,
    _str_t: Any = str,
    _bytes_t: Any = bytes,
) -> str | None:
    code = caller.f_code if caller is not None else None
    where = f"{code.co_filename}:{caller.f_lineno}" if code is not None else "?"
    if event == "compile":
        src, filename = args[0], args[1]
        if code is _c_parse_only:
            return None
        if code is _c_ast_parse:
            flags = caller.f_locals.get("flags")
            if _type(flags) is _int_t and flags & _only_ast:
                return None
        named = _type(filename) is _str_t
        if _type(src) is _bytes_t:
            real = _file(pol, filename) if named else None
            if real is not None and _read(real, _len(src)) == src:
                return None
            if real is not None and caller is None:
                # CPython's C traceback printer parses one line of a file to place
                # its ^^^ markers; with no Python frame the result reaches no code
                whole = _read(real, -1)
                if whole is not None and src in whole:
                    return None
            if code is _c_create_fn:
                shape = "dataclass"
            elif code is _c_namedtuple:
                shape = "namedtuple"
            elif code is _c_fwdref or code is _c_annotations:
                shape = "typeexpr"
            else:
                shape = _lib(pol, code)
            if shape == "dataclass" and _dc(src):
                return None
            if shape == "namedtuple" and _nt(src):
                return None
            if shape == "typeexpr" and _tx(src):
                return None
            if shape == "checkfn" and _cf(src):
                return None
            if shape == "hypothesis" and _hy(src):
                return None
            shown = _sr(src)
        elif _type(src) is _ast_module:
            # the event carries no filename for an AST: take the one pytest compiles for
            if _lib(pol, code) == "pytest-ast":
                filename = caller.f_locals.get("strfn")
                if _type(filename) is _str_t and _file(pol, filename) is not None:
                    return None
            shown = "<an AST>"
        else:
            shown = _sr(src)
        return f"dynamic code: compile() of {shown} (filename {_sr(filename)}) at {where}"
    if event == "marshal.loads":
        if code is _c_bytecode:
            pyc = caller.f_locals.get("bytecode_path")
            real = _file(pol, pyc) if _type(pyc) is _str_t else None
            if real is not None and not _u(real, pol[0], pol[1]):
                data = args[0]
                if _type(data) is _memoryview:
                    data = _bytes(data)
                whole = _read(real, -1)
                if _type(data) is _bytes_t and whole is not None and whole[16:] == data:
                    return None
        return f"dynamic code: marshal.loads() of bytecode that is not an installed .pyc at {where}"
    if event == "code.__new__" or event == "object.__setattr__":
        if code is _c_coroutine or _lib(pol, code) == "code-rename":
            return None
        if event == "code.__new__":
            return f"dynamic code: building a code object at {where}"
        return f"dynamic code: assigning a function's __code__ at {where}"
    return f"dynamic code: {event} at {where}"


# --- the per-policy decision ----------------------------------------------------------------


def _check(
    pol: _Pol,
    event: str,
    args: tuple[Any, ...],
    caller: Any,
    *,
    _type: Any = type,
    _len: Any = len,
    _getcwd: Any = os.getcwd,
    _af_unix: int = _AF_UNIX,
    _kinds: Any = _KIND,
    _tamper_imports: frozenset[str] = _TAMPER_IMPORTS,
    _writer_imports: frozenset[str] = _UNAUDITED_WRITER_IMPORTS,
    _taint: set[str] = _STATE[0],
    _open: Any = _check_open,
    _path: Any = _check_path,
    _rd: Any = _check_read,
    _dyn: Any = _check_dynamic,
    _lib: Any = _library_shape,
    _prot: Any = _is_protected,
    _str: Any = _to_str,
    _res: Any = _resolve,
    _ok: Any = _writable,
    _sr: Any = _safe_repr,
    _int_t: Any = int,
    _str_t: Any = str,
) -> str | None:
    """Why ``event`` is refused under ``pol``, or None if it is allowed."""
    kind = _kinds.get(event)
    allow_sub, allow_net, allow_dyn = pol[3], pol[4], pol[5]
    result: str | None
    if kind == "open":
        result = _open(pol, args)
        return result
    if kind == "getattr" or kind == "setattr":
        target, name = args[0], args[1]
        if _prot(target):
            return f"tamper: {event} {_sr(name)} on the runtime guard's own objects"
        if kind == "setattr" and _type(name) is _str_t and name == "__code__" and not allow_dyn:
            result = _dyn(pol, event, args, caller)
            return result
        return None
    if kind == "path":
        result = _path(pol, event, args)
        return result
    if kind == "list":
        result = _rd(pol, args[0] if _len(args) > 0 else None, event)
        return result
    if kind == "dyn":
        if allow_dyn:
            return None
        result = _dyn(pol, event, args, caller)
        return result
    if kind == "sub":
        return None if allow_sub else f"subprocess: {event}{_sr(args[:2])}"
    if kind == "native":
        return f"native code: {event} (ctypes is refused)"
    if kind == "tamper":
        if event == "gc.get_referrers" and caller is not None and _lib(pol, caller.f_code) == "gc-referrers":
            return None
        return f"tamper: {event}"
    if kind == "sock":
        family = args[1] if _len(args) > 1 else None
        if allow_net or (_type(family) is _int_t and family == _af_unix):
            return None
        return f"network: socket.__new__(family={_sr(family)})"
    if kind == "net":
        return None if allow_net else f"network: {event}{_sr(args[:3])}"
    if kind == "bind":
        address = args[1] if _len(args) > 1 else None
        if not allow_net:
            return f"network: socket.bind({_sr(address)})"
        text = _str(address)
        if text is None or not text or text.startswith("\x00"):
            return None
        real = _res(text, _getcwd(), False)
        if real is None or not _ok(real, pol):
            return f"write outside write roots: socket.bind({text!r}) -> {real}"
        return None
    if kind == "sqlite":
        database = _str(args[0]) if _len(args) > 0 else None
        if database is None:
            return f"write: sqlite3.connect() of {_sr(args[0] if args else None)}: pass a str path"
        if database == ":memory:" or database == "":
            return None
        if database.startswith("file:"):
            return f"write: sqlite3.connect({database!r}): URI filenames are refused"
        real = _res(database, _getcwd(), True)
        if real is None or not _ok(real, pol):
            return f"write outside write roots: sqlite3.connect({database!r}) -> {real}"
        _taint.add(real)
        return None
    if kind == "import":
        module = args[0]
        if _type(module) is _str_t:
            if module in _tamper_imports:
                return f"tamper: import {module} (sub-interpreters escape audit hooks)"
            if module in _writer_imports:
                return f"write: import {module} (it writes files without audit events)"
            if module == "_posixsubprocess" and not allow_sub:
                return "subprocess: fresh import of _posixsubprocess"
        return None
    return None


def _frame_at(depth: int, *, _getframe: Any = sys._getframe, _error: Any = ValueError) -> Any:
    """The frame ``depth`` levels above the caller, or None (events raised from C)."""
    try:
        return _getframe(depth + 1)
    except _error:
        return None


def _internal_error(event: str, exc: BaseException, *, _type: Any = type, _tname: Any = _TYPE_NAME) -> str:
    """Message for a bug in the guard itself (the operation is refused: fail closed)."""
    tb = exc.__traceback__
    line = 0
    while tb is not None:
        line = tb.tb_lineno
        tb = tb.tb_next
    return f"internal guard error ({_tname(_type(exc))} at guard.py:{line}) checking {event!r}; refused"


def _needs_caller(
    event: str, args: tuple[Any, ...], *, _type: Any = type, _len: Any = len, _str_t: Any = str
) -> bool:
    if event == "compile" or event == "marshal.loads" or event == "code.__new__":
        return True
    if event == "gc.get_referrers":
        return True
    if event != "object.__setattr__" or _len(args) < 2:
        return False
    name = args[1]
    found: bool = _type(name) is _str_t and name == "__code__"
    return found


def _process_dispatch(
    pol: _Pol,
    event: str,
    args: tuple[Any, ...],
    *,
    _gc_on: Any = gc.isenabled,
    _gc_enable: Any = gc.enable,
    _gc_disable: Any = gc.disable,
    _exception: Any = Exception,
    _need: Any = _needs_caller,
    _at: Any = _frame_at,
    _chk: Any = _check,
    _rec: Any = _record,
    _err: Any = _internal_error,
) -> str | None:
    gc_was_on = _gc_on()
    _gc_disable()  # no finaliser of guarded code may run while guard frames are live
    try:
        # frames: 0 this, 1 the per-install wrapper, 2 the hook, 3 who raised the event
        caller = _at(3) if _need(event, args) else None
        msg: str | None = _chk(pol, event, args, caller)
    except _exception as exc:
        msg = _err(event, exc)
    finally:
        if gc_was_on:
            _gc_enable()
    if msg is not None:
        _rec(pol, msg)
    return msg


# --- thread-scoped guard ----------------------------------------------------------------------


def _thread_start(
    tid: int,
    *,
    _str: Any = str,
    _int: Any = int,
    _len: Any = len,
    _error: Any = ValueError,
    _read: Any = _read_file,
) -> int | None:
    """Start time (clock ticks since boot) of a thread of this process, Linux only."""
    data = _read("/proc/self/task/" + _str(tid) + "/stat", -1)
    if data is None:
        return None
    cut = data.rfind(b")")
    fields = data[cut + 2 :].split() if cut >= 0 else []
    if _len(fields) < 20:
        return None
    try:
        start: int = _int(fields[19])
    except _error:
        return None
    return start


def _task_pairs(
    *,
    _listdir: Any = os.listdir,
    _int: Any = int,
    _frozenset: Any = frozenset,
    _start: Any = _thread_start,
    _error: Any = OSError,
) -> frozenset[tuple[int, int]]:
    """(thread id, start time) of every thread of the process now."""
    pairs: list[tuple[int, int]] = []
    try:
        names = _listdir("/proc/self/task")
    except _error:
        names = []
    for name in names:
        start = _start(_int(name))
        if start is not None:
            pairs.append((_int(name), start))
    result: frozenset[tuple[int, int]] = _frozenset(pairs)
    return result


def _thread_pair(
    *,
    _tls: Any = _STATE[1],
    _getattr: Any = getattr,
    _native_id: Any = _thread.get_native_id,
    _start: Any = _thread_start,
    _pending: tuple[int, int] = _PENDING,
    _unknown: tuple[int, int] = _UNKNOWN,
) -> Any:
    """(native id, start time) of the current thread, cached in thread-local storage."""
    cached = _getattr(_tls, "pair", None)
    if cached is not None:
        return cached
    _tls.pair = _pending  # our own /proc read below raises events: let them through
    tid = _native_id()
    start = _start(tid)
    pair = (tid, start) if start is not None else _unknown
    _tls.pair = pair
    return pair


def _scoped_dispatch(
    event: str,
    args: tuple[Any, ...],
    *,
    _by_ident: dict[int, list[list[Any]]] = _STATE[2],
    _active: list[list[Any]] = _STATE[3],
    _inherited: dict[Any, list[list[Any]]] = _STATE[4],
    _get_ident: Any = _thread.get_ident,
    _gc_on: Any = gc.isenabled,
    _gc_enable: Any = gc.enable,
    _gc_disable: Any = gc.disable,
    _exception: Any = Exception,
    _pending: tuple[int, int] = _PENDING,
    _unknown: tuple[int, int] = _UNKNOWN,
    _need: Any = _needs_caller,
    _at: Any = _frame_at,
    _chk: Any = _check,
    _pair: Any = _thread_pair,
    _rec: Any = _record,
    _err: Any = _internal_error,
    _armed: str = _ARMED_EVENT,
    _marker: object = _SCOPED_MARKER,
    _type: Any = type,
    _list_t: Any = list,
) -> str | None:
    if event == _armed:
        if args and _type(args[0]) is _list_t:
            args[0].append(_marker)
        return None
    if not _active and not _inherited:
        return None
    gc_was_on = _gc_on()
    _gc_disable()
    pols: list[_Pol] = []
    try:
        ident = _get_ident()
        own = _by_ident.get(ident)
        if own is not None:
            for rec in own:
                pols.append(rec[1])
        pair = _pair()
        if pair is _pending:
            return None
        for rec in _active:
            if rec[3] != ident and (pair is _unknown or pair not in rec[4]):
                pols.append(rec[1])
        if pair is not _unknown:
            started_in_block = _inherited.get(pair)
            if started_in_block is not None:
                for rec in started_in_block:
                    pols.append(rec[1])
        if not pols:
            return None
        # frames: 0 this, 1 the hook, 2 who raised the event
        caller = _at(2) if _need(event, args) else None
        for pol in pols:
            msg: str | None = _chk(pol, event, args, caller)
            if msg is not None:
                _rec(pol, msg)
                return msg
        return None
    except _exception as exc:
        msg = _err(event, exc)
        if pols:
            _rec(pols[0], msg)
        return msg
    finally:
        if gc_was_on:
            _gc_enable()


def _scoped_hook(
    event: str,
    args: tuple[Any, ...],
    *,
    _rel: frozenset[str] = _REL,
    _d: Any = _scoped_dispatch,
    _exc: type[GuardViolation] = GuardRefusal,
) -> None:
    if event in _rel:
        msg = _d(event, args)
        if msg is not None:
            __tracebackhide__ = True  # pytest hides this frame
            raise _exc(msg, why="refused by the Kavi runtime guard")


def _armed(marker: object, *, _audit: Any = sys.audit, _event: str = _ARMED_EVENT) -> bool:
    """Did the hook owning ``marker`` see an event raised just now?"""
    probe: list[object] = []
    _audit(_event, probe)
    return any(m is marker for m in probe)


def _not_installed() -> GuardViolation:
    return GuardViolation(
        "the runtime guard could not install its audit hook",
        why="another runtime guard is already active in this process and refuses new hooks",
        remedy="install guards before running untrusted code, and only once per process",
    )


def _ensure_scoped_hook(
    *,
    _installed: list[bool] = _STATE[5],
    _hook: Any = _scoped_hook,
    _add: Any = sys.addaudithook,
    _marker: object = _SCOPED_MARKER,
    _check: Any = _armed,
) -> None:
    if _installed:
        return
    _add(_hook)
    if not _check(_marker):
        raise _not_installed()
    _installed.append(True)


def _preload_posixsubprocess() -> Any:
    try:
        import _posixsubprocess
    except ImportError:
        return None
    return _posixsubprocess


def _make_pol(policy: GuardPolicy, store: list[str], report_fd: int) -> _Pol:
    roots = [str(p) for p in policy.write_roots]
    prefixes = tuple(r if r.endswith("/") else r + "/" for r in roots)
    code: list[str] = list(_LIB_PREFIXES)
    entries = [e or os.getcwd() for e in sys.path if isinstance(e, str)]
    for entry in [*roots, *entries]:
        real = os.path.realpath(entry)
        if os.path.isdir(real):
            prefix = real if real.endswith("/") else real + "/"
            if prefix not in code:
                code.append(prefix)
    protected = [str(p) for p in policy.protected]
    # where reads are confined, the import path is readable too (even entries that do not
    # exist yet, such as the standard library's zip: the import system probes them)
    reads = None if policy.read_roots is None else [str(p) for p in policy.read_roots]
    if reads is not None:
        reads += [os.path.realpath(e) for e in entries if os.path.realpath(e) != "/"]
    return (
        frozenset(roots),
        prefixes,
        tuple(code),
        policy.allow_subprocess,
        policy.allow_network,
        policy.allow_dynamic_code,
        store,
        report_fd,
        frozenset(protected),
        tuple(r if r.endswith("/") else r + "/" for r in protected),
        None if reads is None else frozenset(reads),
        tuple(r if r.endswith("/") else r + "/" for r in reads or ()),
    )


def _make_handle(store: list[str]) -> GuardHandle:
    def snapshot(*, _s: list[str] = store, _copy: Any = list) -> list[str]:
        copied: list[str] = _copy(_s)
        return copied

    return GuardHandle((snapshot,))


def _scoped_enter(
    scope: _GuardScope,
    *,
    _by_ident: dict[int, list[list[Any]]] = _STATE[2],
    _active: list[list[Any]] = _STATE[3],
    _getframe: Any = sys._getframe,
    _get_ident: Any = _thread.get_ident,
    _item: Any = _TUPLE_ITEM,
    _ensure: Any = _ensure_scoped_hook,
    _pairs: Any = _task_pairs,
    _mk: Any = _make_pol,
    _handle: Any = _make_handle,
    _preload: Any = _preload_posixsubprocess,
    _sys: Any = sys,
) -> GuardHandle:
    frame = _getframe(2)  # 0 this, 1 __enter__, 2 the frame running the with statement
    _sys.dont_write_bytecode = True  # a .pyc written under a guard is never trusted
    _preload()
    _ensure()
    store: list[str] = []
    pol = _mk(_item(scope, 0), store, -1)
    ident = _get_ident()
    rec: list[Any] = [scope, pol, frame, ident, _pairs()]
    _by_ident.setdefault(ident, []).append(rec)
    _active.append(rec)
    handle: GuardHandle = _handle(store)
    return handle


def _scoped_leave(
    scope: _GuardScope,
    *,
    _by_ident: dict[int, list[list[Any]]] = _STATE[2],
    _active: list[list[Any]] = _STATE[3],
    _inherited: dict[Any, list[list[Any]]] = _STATE[4],
    _getframe: Any = sys._getframe,
    _get_ident: Any = _thread.get_ident,
    _exit_code: Any = _CODE_SCOPE_EXIT,
    _pairs: Any = _task_pairs,
    _pair: Any = _thread_pair,
    _rec: Any = _record,
) -> str | None:
    ident = _get_ident()
    recs = _by_ident.get(ident)
    found: list[Any] | None = None
    for rec in recs or ():
        if rec[0] is scope:
            found = rec
    if recs is None or found is None:
        return "guarded(): __exit__ without a matching __enter__ in this thread"
    # only the with statement that entered may leave: 1 must be __exit__, 2 that frame
    if _getframe(1).f_code is not _exit_code or _getframe(2) is not found[2]:
        msg = "tamper: attempt to leave a guarded() block from inside it"
        _rec(found[1], msg)
        return msg
    keep: list[list[Any]] = []
    for rec in recs:
        if rec is not found:
            keep.append(rec)
    if keep:
        _by_ident[ident] = keep
    else:
        del _by_ident[ident]
    still: list[list[Any]] = []
    for rec in _active:
        if rec is not found:
            still.append(rec)
    _active[:] = still
    own = _pair()
    for pair in _pairs():
        if pair not in found[4] and pair != own:
            # started inside the block and still running: it stays guarded
            _inherited.setdefault(pair, []).append(found)
    found[2] = None
    return None


_GuardScope._enter_fn = _scoped_enter
_GuardScope._leave_fn = _scoped_leave


# --- process guard ----------------------------------------------------------------------------


def install_process_guard(policy: GuardPolicy, *, report_fd: int | None = None) -> GuardHandle:
    """Guard every thread of this process, permanently.

    ``report_fd``: if given, each refusal is also written at once to that file
    descriptor as a ``KAVI-GUARD-LIVE: <what>`` line (survives ``os._exit``).
    """
    if not isinstance(policy, GuardPolicy):
        raise TypeError("install_process_guard() needs a GuardPolicy")
    _ensure_scoped_hook()  # later guarded() calls must not need sys.addaudithook
    sys.dont_write_bytecode = True  # a .pyc written under a guard is never trusted
    store: list[str] = []
    pol = _make_pol(policy, store, -1 if report_fd is None else int(report_fd))
    if not policy.allow_subprocess:
        module = _preload_posixsubprocess()
        if module is not None:
            module.__dict__["fork_exec"] = _fork_exec_refused

    marker = object()

    def dispatch(
        event: str,
        args: tuple[Any, ...],
        *,
        _pol: _Pol = pol,
        _run: Any = _process_dispatch,
        _armed_event: str = _ARMED_EVENT,
        _marker: object = marker,
        _type: Any = type,
        _list_t: Any = list,
    ) -> str | None:
        if event == _armed_event:
            if args and _type(args[0]) is _list_t:
                args[0].append(_marker)
            return None
        msg: str | None = _run(_pol, event, args)
        return msg

    def hook(
        event: str,
        args: tuple[Any, ...],
        *,
        _rel: frozenset[str] = _REL,
        _d: Any = dispatch,
        _exc: type[GuardViolation] = GuardRefusal,
    ) -> None:
        if event in _rel:
            msg = _d(event, args)
            if msg is not None:
                __tracebackhide__ = True  # pytest hides this frame
                raise _exc(msg, why="refused by the Kavi runtime guard")

    sys.addaudithook(hook)
    if not _armed(marker):
        raise _not_installed()
    return _make_handle(store)


def read_violations(
    handle: GuardHandle,
    *,
    _type: Any = type,
    _item: Any = _TUPLE_ITEM,
    _handle_type: Any = GuardHandle,
    _prot: Any = _is_protected,
) -> list[str]:
    """``handle.violations``, read without trusting any Python-level class attribute.

    Guarded code in the same process can re-assign ``GuardHandle.violations``;
    code that must not trust it (the pytest plugin, ``run-skill`` after its block)
    should bind this function at import time and call it instead.
    """
    if _type(handle) is not _handle_type:
        raise TypeError("not a GuardHandle")
    snapshot = _item(handle, 0)
    if not _prot(snapshot):
        raise TypeError("GuardHandle does not hold the guard's own function")
    found: list[str] = snapshot()
    return found


del _STATE
