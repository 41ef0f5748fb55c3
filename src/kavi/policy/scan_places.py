"""Where a path lands: the places the scanner judges file-system access against.

The path folder (:mod:`kavi.policy.scan_pathfold`) turns a path expression into
candidates ``(text, complete)``; when only the start is known, ``text`` is that start and
``complete`` is False. Paths the skill contract sanctions start with a *root marker*
instead of a directory name, so that joins, ``parent`` and f-strings keep working on
them:

* :data:`WRITE_ROOT` — what ``ctx.resolve_write_path(...)`` returned (inside the
  allowed write paths, checked at run time);
* :data:`READ_ROOT` — what ``ctx.resolve_read_path(...)`` returned (inside the read
  roots: readable, not writable);
* :data:`VAULT_ROOT` — ``ctx.vault_root`` itself, not resolved: a computed part joined
  to it can climb out (``..``, symlinks);
* :data:`SCRATCH` — pytest's ``tmp_path`` and, in a test module, the temporary
  directory (verify gives the tests a private scratch directory);
* :data:`CODE_ROOT` — the directory of the scanned module (``__file__``): the skill's
  own verified code, readable and never writable;
* :data:`NOT_A_PATH` — a file descriptor or file object, not a name;
* :data:`JOINED` — anything at all: a part joined with ``/`` or ``os.path.join`` whose
  start is computed at run time may be absolute, and the join restarts there.

:func:`judge_write`, :func:`judge_read` and :func:`judge_chdir` say what is wrong with
one candidate (a :class:`Verdict`) or return None.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from typing import NamedTuple

WRITE_ROOT = "\x00w"
READ_ROOT = "\x00r"
VAULT_ROOT = "\x00v"
SCRATCH = "\x00t"
CODE_ROOT = "\x00c"
NOT_A_PATH = "\x00f"
JOINED = "\x00j"
MARK = "\x00"

_ROOT_NAMES = {
    WRITE_ROOT: "<ctx.resolve_write_path(...)>",
    READ_ROOT: "<ctx.resolve_read_path(...)>",
    VAULT_ROOT: "<ctx.vault_root>",
    SCRATCH: "<tmp_path>",
    CODE_ROOT: "<this module's directory>",
    NOT_A_PATH: "<file object>",
    JOINED: "<a part joined at run time>",
}

#: File names that hold credentials (also what build sandboxes withhold by default).
SECRET_FILE_PATTERNS: tuple[str, ...] = (
    ".env",
    ".env.*",
    "*.pem",
    "*.key",
    "id_rsa*",
    "id_ecdsa*",
    "id_ed25519*",
    ".netrc",
    ".npmrc",
    ".pypirc",
    ".git-credentials",
    "credentials.json",
    "secrets.*",
)
_MORE_SECRET_FILES = ("_netrc", ".pgpass", "id_dsa*", ".vault-token", ".my.cnf", "*.p12", "*.pfx")
_SECRET_FILE = re.compile(
    "|".join(fnmatch.translate(p) for p in (*SECRET_FILE_PATTERNS, *_MORE_SECRET_FILES)), re.IGNORECASE
)
#: Directories that hold credentials or another repository's configuration.
_SECRET_DIRS = frozenset((".ssh", ".aws", ".gnupg", ".kube", ".docker", ".azure", ".git", ".password-store"))
_SECRET_PREFIXES = (
    "/run/secrets/",
    "/var/run/secrets/",
    "/etc/ssh/",
    "/etc/shadow",
    "/etc/gshadow",
    "/etc/sudoers",
)
_HOMES = ("/home/", "/root/", "/Users/", "/var/root/")
_HOME = re.compile(r"~[^/\s]*(/|$)")
_PROC_ENV = frozenset(("environ",))
_PROC_SECRET = frozenset(("cmdline", "mem", "root", "cwd", "fd", "map_files"))
_DEVICES = frozenset(("/dev/null", "/dev/stdout", "/dev/stderr"))
_DRIVE = re.compile(r"^[A-Za-z]:/")


class Verdict(NamedTuple):
    rule: str
    detail: str


def show(text: str, complete: bool) -> str:
    """A candidate as the user reads it: root markers named, an unknown tail as ``…``."""
    shown = text
    if text.startswith(MARK):
        shown = _ROOT_NAMES.get(text[:2], "<?>") + text[2:]
    return repr(shown if complete else shown + "…")


def climbs(rest: str, complete: bool) -> bool:
    """Does ``rest`` (below some root) climb above that root with ``..``?"""
    if not complete:
        cut = rest.rfind("/")
        rest = rest[: cut + 1] if cut >= 0 else ""
    depth = 0
    for part in rest.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        else:
            depth += 1
    return False


def _parts(text: str, complete: bool) -> list[str]:
    """The path components known for certain (an unknown tail's partial one dropped)."""
    parts = text.replace("\\", "/").split("/")
    if not complete:
        parts = parts[:-1]
    return [p for p in parts if p not in ("", ".")]


def unknown_start(text: str) -> bool:
    """Is nothing known of a partly known path but ``./`` (``f"{root}/x"``)?"""
    t = text.replace("\\", "/")
    while t.startswith("./"):
        t = t[2:]
    return t in ("", ".")


def is_home(text: str) -> bool:
    if text[:1] == "~":
        return bool(_HOME.match(text))
    return text.startswith(_HOMES) or text in ("/root", "/home")


def _secret_place(text: str, complete: bool) -> Verdict | None:
    """Is this a place where credentials live (home, ``.ssh``, ``.env``, /proc of a process)?"""
    t = text.replace("\\", "/")
    while t.startswith("//"):
        t = t[1:]
    if is_home(t):
        return Verdict("KS602", "the home directory (keys, tokens, other programs' configuration)")
    if t.startswith("/proc/") or t == "/proc":
        parts = _parts(t, complete)
        if complete and parts and parts[-1] in _PROC_ENV:
            return Verdict("KS601", "a process's environment (/proc/…/environ)")
        if any(p in _PROC_SECRET or p in _PROC_ENV for p in parts[2:]):
            return Verdict("KS602", "another view of a process's memory, files or command line (/proc)")
        if not complete:
            return Verdict("KS601", "a /proc path built at run time can name a process's environment")
        return None
    if t.startswith(_SECRET_PREFIXES):
        return Verdict("KS602", "a system secret store")
    parts = _parts(t, complete)
    for part in parts:
        if part in _SECRET_DIRS:
            return Verdict("KS602", f"{part}/ holds credentials or another repository's configuration")
    if complete and parts and _SECRET_FILE.fullmatch(parts[-1]):
        return Verdict("KS602", f"{parts[-1]!r} is a credentials file")
    return None


def judge_read(text: str, complete: bool) -> Verdict | None:
    """What is wrong with reading (or listing) this candidate?"""
    if text.startswith(MARK):
        root, rest = text[:2], text[2:]
        if root in (NOT_A_PATH, JOINED):
            return None
        if climbs(rest, complete):
            return Verdict("KS603", f"climbs out of {_ROOT_NAMES[root]} with '..'")
        if root == VAULT_ROOT and not complete:
            return Verdict(
                "KS603",
                "ctx.vault_root joined with a part computed at run time can climb out ('..', symlinks); "
                "use ctx.resolve_read_path(...)",
            )
        if root in (SCRATCH, CODE_ROOT):
            return None  # the test's own files, the skill's own code
        return _secret_place(rest.lstrip("/"), complete)
    if MARK in text:
        return None
    return _secret_place(text, complete)


def outside_allowed(text: str, complete: bool, allowed: tuple[tuple[str, bool], ...]) -> bool:
    """Is a plain path (or a path known to start with ``text``) certainly outside the
    allowed write paths (``(prefix, absolute)`` pairs)?"""
    t = text.replace("\\", "/")
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


_USE_RESOLVE = "obtain write paths from ctx.resolve_write_path(...)"


def judge_write(text: str, complete: bool, allowed: tuple[tuple[str, bool], ...]) -> Verdict | None:
    """What is wrong with writing to this candidate?"""
    if text.startswith(MARK):
        root, rest = text[:2], text[2:]
        if root == NOT_A_PATH:
            return None
        if root == JOINED:
            return Verdict(
                "KS502",
                "a part joined with / or os.path.join at run time may be absolute, and the join "
                "restarts there; pass the whole relative path to ctx.resolve_write_path(...)",
            )
        if root == READ_ROOT:
            return Verdict("KS502", f"a path from ctx.resolve_read_path(...) is for reading; {_USE_RESOLVE}")
        if root == CODE_ROOT:
            return Verdict("KS501", f"the skill's own code is read-only; {_USE_RESOLVE}")
        if climbs(rest, complete):
            return Verdict("KS501", f"climbs out of {_ROOT_NAMES[root]} with '..'")
        if root == VAULT_ROOT:
            if not complete:
                return Verdict(
                    "KS502",
                    "ctx.vault_root joined with a part computed at run time can climb out; " + _USE_RESOLVE,
                )
            parts = _parts(rest, complete)
            if parts and parts[0] == "kavi":
                return Verdict("KS501", "Kavi's own artifacts (vault_out/kavi/) are not writable")
        if ".git" in _parts(rest, complete):
            return Verdict("KS501", "git metadata is not writable")
        return None
    if MARK in text:
        return Verdict("KS502", f"the path is assembled around a sanctioned one; {_USE_RESOLVE}")
    if not complete and unknown_start(text):
        return Verdict("KS502", f"the start of the path is computed at run time; {_USE_RESOLVE}")
    if outside_allowed(text, complete, allowed):
        return Verdict("KS501", "outside allowed_write_paths")
    if ".git" in _parts(text, complete):
        return Verdict("KS501", "git metadata is not writable")
    return None


def judge_chdir(text: str, complete: bool) -> Verdict | None:
    """What is wrong with making this candidate the working directory?"""
    if text.startswith((WRITE_ROOT, READ_ROOT, SCRATCH)) and not climbs(text[2:], complete):
        return None
    return Verdict(
        "KS504",
        "changing the working directory changes what every relative path means "
        "(use absolute paths from ctx.resolve_write_path(...) / ctx.resolve_read_path(...))",
    )
