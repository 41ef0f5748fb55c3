"""Checks that ``audit`` and ``doctor`` share: one implementation of each, so they agree.

* :func:`artifact_state` — an artifact's file against its recorded BLAKE3 and SHA-256;
  an artifact whose bytes never left the clone that recorded it (only its digest
  travelled, see :mod:`kavi.ledger.privacy`) is no problem where it is absent;
* :func:`tag_problem` and :func:`note_problem` — a promotion's tag and notes;
* :func:`registry_problems` — ``registry.yaml`` on the target branch against the ledger;
* :func:`unmirrored_warning` — events not yet on ``refs/kavi/ledger``: a warning (they
  are published by ``git kavi ledger sync``), never a failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kavi.hashing import blake3_hex, sha256_hex

if TYPE_CHECKING:
    from kavi.forge.context import Forge
    from kavi.gitstore.repo import GitRepo
    from kavi.ledger.models import Artifact, Promotion
    from kavi.ledger.store import Ledger

SYNC_HINT = "git kavi ledger sync"


@dataclass(frozen=True)
class ArtifactState:
    ok: bool
    detail: str
    restorable: bool = False  # missing or altered here, and its bytes are in refs/kavi/ledger
    elsewhere: bool = False  # absent here by design: only its digest travelled


def artifact_state(forge: Forge, artifact: Artifact, mirror_tip: str | None) -> ArtifactState:
    """How an artifact's file stands in this clone's vault."""
    try:
        data: bytes | None = (forge.workdir / artifact.path).read_bytes()
    except OSError:
        data = None
    if data is not None and blake3_hex(data) == artifact.blake3 and sha256_hex(data) == artifact.sha256:
        return ArtifactState(True, f"blake3 {artifact.blake3[:16]}…")
    in_mirror = False
    if mirror_tip is not None:
        from kavi.gitstore.mirror import read_artifact

        in_mirror = read_artifact(forge.repo, mirror_tip, artifact.blake3) is not None
    if data is not None:
        return ArtifactState(False, "hash mismatch (edited)", restorable=in_mirror)
    if in_mirror:
        return ArtifactState(False, "file missing (restore: git kavi doctor --repair)", restorable=True)
    if forge.ledger.is_elsewhere(artifact.id):
        return ArtifactState(
            True,
            f"digest only (sha256 {artifact.sha256[:16]}…): the file stays on the clone that recorded it",
            elsewhere=True,
        )
    return ArtifactState(False, "file missing (it was never mirrored: it cannot be restored)")


def tag_problem(repo: GitRepo, p: Promotion) -> str | None:
    """Why the promotion's tag does not stand (None: it exists and binds the merge)."""
    from kavi.gitstore.objects import read_tag

    tag = repo.ref_target(f"refs/tags/{p.tag_name}")
    if tag is None:
        return "missing"
    info = read_tag(repo, tag)
    if info is None or info.target != p.merge_commit:
        return f"does not point at the merge {p.merge_commit[:12]} (replaced)"
    return None


def note_problem(repo: GitRepo, notes_tip: str | None, annotated: str, needle: str) -> str | None:
    """Why the Kavi note on ``annotated`` lacks ``needle`` (None: it is there)."""
    from kavi.gitstore.objects import read_note

    text = read_note(repo, notes_tip, annotated) if annotated else None
    if not text:
        return "no note (git log --notes=kavi)"
    return None if needle in text else f"the note does not name {needle}"


def registry_problems(forge: Forge) -> tuple[str, dict[str, str]]:
    """``<skills_dir>/registry.yaml`` on the target branch against the ledger: its path and
    ``{skill: what disagrees}`` (``"*"``: the file itself)."""
    from kavi.forge.registry import derive, parse_registry

    config = forge.committed_config
    rel = f"{config.skills_dir}/registry.yaml"
    tip = forge.repo.branch_tip(config.target_branch)
    data = forge.repo.file_bytes(tip, rel) if tip else None
    if data is not None and forge.ledger.wrote_registry(data):
        return rel, {}  # byte for byte what the latest promotion or revocation derived
    expected = derive(forge.ledger)
    if data is None:
        return rel, ({"*": f"missing on {config.target_branch}"} if expected.skills else {})
    try:
        found = parse_registry(data.decode("utf-8"), source=rel)
    except Exception as exc:
        return rel, {"*": f"cannot be parsed: {exc}"}
    out: dict[str, str] = {}
    for name in sorted(set(found.skills) | set(expected.skills)):
        have, want = found.skills.get(name), expected.skills.get(name)
        if have == want:
            continue
        if want is None:
            out[name] = "listed, but not TRUSTED in the ledger"
        elif have is None:
            out[name] = f"TRUSTED in the ledger as v{want.version}, not listed"
        else:
            ours, theirs = want.model_dump(), have.model_dump()
            out[name] = "; ".join(
                f"{k}: ledger={ours[k]!r} registry={theirs[k]!r}" for k in ours if ours[k] != theirs[k]
            )
    return rel, out


def unmirrored_warning(ledger: Ledger) -> str | None:
    """Events not yet on ``refs/kavi/ledger`` (a warning: publishing them is one command)."""
    (count,) = ledger.conn.execute("SELECT COUNT(*) FROM events WHERE mirror_commit IS NULL").fetchone()
    if not count:
        return None
    return f"{count} ledger event(s) not yet mirrored to refs/kavi/ledger: run `{SYNC_HINT}`"
