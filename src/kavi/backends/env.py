"""The scrubbed environment a build backend (or generated test) runs with.

An allowlist, not a denylist: ``PATH``, locale variables, a throwaway ``HOME`` and
``TMPDIR``, and the backend's own credential variables. Never ``KAVI_SECRET_*``,
never a variable that is configured as a secret elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from kavi.layout import SECRET_ENV_PREFIX

PASSTHROUGH = ("PATH", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_MESSAGES", "TZ")


def scrubbed_env(
    source: Mapping[str, str],
    *,
    home: Path,
    tmp: Path,
    credentials: Iterable[str] = (),
    forbidden: Iterable[str] = (),
) -> dict[str, str]:
    blocked = set(forbidden)
    env: dict[str, str] = {k: source[k] for k in PASSTHROUGH if k in source}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.setdefault("LANG", "C.UTF-8")
    for name in credentials:
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
