"""SSH signatures (the SSHSIG format of ``ssh-keygen -Y``) checked in-process (D064).

``ssh-keygen -Y verify`` costs a process per signature (~5 ms); a fresh clone importing a
hundred thousand ledger events would spend minutes on it. This module checks the same
signatures with the ``cryptography`` package, for the cases whose meaning is plain:

* the allowed-signers entries for the signature's key carry no option but
  ``namespaces="…"`` (no ``valid-after``/``valid-before``, no ``cert-authority``), and
  principals without patterns;
* the key is Ed25519, ECDSA (nistp256/384/521) or RSA with an ``rsa-sha2-256/512``
  signature; the signature's namespace is the expected one and listed in ``namespaces``.

It only ever says *good*: a signature it cannot judge, or judges bad, goes to
``ssh-keygen`` (:func:`kavi.sshsig.verify`), which stays the reference and has the last
word on every refusal. The tests compare both on the same good and bad signatures.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Iterator

from kavi.sshsig import AllowedSigner, parse_allowed_signers

MAGIC = b"SSHSIG"
_PATTERN_CHARS = set("*?!")
_HASHES = {"sha256": hashlib.sha256, "sha512": hashlib.sha512}


def _strings(data: bytes) -> Iterator[bytes]:
    offset = 0
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        offset += 4
        if offset + length > len(data):
            raise ValueError("truncated")
        yield data[offset : offset + length]
        offset += length


def _string(value: bytes) -> bytes:
    return struct.pack(">I", len(value)) + value


def parse_blob(armored: str) -> tuple[bytes, bytes, bytes, str, bytes] | None:
    """(public key blob, namespace, reserved, hash algorithm, signature blob) of an armored
    SSHSIG, or None if it is not one."""
    lines = [ln for ln in armored.strip().splitlines() if ln and not ln.startswith("-----")]
    try:
        blob = base64.b64decode("".join(lines), validate=True)
    except ValueError:
        return None
    if not blob.startswith(MAGIC) or len(blob) < 10:
        return None
    (version,) = struct.unpack(">I", blob[6:10])
    if version != 1:
        return None
    try:
        parts = list(_strings(blob[10:]))
    except (ValueError, struct.error):
        return None
    if len(parts) != 5:
        return None
    key, namespace, reserved, hash_alg, sig = parts
    return key, namespace, reserved, hash_alg.decode("ascii", "replace"), sig


class _Signers:
    """An allowed-signers text, indexed by key blob (parsed once per text)."""

    def __init__(self, text: str) -> None:
        self.by_key: dict[bytes, list[AllowedSigner]] = {}
        for entry in parse_allowed_signers(text):
            try:
                blob = base64.b64decode(entry.public_key.split()[1], validate=True)
            except (ValueError, IndexError):
                continue
            self.by_key.setdefault(blob, []).append(entry)


_PARSED: dict[str, _Signers] = {}


def _signers(text: str) -> _Signers:
    found = _PARSED.get(text)
    if found is None:
        if len(_PARSED) > 64:
            _PARSED.clear()
        found = _PARSED[text] = _Signers(text)
    return found


def _plain_namespaces(options: str) -> set[str] | None:
    """The namespaces an entry allows (empty set: any), or None if its options are more
    than ``namespaces="…"`` without patterns."""
    if not options:
        return set()
    opts = options.strip()
    if not (opts.startswith('namespaces="') and opts.endswith('"') and opts.count('"') == 2):
        return None
    names = {n.strip() for n in opts[len('namespaces="') : -1].split(",")}
    if any(_PATTERN_CHARS & set(n) for n in names):
        return None
    return names


def good_principal(
    payload: bytes, armored: str, allowed_signers: str, namespace: str, principal: str | None
) -> str | None:
    """The principal under which the signature is good, if this module can say so for
    certain; None otherwise (ask ``ssh-keygen``)."""
    parsed = parse_blob(armored)
    if parsed is None:
        return None
    key, ns, reserved, hash_alg, sig = parsed
    if ns != namespace.encode() or hash_alg not in _HASHES:
        return None
    entries = _signers(allowed_signers).by_key.get(key)
    if not entries:
        return None
    chosen = None
    for entry in entries:
        names = _plain_namespaces(entry.options)
        if names is None or any(_PATTERN_CHARS & set(p) for p in entry.principals):
            return None  # options or patterns this module does not judge: ssh-keygen does
        if names and namespace not in names:
            continue
        for candidate in entry.principals:
            if principal is None or candidate == principal:
                chosen = chosen or candidate
    if chosen is None:
        return None
    digest = _HASHES[hash_alg](payload).digest()
    signed = MAGIC + _string(ns) + _string(reserved) + _string(hash_alg.encode()) + _string(digest)
    return chosen if _verify(key, sig, signed) else None


def _verify(key_blob: bytes, sig_blob: bytes, data: bytes) -> bool:
    try:
        key_parts = list(_strings(key_blob))
        sig_type, sig = list(_strings(sig_blob))
    except (ValueError, struct.error):
        return False
    kind = key_parts[0]
    try:
        if kind == b"ssh-ed25519" and sig_type == kind:
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

            Ed25519PublicKey.from_public_bytes(key_parts[1]).verify(sig, data)
            return True
        if kind.startswith(b"ecdsa-sha2-nistp") and sig_type == kind:
            return _verify_ecdsa(kind, key_parts, sig, data)
        if kind == b"ssh-rsa" and sig_type in (b"rsa-sha2-256", b"rsa-sha2-512"):
            return _verify_rsa(key_parts, sig_type, sig, data)
    except (ValueError, TypeError, IndexError):
        return False
    except Exception as exc:  # cryptography's InvalidSignature (imported lazily)
        if type(exc).__name__ == "InvalidSignature":
            return False
        raise
    return False


def _verify_ecdsa(kind: bytes, key_parts: list[bytes], sig: bytes, data: bytes) -> bool:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    curves = {
        b"ecdsa-sha2-nistp256": (ec.SECP256R1(), hashes.SHA256()),
        b"ecdsa-sha2-nistp384": (ec.SECP384R1(), hashes.SHA384()),
        b"ecdsa-sha2-nistp521": (ec.SECP521R1(), hashes.SHA512()),
    }
    if kind not in curves:
        return False
    curve, algorithm = curves[kind]
    public = ec.EllipticCurvePublicKey.from_encoded_point(curve, key_parts[2])
    r, s = (int.from_bytes(x, "big") for x in _strings(sig))
    public.verify(encode_dss_signature(r, s), data, ec.ECDSA(algorithm))
    return True


def _verify_rsa(key_parts: list[bytes], sig_type: bytes, sig: bytes, data: bytes) -> bool:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    e, n = (int.from_bytes(x, "big") for x in key_parts[1:3])
    if n.bit_length() < 1024:
        return False  # ssh-keygen refuses keys this small
    algorithm = hashes.SHA256() if sig_type == b"rsa-sha2-256" else hashes.SHA512()
    rsa.RSAPublicNumbers(e, n).public_key().verify(sig, data, padding.PKCS1v15(), algorithm)
    return True
