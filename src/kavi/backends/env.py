"""The scrubbed environment a build backend (or generated test) runs with.

An allowlist, not a denylist: ``PATH``, locale variables, a throwaway ``HOME`` and
``TMPDIR``, the backend's own credential variables (secrets: redacted wherever Kavi
writes) and its configured pass-through variables (not secrets: a gateway's base URL, a
proxy, a CA bundle, a cloud-provider switch). Never ``KAVI_SECRET_*``, never a variable
that is configured as a secret elsewhere, never one Kavi sets itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from kavi.layout import SECRET_ENV_PREFIX

PASSTHROUGH = ("PATH", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_MESSAGES", "TZ")

# Set by Kavi for every Claude Code run, whatever the configuration says (checked on the
# real CLI 2.1.197, D039): no telemetry, error reports, auto-update or other traffic to
# the vendor beyond the model's API; no auto-memory in the (throwaway) home; no CLAUDE.md
# from anywhere.
CLAUDE_SWITCHES: dict[str, str] = {
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_BUG_COMMAND": "1",
    "CLAUDE_CODE_DISABLE_FEEDBACK_SURVEY": "1",
    "CLAUDE_CODE_DISABLE_AUTO_MEMORY": "1",
    "CLAUDE_CODE_DISABLE_CLAUDE_MDS": "1",
}

_KAVI_SET = frozenset(
    {
        "HOME",
        "TMPDIR",
        "GIT_CONFIG_NOSYSTEM",
        "GIT_CONFIG_GLOBAL",
        "GIT_TERMINAL_PROMPT",
        "PYTHONDONTWRITEBYTECODE",
        "NO_COLOR",
        *PASSTHROUGH,
        *CLAUDE_SWITCHES,
    }
)
# Variables that would change what runs, or where the agent keeps its configuration.
_RESERVED_PREFIXES = ("KAVI_", "XDG_", "GIT_", "LD_", "DYLD_", "PYTHON", "BUN_")
_RESERVED_NAMES = frozenset(
    {"NODE_OPTIONS", "NODE_PATH", "CLAUDE_CONFIG_DIR", "CLAUDE_CODE_SAFE_MODE", "SHELL"}
)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def passthrough_problem(name: str) -> str | None:
    """Why ``name`` may not be passed through to a backend (None: it may)."""
    if not _NAME.fullmatch(name):
        return "not an environment variable name"
    if name in _KAVI_SET:
        return "Kavi sets it itself"
    if name in _RESERVED_NAMES or name.upper().startswith(_RESERVED_PREFIXES):
        return "it would change what runs or where the agent reads its configuration"
    return None


def scrubbed_env(
    source: Mapping[str, str],
    *,
    home: Path,
    tmp: Path,
    credentials: Iterable[str] = (),
    passthrough: Iterable[str] = (),
    forbidden: Iterable[str] = (),
) -> dict[str, str]:
    blocked = set(forbidden)
    env: dict[str, str] = {k: source[k] for k in PASSTHROUGH if k in source}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.setdefault("LANG", "C.UTF-8")
    for name in (*credentials, *passthrough):
        if name in source and not name.startswith(SECRET_ENV_PREFIX) and name not in blocked:
            env[name] = source[name]
    env.update(
        {
            "HOME": str(home),
            "TMPDIR": str(tmp),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "XDG_DATA_HOME": str(home / ".local/share"),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "GIT_TERMINAL_PROMPT": "0",
            "PYTHONDONTWRITEBYTECODE": "1",
            "NO_COLOR": "1",
        }
    )
    return env
