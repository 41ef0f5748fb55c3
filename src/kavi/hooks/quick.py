"""The hook's fast lane: accept ordinary pushes without loading pygit2.

Most pushes to a protected branch touch no protected path. For those, a few ``git``
commands (which see the push's quarantined objects through the environment git gives
the hook; replace refs are ignored) decide as the full rules would:

* only branches are updated, none of them deleted, none an alias of a protected one;
* the governing branch is found as the full check finds it (``target_branch`` followed
  through the cached configs); the layout of every tip involved must be cached;
* on a protected branch the push adds commits: the old tip is an ancestor of the new one
  (asked first: a rewind is declined at once, however long the history) and stays on
  the new first-parent line;
* no new commit — on the line or reached through a merge — changes a protected path
  against its first parent: the top-level names each commit changes (``git diff-tree
  --stdin``, not recursive) must not be ``.kavi``, the skills dir, a non-ASCII name or a
  case variant of a protected directory; if the tests dir (or a nested skills dir's
  parent) changed, the changed paths below it are listed with literal pathspecs and
  matched here (folded prefix, ``test_skill_*.py`` glob).

Anything else goes to the full check in :mod:`kavi.gitstore.hookcheck`. The fast lane
can only say "accept" when the full check would; when in doubt it declines. It refuses
on its own only what needs no judgement and the full check refuses in the same words:
deleting, or rewinding, a branch pinned as protected (asked with ``git merge-base
--is-ancestor`` before anything else, so a rewind costs the same on any history).
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import subprocess
from collections.abc import Generator, Sequence
from pathlib import Path

from kavi.gitstore.rejection import Rejection, non_fast_forward, protected_delete, push_refused
from kavi.gitstore.symref import alias_target
from kavi.textsafe import fold

ZERO = "0" * 40
_ENV = {**os.environ, "GIT_NO_REPLACE_OBJECTS": "1"}
CONFIG_CACHE = "config-cache-2"  # written by kavi.gitstore.govstate
REGISTRY_CACHE = "registry-cache"  # likewise: registry blob -> the files it names


def _git(*args: str, stdin: bytes | None = None) -> bytes | None:
    try:
        proc = subprocess.run(
            ["git", "-c", "core.quotePath=false", *args],
            input=stdin,
            capture_output=True,
            timeout=120,
            check=False,
            env=_ENV,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout if proc.returncode == 0 else None


class _GitFailed(Exception):
    """git could not answer (it failed, or took too long): the full check decides."""


def _streamed(*args: str, stdin: bytes, timeout: float = 120.0) -> Generator[bytes, None, None]:
    """The NUL-terminated names a ``git`` command prints, as it prints them. If the reader
    stops early, git is killed; if git fails or outlasts ``timeout``, :class:`_GitFailed`.
    (``stdin`` is handed over as a file: no pipe to fill up while git's output waits.)"""
    import select
    import tempfile
    import time

    with tempfile.TemporaryFile() as feed:
        feed.write(stdin)
        feed.seek(0)
        try:
            proc = subprocess.Popen(
                ["git", "-c", "core.quotePath=false", *args],
                stdin=feed,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=_ENV,
            )
        except OSError:
            raise _GitFailed from None
    out = proc.stdout
    if out is None:  # pragma: no cover - a pipe was asked for
        raise _GitFailed
    deadline = time.monotonic() + timeout
    try:
        tail = b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([out], [], [], left)[0]:
                raise _GitFailed
            chunk = os.read(out.fileno(), 1 << 16)
            if not chunk:
                break
            *done, tail = (tail + chunk).split(b"\0")
            yield from (name for name in done if name)
        if tail:
            yield tail
        if proc.wait(timeout=max(deadline - time.monotonic(), 0.1)) != 0:
            raise _GitFailed
    except subprocess.TimeoutExpired:
        raise _GitFailed from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        out.close()


def _layout(tip: str, cache_dir: Path, pinned: dict[str, object]) -> dict[str, object] | None:
    """Protected branches, dirs and target as of ``tip``, from the config-blob cache (None: unknown)."""
    blob = _git("rev-parse", "--verify", "-q", f"{tip}:.kavi/config.yaml")
    if blob is None:
        # no committed config at the tip: the pinned layout applies only if .kavi is absent too
        return pinned if _git("rev-parse", "--verify", "-q", f"{tip}:.kavi") is None else None
    try:
        path = cache_dir / CONFIG_CACHE / f"{blob.decode().strip()}.json"
        data: dict[str, object] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if "target_branch" in data else None


def _is_ancestor(old: str, new: str) -> bool | None:
    """``git merge-base --is-ancestor``: True, False, or None when git cannot tell."""
    try:
        proc = subprocess.run(
            ["git", "merge-base", "--is-ancestor", old, new],
            capture_output=True,
            timeout=120,
            check=False,
            env=_ENV,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return {0: True, 1: False}.get(proc.returncode)


def refusals(updates: Sequence[tuple[str, str, str]], pinned: dict[str, object]) -> list[Rejection]:
    """Deletions and rewinds of branches pinned as protected (always protected, whatever
    the configuration says): refused without loading the full check."""
    protected = {f"refs/heads/{b}" for b in _names(pinned.get("protected", ["main"]))}
    out = []
    for old, new, ref in updates:
        if ref not in protected or set(old) == {"0"} or alias_target(os.environ.get("GIT_DIR", "."), ref):
            continue
        if set(new) == {"0"}:
            out.append(protected_delete(ref))
        elif _is_ancestor(old, new) is False:
            out.append(non_fast_forward(ref, old, new))
    return out


# Stand-ins for the two object ids in the refusals' words, made of characters no ref name
# or message holds, so the shell form can put the pushed ids where they stand.
_OLD, _NEW = "~" * 40, "^" * 40


def _printf_format(text: str, fields: Sequence[tuple[str, str]]) -> str:
    """``text`` and a newline as a ``printf`` format: literal but for ``fields`` (stand-in,
    conversion), each of which must occur exactly once when its turn comes."""
    out = text.replace("\\", "\\\\").replace("%", "%%")
    for stand_in, conversion in fields:
        if out.count(stand_in) != 1:
            raise ValueError(f"cannot make a printf format of {text!r}")
        out = out.replace(stand_in, conversion)
    if "~" in out or "^" in out:
        raise ValueError(f"cannot make a printf format of {text!r}")
    return out + "\n"


def shell_refusals(protected: Sequence[str]) -> str:
    """:func:`refusals` as POSIX shell, for the server hook's shim (``protected``: the
    branches pinned as protected when the hook was installed, as in ``hook.json``).

    A rewind or deletion of a pinned protected branch is refused before Python starts, in
    exactly the words :func:`refusals` prints (rendered here, from the same rejections),
    and only where :func:`refusals` would refuse: a new branch, an alias or a symlinked ref
    (see :func:`kavi.gitstore.symref.alias_target`), an unconfigured hook or an answer git
    cannot give are left to Python. It only ever refuses; everything it lets through is
    judged in full by Python. Reads the updates from ``$input``; exits 1 if it refused.
    """
    import shlex

    refs = sorted({f"refs/heads/{b}" for b in protected})
    if not refs:
        return ""
    cases = "|".join(shlex.quote(r) for r in refs)
    blocks = []
    for ref in refs:
        rewind = _printf_format(
            non_fast_forward(ref, _OLD, _NEW).render(None),
            [(_NEW, "%s"), (_OLD[:12], "%.12s"), (_NEW[:12], "%.12s")],
        )
        delete = _printf_format(protected_delete(ref).render(None), [])
        blocks.append(
            f"      {shlex.quote(ref)})\n"
            f"        kavi_rewind={shlex.quote(rewind)}\n"
            f"        kavi_delete={shlex.quote(delete)} ;;\n"
        )
    summary = _printf_format(push_refused("~~"), [("~~", "%d")])
    return (
        "# Deleting or rewinding a branch pinned as protected is refused here, before Python\n"
        "# starts, in the words of Kavi's own check (kavi.hooks.quick.refusals, rendered by\n"
        "# `git kavi hooks install`); all else goes on to that check.\n"
        "kavi_git_dir=${GIT_DIR:-.}\n"
        "kavi_base=\n"
        "kavi_here=$PWD\n"
        "kavi_refused=0\n"
        'if [ -r "$kavi_git_dir/kavi/hook.json" ] && [ -e "$kavi_git_dir/kavi/trusted_signers" ]; then\n'
        "  while read -r old new ref; do\n"
        f"    case $ref in {cases}) ;; *) continue ;; esac\n"
        "    case $old in *[!0]*) ;; *) continue ;; esac  # a new branch\n"
        "    # physical paths by `cd -P` in this shell (no subshell), back where it was after\n"
        '    if [ -z "$kavi_base" ]; then cd -P "$kavi_git_dir" && kavi_base=$PWD; cd "$kavi_here"; fi\n'
        '    [ -n "$kavi_base" ] || break\n'
        '    kavi_ref="$kavi_base/$ref"\n'
        "    # an alias (a symbolic or symlinked ref, a symlinked directory): Kavi's check decides\n"
        '    [ -L "$kavi_ref" ] && continue\n'
        '    if [ -e "${kavi_ref%/*}" ] || [ -L "${kavi_ref%/*}" ]; then\n'
        '      kavi_dir=; cd -P "${kavi_ref%/*}" 2>/dev/null && kavi_dir=$PWD; cd "$kavi_here"\n'
        '      [ "$kavi_dir" = "${kavi_ref%/*}" ] || continue\n'
        "    fi\n"
        '    if [ -f "$kavi_ref" ]; then\n'
        '      kavi_first=; read -r kavi_first < "$kavi_ref"\n'
        "      case $kavi_first in ref:*) continue ;; esac\n"
        "    fi\n"
        "    case $ref in\n" + "".join(blocks) + "    esac\n"
        "    case $new in\n"
        "      *[!0]*)\n"
        '        GIT_NO_REPLACE_OBJECTS=1 git merge-base --is-ancestor "$old" "$new" >/dev/null 2>&1\n'
        "        [ $? -eq 1 ] || continue  # an ancestor, or git cannot tell: Kavi's check decides\n"
        '        printf "$kavi_rewind" "$new" "$old" "$new" >&2 ;;\n'
        '      *) printf "$kavi_delete" >&2 ;;\n'
        "    esac\n"
        "    kavi_refused=$((kavi_refused + 1))\n"
        "  done <<KAVI_UPDATES\n"
        "$input\n"
        "KAVI_UPDATES\n"
        "fi\n"
        'if [ "$kavi_refused" -gt 0 ]; then\n'
        f'  printf {shlex.quote(summary)} "$kavi_refused" >&2\n'
        "  exit 1\n"
        "fi\n"
    )


def _trusted_tops(tip: str, layout: dict[str, object], cache_dir: Path) -> set[str] | None:
    """Folded top-level names of files the registry at ``tip`` still names outside the
    layout's directories (left behind by a ``skills_dir`` move); None: unknown."""
    skills, tests = str(layout.get("skills_dir", "skills")), str(layout.get("tests_dir", "tests"))
    blob = _git("rev-parse", "--verify", "-q", f"{tip}:{skills}/registry.yaml")
    if blob is None:
        return set()
    try:
        files = json.loads((cache_dir / REGISTRY_CACHE / f"{blob.decode().strip()}.json").read_text())
    except (OSError, ValueError):
        return None
    inside = (fold(skills) + "/", fold(tests) + "/")
    return {fold(str(f).split("/", 1)[0]) for f in files if not fold(str(f)).startswith(inside)}


def _names(value: object) -> set[str]:
    return {str(v) for v in value} if isinstance(value, list) else set()


def _new_commits(old: str, new: str) -> list[str] | None:
    """Every commit ``new`` adds to ``old`` (line and merged-in), if ``old`` stays on the
    first-parent line of ``new``; None otherwise (a rewind, a merge the wrong way round)."""
    if old == new or not _is_ancestor(old, new):
        return None  # nothing new, or not a fast-forward: asked before any history is streamed
    line = _git("rev-list", "--first-parent", "--parents", new, f"^{old}")
    if not line:
        return None
    last = line.decode().split("\n")[-2].split() if line.endswith(b"\n") else line.decode().split()
    if len(last) < 2 or last[1] != old:
        return None  # the old tip is not on the new first-parent line
    every = _git("rev-list", new, f"^{old}")
    return None if every is None else every.decode().split()


def _odd(name: str) -> bool:
    """A name some filesystem reads as another: non-ASCII, an NTFS short name (``~1``),
    a trailing dot or space, a stream suffix."""
    return not name.isascii() or "~" in name or ":" in name or name.endswith((".", " "))


def _ordinary(
    old: str,
    new: str,
    commits: list[str],
    layout: dict[str, object],
    trusted: frozenset[str] | set[str] = frozenset(),
) -> bool:
    skills, tests = str(layout.get("skills_dir", "skills")), str(layout.get("tests_dir", "tests"))
    kavi_top, skills_top, tests_top = (fold(p.split("/", 1)[0]) for p in (".kavi", skills, tests))
    # top-level names each commit changes against its first parent (no recursion: cheap),
    # oldest commit first, judged as git prints them: the first that needs the full check
    # stops git (on a wide tree each commit's diff reads two big root trees)
    names = _streamed(
        "diff-tree", "--stdin", "--no-commit-id", "--name-only", "-m", "--first-parent", "-z",
        stdin="".join(f"{c}\n" for c in reversed(commits)).encode(),
    )  # fmt: skip
    deeper = False
    seen: set[bytes] = set()
    with contextlib.closing(names):
        try:
            for raw in names:
                if raw in seen:
                    continue
                seen.add(raw)
                name = raw.decode("utf-8", "replace")
                folded = fold(name)
                if _odd(name) or folded in (kavi_top, ".gitattributes") or folded in trusted:
                    return False  # an alias, .kavi, .gitattributes, a trusted file's dir: full check
                if folded == skills_top and "/" not in skills:
                    return False  # the skills dir changed
                if folded in (skills_top, tests_top):
                    if name not in (skills.split("/", 1)[0], tests.split("/", 1)[0]):
                        return False  # a case variant of a protected directory
                    deeper = True
        except _GitFailed:
            return False
    if not deeper:
        return True
    # a nested skills dir or the tests dir changed: look at the paths (literal pathspecs
    # let git prune its walk; the folded prefix and the test-file glob are matched here)
    # whole top-level directories: a variant of a nested name (``lib/Skills``) is below them
    tops_of = sorted({skills.split("/", 1)[0], tests.split("/", 1)[0]})
    changed = _git(
        "log", "--diff-merges=first-parent", "--no-renames", "--format=",
        "--name-only", "-z", f"{old}..{new}", "--", *(f":(literal){t}" for t in tops_of),
    )  # fmt: skip
    if changed is None:
        return False
    skills_prefix, tests_prefix = fold(skills) + "/", fold(tests) + "/"
    for raw in changed.split(b"\0"):
        text = raw.decode("utf-8", "replace").strip("\n")
        if any(_odd(part) for part in text.split("/")) or fold(text.rsplit("/", 1)[-1]) == ".gitattributes":
            return False
        path = fold(text)
        if path.startswith(skills_prefix):
            return False
        if path.startswith(tests_prefix) and fnmatch.fnmatch(path[len(tests_prefix) :], "test_skill_*.py"):
            return False
    return True


def _same_dirs(a: dict[str, object], b: dict[str, object]) -> bool:
    return all(a.get(k, d) == b.get(k, d) for k, d in (("skills_dir", "skills"), ("tests_dir", "tests")))


def _governing_layout(
    cache_dir: Path, pinned: dict[str, object]
) -> tuple[dict[str, object], set[str]] | None:
    """The layout the full check governs by — ``target_branch`` followed from the first
    pinned branch (else the pinned layout) — and every branch a config on the way protects."""
    order = pinned.get("protected", ["main"])
    branch = str(order[0]) if isinstance(order, list) and order else "main"
    found: dict[str, object] = pinned
    protected = _names(order)
    seen: set[str] = set()
    while branch not in seen:
        seen.add(branch)
        tip = _git("rev-parse", "--verify", "-q", f"refs/heads/{branch}")
        if tip is None:
            break
        layout = _layout(tip.decode().strip(), cache_dir, pinned)
        if layout is None:
            return None
        found = layout
        protected |= _names(layout.get("protected"))
        branch = str(layout.get("target_branch", branch))
    return found, protected


def accepts(updates: Sequence[tuple[str, str, str]], cache_dir: Path, pinned: dict[str, object]) -> bool:
    resolved = _governing_layout(cache_dir, pinned)
    if resolved is None:
        return False
    governing, protected = resolved
    protected_refs = {f"refs/heads/{b}" for b in protected}
    folded = {fold(r) for r in protected_refs}
    for old, new, ref in updates:
        if not ref.startswith("refs/heads/") or set(new) == {"0"}:
            return False  # tags, notes, Kavi's refs, deletions: the full check decides
        if fold(ref) in folded and ref not in protected_refs:
            return False
        if not ref.isascii() or alias_target(os.environ.get("GIT_DIR", "."), ref):
            return False  # look-alike names and aliases (master -> main): the full check decides
        if ref not in protected_refs:
            continue
        if set(old) == {"0"}:
            return False
        layout = _layout(old, cache_dir, pinned)
        if layout is None or not _names(layout.get("protected")) <= protected:
            return False  # the old tip protects more branches than the governing config: full check
        commits = _new_commits(old, new)
        trusted = _trusted_tops(old, layout, cache_dir)
        if commits is None or trusted is None:
            return False
        # judged by the branch's own layout and by the governing one, as the full check does
        layouts = [layout] if _same_dirs(layout, governing) else [layout, governing]
        if not all(_ordinary(old, new, commits, lay, trusted) for lay in layouts):
            return False
    return True
