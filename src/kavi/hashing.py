"""Content addressing: BLAKE3 (Kavi's own ids) and SHA-256 / git blob ids (interop)."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def blake3_hex(data: bytes) -> str:
    from blake3 import blake3

    return str(blake3(data).hexdigest())


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def event_hash(fields: dict[str, Any]) -> str:
    """BLAKE3 over the canonical form of a ledger event (everything but ``hash``)."""
    body = {k: v for k, v in fields.items() if k != "hash"}
    return blake3_hex(canonical_json(body).encode("utf-8"))


def git_blob_id(data: bytes) -> str:
    """The id git gives ``data`` as a blob (SHA-1 object format)."""
    header = f"blob {len(data)}\0".encode()
    return hashlib.sha1(header + data, usedforsecurity=False).hexdigest()


def canonical_json(obj: Any) -> str:
    """Deterministic JSON used wherever bytes are hashed or signed."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
