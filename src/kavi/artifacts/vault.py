"""Markdown artifacts in an Obsidian-compatible vault.

Each artifact is one markdown file with YAML front matter (kind, ids, hashes,
created, links) and ``[[wikilinks]]`` to related artifacts, written atomically
(temp file, fsync, rename). Its BLAKE3 and SHA-256 over the exact bytes are
recorded in the ledger; the vault itself is derived state that
``git kavi ledger import`` can restore from ``refs/kavi/ledger``.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kavi.clock import now_iso
from kavi.hashing import blake3_hex, sha256_hex
from kavi.ledger.models import Artifact, ArtifactKind
from kavi.secrets import redact_record

VAULT_SUBDIR = "kavi"


def artifact_stem(kind: ArtifactKind, name: str, artifact_id: str, attempt: int | None = None) -> str:
    """The file stem, which is also the wikilink target: ``BUILD_PACKET_2_write_note_1a2b3c4d``."""
    label = kind.value if attempt is None else f"{kind.value}_{attempt}"
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    return f"{label}_{safe}_{artifact_id[:8]}"


def wikilink(stem: str) -> str:
    return f"[[{stem}]]"


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (a journal must survive a power cut too)."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def render(front: dict[str, Any], body: str) -> bytes:
    """Markdown with YAML front matter. Values are written in YAML's JSON-compatible
    flow style (quoted strings, ``[…]`` lists) — valid YAML for Obsidian and any parser,
    and no YAML library needed to write it."""
    lines = [f"{key}: {json.dumps(value, ensure_ascii=False)}" for key, value in front.items()]
    return ("---\n" + "\n".join(lines) + f"\n---\n\n{body.rstrip()}\n").encode()


@dataclass
class Vault:
    """Writes artifacts under ``<workdir>/<vault_dir>/kavi/`` and remembers them.

    Use :meth:`pending` around a ledger transaction: if anything fails before the
    transaction commits, the files written inside the block are removed again.
    """

    workdir: Path
    vault_dir: str
    secrets: Sequence[str] = ()
    written: list[Path] = field(default_factory=list)

    @property
    def root(self) -> Path:
        return self.workdir / self.vault_dir

    def write(
        self,
        kind: ArtifactKind,
        *,
        name: str,
        related_id: str,
        title: str,
        body: str,
        meta: dict[str, Any] | None = None,
        links: Sequence[str] = (),
        attempt: int | None = None,
        artifact_id: str | None = None,
    ) -> tuple[Artifact, str]:
        """Write one artifact; return its ledger record and its wikilink stem."""
        artifact_id = artifact_id or str(uuid.uuid4())
        created = now_iso()
        stem = artifact_stem(kind, name, artifact_id, attempt)
        front: dict[str, Any] = {
            "kind": kind.value,
            "id": artifact_id,
            "related_id": related_id,
            "skill": name,
            "created": created,
            **(meta or {}),
            "links": [wikilink(s) for s in links],
            "tags": ["kavi", f"kavi/{kind.value.lower()}"],
        }
        text = f"# {title}\n\n{body.rstrip()}\n"
        if links:
            text += "\n## Related\n\n" + "".join(f"- {wikilink(s)}\n" for s in links)
        # one place: no artifact is written with a secret value or a credential in it
        data = redact_record(render(front, text).decode("utf-8"), self.secrets).encode("utf-8")
        rel = Path(self.vault_dir) / VAULT_SUBDIR / kind.value.lower() / f"{stem}.md"
        path = self.workdir / rel
        atomic_write(path, data)
        self.written.append(path)
        record = Artifact(
            id=artifact_id,
            kind=kind,
            path=rel.as_posix(),
            sha256=sha256_hex(data),
            blake3=blake3_hex(data),
            size=len(data),
            related_id=related_id,
            created_at=created,
        )
        return record, stem

    @contextmanager
    def pending(self) -> Iterator[Vault]:
        mark = len(self.written)
        try:
            yield self
        except BaseException:
            for path in self.written[mark:]:
                path.unlink(missing_ok=True)
            del self.written[mark:]
            raise


def read_verified(workdir: Path, artifact: Artifact) -> bytes | None:
    """The artifact's bytes if the file exists and matches its recorded BLAKE3."""
    try:
        data = (workdir / artifact.path).read_bytes()
    except OSError:
        return None
    return data if blake3_hex(data) == artifact.blake3 else None
