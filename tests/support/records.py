"""Hand-made Kavi records for attack tests: ledger events an attacker signs himself."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

from support.forge import git


def last_event(repo: Path) -> dict[str, object]:
    message = git("log", "-1", "--format=%B", "refs/kavi/ledger", cwd=repo)
    line = next(ln for ln in message.splitlines() if ln.startswith("Kavi-Event-JSON:"))
    data: dict[str, object] = json.loads(line.split(":", 1)[1])
    return data


def forged_event(
    repo: Path,
    *,
    key: Path,
    forge_id: str,
    governance: str,
    signer: str,
    kind: str = "proposal.created",
    payload: dict[str, object] | None = None,
) -> str:
    """A well-formed, hash-chained ledger event on top of ``refs/kavi/ledger``, signed with
    ``key`` (the ref is moved to it). Only the trust rule can refuse it."""
    from kavi.gitstore.mirror import event_message
    from kavi.ledger.models import Event
    from kavi.ledger.store import event_hash

    prev = last_event(repo)
    fields: dict[str, object] = {
        "seq": int(str(prev["seq"])) + 1,
        "id": str(uuid.uuid4()),
        "kind": kind,
        "subject_id": "forged",
        "payload": payload or {"note": "forged"},
        "actor": "Mallory <mallory@example.com>",
        "created_at": "2026-01-01T00:00:00.000000Z",
        "prev_hash": prev["hash"],
    }
    fields["hash"] = event_hash(fields)
    event = Event.model_validate(fields)
    message = event_message(event, forge_id=forge_id, governance=governance, signer=signer)
    tip = git("rev-parse", "refs/kavi/ledger", cwd=repo)
    tree = git("rev-parse", f"{tip}^{{tree}}", cwd=repo)
    proc = subprocess.run(
        ["git", "-c", f"user.signingkey={key}.pub", "commit-tree", tree, "-p", tip, "-S", "-F", "-"],
        cwd=repo,
        input=message,
        capture_output=True,
        text=True,
        check=True,
    )
    commit = proc.stdout.strip()
    git("update-ref", "refs/kavi/ledger", commit, cwd=repo)
    return commit
