"""Agent-chosen text made safe to compare and to show.

File names, symlink targets and transcripts come from an untrusted backend. Before
Kavi compares a name with a protected one it is :func:`fold`-ed the way a
case-insensitive, normalising filesystem would see it; before Kavi prints one to a
terminal or writes it into markdown, :func:`printable` turns control characters
(escape sequences, newlines, bidi overrides) into visible ``\\x1b``-style escapes.
Standard library only: the server hook's fast lane imports this.
"""

from __future__ import annotations

import fnmatch
import re
import unicodedata

# Bidirectional overrides and isolates: they reorder what a reader sees (CVE-2021-42574).
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")
_NTFS_GIT_NAMES = frozenset({".git", "git~1"})


def fold(name: str) -> str:
    """A path as a case-insensitive, normalising filesystem sees it.

    NFKC (``ſ`` → ``s``, ``K`` → ``K``), then casefold, then drop format characters
    (zero-width joiners and the like, which HFS+ ignores in names).
    """
    text = unicodedata.normalize("NFKC", name).casefold()
    return "".join(c for c in text if unicodedata.category(c) != "Cf")


def is_git_dir_name(component: str) -> bool:
    """Would some filesystem git supports read this path component as ``.git``?

    ``.GIT`` (case-insensitive), ``.g\\u200cit`` (HFS+ ignores the joiner), ``git~1``
    (the NTFS short name), ``.git.`` / ``.git `` (NTFS drops trailing dots and spaces)
    and ``.git::$INDEX_ALLOCATION`` (an NTFS stream name).
    """
    return fold_component(component) in _NTFS_GIT_NAMES


_SHORT_NAME = re.compile(r"([^~./]{1,6})~[0-9]+(?:\.[^.]{0,3})?")
_HASHED_STEM = re.compile(r"[^~./]{2}[0-9a-f]{4}")


def fold_component(component: str) -> str:
    """One path component as the most forgiving filesystem git runs on reads it:
    :func:`fold`, then what NTFS ignores (a ``:stream`` suffix, trailing dots and spaces)."""
    return fold(component).split(":", 1)[0].rstrip(" .")


def _short_stem(long_name: str) -> str:
    """The stem Windows derives for a long name's 8.3 short name (folded): leading dots,
    spaces and inner dots dropped, the part before the extension, at most 6 characters."""
    name = long_name.lstrip(".").replace(" ", "")
    stem = name.rsplit(".", 1)[0] if "." in name else name
    return stem.replace(".", "")[:6]


def same_component(name: str, pattern: str) -> bool:
    """Could the component ``name`` open the file ``pattern`` names (both already passed
    through :func:`fold_component`; ``pattern`` may be a glob) on some filesystem? Equal
    names, a glob match, or an NTFS 8.3 short name: ``KAVI~1`` for ``.kavi``,
    ``TEST_S~1.PY`` for ``test_skill_x.py``, or the hashed form (two characters, four hex
    digits: ``KAF836~1``) Windows uses after collisions."""
    if fnmatch.fnmatchcase(name, pattern):
        return True
    short = _SHORT_NAME.fullmatch(name)
    if short is None:
        return False
    wanted, stem = short.group(1), _short_stem(pattern)
    if "*" in stem:  # a glob: the fixed part decides, the rest could be anything
        fixed = stem.split("*", 1)[0]
        exact = wanted.startswith(fixed) if len(fixed) < 6 else wanted == fixed[:6]
    else:
        exact = wanted == stem
    return exact or (_HASHED_STEM.fullmatch(wanted) is not None and wanted[:2] == stem[:2])


def printable(text: str, *, multiline: bool = False) -> str:
    """``text`` with every control character shown as an escape instead of acting.

    C0 and C1 controls, DEL and bidi overrides become ``\\xNN`` / ``\\uNNNN``; with
    ``multiline`` newlines and tabs are kept (for transcripts inside a code fence).
    """
    out: list[str] = []
    for ch in text:
        code = ord(ch)
        if multiline and ch in "\n\t":
            out.append(ch)
        elif code < 0x20 or 0x7F <= code < 0xA0:
            out.append(f"\\x{code:02x}")
        elif ch in _BIDI or 0xD800 <= code < 0xE000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)
