"""Secrets: where they come from, and how they are kept out of logs and artifacts.

Runtime secrets are environment variables named ``KAVI_SECRET_<NAME>``; a skill that
declared ``NAME`` receives the value at run time (TRUSTED skills only). Backend
credentials (e.g. ``ANTHROPIC_API_KEY``) are secrets too as far as logs go.
Everything Kavi writes from untrusted or external text passes :func:`redact`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from kavi.layout import SECRET_ENV_PREFIX

REDACTED = "[REDACTED]"
MIN_SECRET_LEN = 4


def secret_env_name(name: str) -> str:
    return f"{SECRET_ENV_PREFIX}{name}"


def secret_values(env: Mapping[str, str], extra_names: Iterable[str] = ()) -> list[str]:
    """Values that must never appear in anything Kavi writes.

    All ``KAVI_SECRET_*`` variables, plus the named variables (backend credentials,
    declared secret names). Longest first, so overlapping secrets redact fully.
    """
    names = {k for k in env if k.startswith(SECRET_ENV_PREFIX)}
    names.update(extra_names)
    values = {env[n] for n in names if n in env and len(env[n]) >= MIN_SECRET_LEN}
    return sorted(values, key=len, reverse=True)


def redact(text: str, secrets: Sequence[str]) -> str:
    for value in secrets:
        if value and value in text:
            text = text.replace(value, REDACTED)
    return text
