"""The server hook's pinned state: ``<git-dir>/kavi/hook.json`` and ``<git-dir>/kavi/trusted_signers``."""

from __future__ import annotations

import json
from pathlib import Path

from kavi.gitstore.hookcheck import Pinned
from kavi.gitstore.protected import Layout

HOOK_STATE = "kavi"
HOOK_JSON = "hook.json"
TRUST_FILE = "trusted_signers"


def state_dir(git_dir: Path) -> Path:
    return git_dir / HOOK_STATE


def load_pinned(git_dir: Path) -> Pinned | None:
    state = state_dir(git_dir)
    try:
        data = json.loads((state / HOOK_JSON).read_text())
        signers = (state / TRUST_FILE).read_text()
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("config", {}), dict):
        return None  # not what `hooks install` writes: not configured
    forge_id = data.get("forge_id")
    return Pinned(
        signers=signers,
        layout=Layout.from_dict(data.get("config", {})),
        forge_id=forge_id if isinstance(forge_id, str) and len(forge_id) == 40 else None,
        cache_dir=str(state),
    )
