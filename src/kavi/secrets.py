"""Secrets: where they come from, and how they are kept out of logs and artifacts.

Runtime secrets are environment variables named ``KAVI_SECRET_<NAME>``; a skill that
declared ``NAME`` receives the value at run time (TRUSTED skills only). Backend
credentials (e.g. ``ANTHROPIC_API_KEY``) are secrets too as far as logs go.
Everything Kavi writes from untrusted or external text passes :func:`redact`.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache

from kavi.layout import SECRET_ENV_PREFIX

REDACTED = "[REDACTED]"
MIN_SECRET_LEN = 4


def secret_env_name(name: str) -> str:
    return f"{SECRET_ENV_PREFIX}{name}"


def secret_values(
    env: Mapping[str, str], extra_names: Iterable[str] = (), url_names: Iterable[str] = ()
) -> list[str]:
    """Values that must never appear in anything Kavi writes.

    All ``KAVI_SECRET_*`` variables, plus the named variables (backend credentials,
    declared secret names), plus the password of a URL in one of ``url_names`` (a proxy
    passed through as ``http://user:password@host``: the rest of it is no secret).
    Longest first, so overlapping secrets redact fully.
    """
    names = {k for k in env if k.startswith(SECRET_ENV_PREFIX)}
    names.update(extra_names)
    values = {env[n] for n in names if n in env and len(env[n]) >= MIN_SECRET_LEN}
    for name in url_names:
        password = _url_password(env.get(name, ""))
        if password:
            from urllib.parse import unquote

            values.update(p for p in (password, unquote(password)) if len(p) >= MIN_SECRET_LEN)
    return sorted(values, key=len, reverse=True)


def _url_password(value: str) -> str | None:
    if "@" not in value:
        return None
    from urllib.parse import urlsplit

    try:
        return urlsplit(value).password or None
    except ValueError:
        return None


MIN_FORM_LEN = 8


@lru_cache(maxsize=256)
def secret_forms(value: str) -> tuple[bytes, ...]:
    """``value`` and the trivial encodings an agent could smuggle it out in, as bytes.

    Reversed, hex (both cases), UTF-16 (both byte orders), and base64 / URL-safe base64
    at each of the three alignments (only the characters that depend on ``value`` alone,
    so the form is found whatever bytes surround it). Longest first. Values shorter
    than 8 characters get no encoded forms: those would match ordinary hex and base64.
    """
    raw = value.encode("utf-8", "surrogateescape")
    if len(raw) < MIN_FORM_LEN:
        return (raw,)  # short values: their encodings would match ordinary hex and base64
    forms = {raw, raw[::-1], raw.hex().encode(), raw.hex().upper().encode()}
    forms.update({value.encode("utf-16-le", "surrogatepass"), value.encode("utf-16-be", "surrogatepass")})
    for pad, skip_bytes in ((0, 0), (1, 2), (2, 1)):
        groups = (len(raw) - skip_bytes) // 3
        start = 0 if pad == 0 else 4
        encoded = base64.b64encode(b"\0" * pad + raw)[start : start + 4 * groups]
        forms.update({encoded, encoded.replace(b"+", b"-").replace(b"/", b"_")})
    kept = [f for f in forms if len(f) >= MIN_FORM_LEN or f == raw]
    return tuple(sorted(kept, key=len, reverse=True))


def _text_forms(secrets: Sequence[str]) -> list[str]:
    out: list[str] = []
    for value in secrets:
        if value:
            out.extend(f.decode("utf-8", "surrogateescape") for f in secret_forms(value))
    return sorted(set(out), key=len, reverse=True)


def redact(text: str, secrets: Sequence[str]) -> str:
    """``text`` with every secret value, and every encoded form of one, replaced."""
    for form in _text_forms(secrets):
        if form in text:
            text = text.replace(form, REDACTED)
    return text


def redact_bytes(data: bytes, secrets: Sequence[str]) -> tuple[bytes, bool]:
    """``data`` with every form of every secret replaced; and whether any was found."""
    found = False
    forms = sorted({f for v in secrets if v for f in secret_forms(v)}, key=len, reverse=True)
    for form in forms:
        if form in data:
            found = True
            data = data.replace(form, REDACTED.encode())
    return data, found
