"""What the static gates ask of skill code, in words.

One text for the two places a skill's author reads it: every build packet (the coding
agent) and the README's "What a skill may do" (a human writing a skill by hand); a test
keeps the README in step. The rules themselves live in the scanner
(:mod:`kavi.policy.scanner`) and the invariants (:mod:`kavi.policy.invariants`).
"""

from __future__ import annotations

#: Markdown bullets, one rule each.
SKILL_CODE_RULES: tuple[str, ...] = (
    '- **Secrets** come from `ctx.secrets["NAME"]`, and only those the skill declares in '
    "`required_secrets`. Never `os.environ`, `os.getenv`, `os.path.expandvars`, `.env` loaders "
    "or `/proc/…/environ`; the only variables a skill may read by name are `TZ`, `LANG`, "
    "`LANGUAGE` and `LC_*` (setting or deleting variables is fine).",
    "- **Reads** go through `ctx.resolve_read_path(relative)` (refused outside the read roots). "
    "Never `ctx.vault_root / <input>` (a `..` or a symlink climbs out), the home directory, "
    "`.ssh`, `.aws`, `.git`, `.netrc`, `.env`, key files or `/proc` views of a process.",
    "- **Writes** go to `ctx.resolve_write_path(relative)` (FILE_WRITE skills only) — give it the "
    "whole relative path: a name joined on later with `/` or `os.path.join` may be absolute, and "
    "the join restarts there — or to a constant path below the allowed write paths; never to a "
    "path a caller passes in, whatever its default, nor next to the skill's own code.",
    "- **No system temporary directory, no `os.chdir`** in the skill: `tempfile` needs "
    "`dir=ctx.resolve_write_path(...)` (or keep data in memory: `io.BytesIO`). Tests may use "
    "pytest's `tmp_path`, `monkeypatch` and `tempfile`: verify gives them a private scratch "
    "directory.",
    "- **Module level** holds only imports, constants (`frozenset`/`tuple` of literals too), "
    "`re.compile(...)` of a constant, `logging.getLogger(__name__)`, type aliases, classes and "
    "functions; everything else belongs in `execute()` or a function.",
    "- **Imports** are static; from Kavi only `kavi.skills.base` and `kavi.errors`; no "
    "subprocesses, sockets (unless the class is NETWORK/MONEY/MESSAGING and the policy allows "
    "it), `eval`/`exec`/`compile`, `importlib` loaders, `pickle`, or `getattr`/`globals()` "
    "tricks.",
)
