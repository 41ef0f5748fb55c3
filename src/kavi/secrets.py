"""Secrets: where they come from, and how they are kept out of logs and artifacts.

Runtime secrets are environment variables named ``KAVI_SECRET_<NAME>``; a skill that
declared ``NAME`` receives the value at run time (TRUSTED skills only). Backend
credentials (e.g. ``ANTHROPIC_API_KEY``) are secrets too as far as logs go.
Everything Kavi writes from untrusted or external text passes :func:`redact`.
"""

from __future__ import annotations

import base64
import json
import re
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


# Names of variables that hold credentials whoever set them (AWS_SECRET_ACCESS_KEY,
# GITHUB_TOKEN, NPM_AUTH_TOKEN, DATABASE_PASSWORD, ...).
_CREDENTIAL_NAME = re.compile(
    r"TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|ACCESS_KEY|PRIVATE_KEY|CREDENTIAL|AUTH", re.IGNORECASE
)
MIN_GUESSED_LEN = 8


def environment_secrets(env: Mapping[str, str], extra_names: Iterable[str] = ()) -> list[str]:
    """:func:`secret_values` plus the values of every variable whose name says it holds a
    credential (at least 8 characters): what must not reach a record even if some
    process got hold of it."""
    guessed = [k for k, v in env.items() if _CREDENTIAL_NAME.search(k) and len(v) >= MIN_GUESSED_LEN]
    return secret_values(env, [*extra_names, *guessed])


MIN_FORM_LEN = 8


@lru_cache(maxsize=256)
def secret_forms(value: str) -> tuple[bytes, ...]:
    """``value`` and the trivial encodings an agent could smuggle it out in, as bytes.

    As a JSON (or Python) string literal would spell it (a transcript of JSON events holds
    a ``"`` or ``\\`` in a secret escaped); reversed, hex (both cases), UTF-16 (both byte
    orders), and base64 / URL-safe base64
    at each of the three alignments (only the characters that depend on ``value`` alone,
    so the form is found whatever bytes surround it). Longest first. Values shorter
    than 8 characters get no encoded forms: those would match ordinary hex and base64.
    """
    raw = value.encode("utf-8", "surrogateescape")
    escaped = {
        json.dumps(value, ensure_ascii=ascii)[1:-1].encode("utf-8", "surrogatepass")
        for ascii in (False, True)
    } - {raw}
    if len(raw) < MIN_FORM_LEN:  # short values: their encodings would match ordinary hex and base64
        return tuple(sorted({raw, *escaped}, key=len, reverse=True))
    forms = {raw, *escaped, raw[::-1], raw.hex().encode(), raw.hex().upper().encode()}
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


# Credentials recognisable by their shape alone, whoever holds them: they never reach an
# artifact or a run record, even when no variable named them (a skill read a key file, a
# user pasted a token into an input). Narrow on purpose: each shape is a vendor's fixed
# prefix or a PEM armour line, so ordinary text, hashes and ids do not match.
_PRIVATE_KEY = re.compile(
    r"-----BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY((?: BLOCK)?)-----"
    r"(?:.{0,65536}?-----END \1PRIVATE KEY\2-----|(?:[A-Za-z0-9+/=\r\n]|\\[rn])*)",
    re.DOTALL,
)
_TOKEN_SHAPES = re.compile(
    r"\bsk-ant-[A-Za-z0-9_-]{20,}"  # Anthropic
    r"|\bsk-(?:proj-|svcacct-)?[A-Za-z0-9_-]{32,}"  # OpenAI
    r"|\bgh[pousr]_[A-Za-z0-9]{36,}|\bgithub_pat_[A-Za-z0-9_]{22,}"  # GitHub
    r"|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"  # AWS access key id
    r"|\bxox[abposr]-[A-Za-z0-9-]{10,}"  # Slack
    r"|\bAIza[0-9A-Za-z_-]{35}"  # Google API key
    r"|\bglpat-[A-Za-z0-9_-]{20,}"  # GitLab
    r"|\bnpm_[A-Za-z0-9]{36}"  # npm
)
PRIVATE_KEY_REDACTED = "[REDACTED PRIVATE KEY]"


def redact_shapes(text: str) -> str:
    """``text`` without private-key blocks (``-----BEGIN … PRIVATE KEY-----`` … ``END``,
    also as a JSON string spells it) and well-known credential shapes."""
    if "PRIVATE KEY" in text:
        text = _PRIVATE_KEY.sub(PRIVATE_KEY_REDACTED, text)
    return _TOKEN_SHAPES.sub(REDACTED, text)


def redact_record(text: str, secrets: Sequence[str]) -> str:
    """What every artifact and record passes before it is written: the known secret values
    (and their encodings) and the credential shapes (:func:`redact_shapes`)."""
    return redact_shapes(redact(text, secrets))
