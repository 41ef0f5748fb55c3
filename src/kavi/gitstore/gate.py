"""The diff-allowlist gate: a raw pygit2 tree diff from the base to a build commit.

Rules (no rename detection, so a rename is a deletion plus an addition):

* only ADDED or MODIFIED deltas;
* only paths in the allowlist;
* mode ``100644`` on both sides (no executable bit, no symlink, no submodule);
* every allowed path present in the result as a regular file of bounded size.
"""

from __future__ import annotations

from collections.abc import Sequence

from kavi.gitstore.repo import MODE_BLOB, MODE_COMMIT, MODE_EXEC, MODE_LINK, GitRepo
from kavi.ledger.models import Violation

_MODE_NAMES = {
    MODE_BLOB: "regular file (100644)",
    MODE_EXEC: "executable file (100755)",
    MODE_LINK: "symlink (120000)",
    MODE_COMMIT: "submodule (160000)",
}


def _mode(mode: int) -> str:
    return _MODE_NAMES.get(mode, f"mode {mode:o}")


def check(
    repo: GitRepo,
    base_commit: str,
    build_commit: str,
    allowed: Sequence[str],
    *,
    max_file_bytes: int = 1_000_000,
    require_all: bool = True,
) -> list[Violation]:
    base_tree = repo.commit_tree(base_commit)
    build_tree = repo.commit_tree(build_commit)
    deltas = repo.diff_raw(base_tree, build_tree)
    allowed_set = set(allowed)
    deleted = {d.old_oid: d.old_path for d in deltas if d.status == "DELETED"}
    out: list[Violation] = []

    def bad(path: str, reason: str, rule: str) -> None:
        out.append(Violation(path=path, reason=reason, rule=rule))

    for d in deltas:
        path = d.path
        if d.status == "DELETED":
            bad(path, "deletes a tracked file", "deleted")
            continue
        if d.status not in ("ADDED", "MODIFIED"):
            bad(
                path,
                f"{d.status.lower()} change ({_mode(d.old_mode)} → {_mode(d.new_mode)})",
                "delta-kind",
            )
            continue
        if path not in allowed_set:
            origin = deleted.get(d.new_oid) if d.status == "ADDED" else None
            if origin is not None:
                bad(path, f"renamed from {origin}; outside the allowlist", "outside-allowlist")
            elif d.status == "ADDED" and repo.raw.path_is_ignored(path):
                bad(
                    path,
                    "new file matched by .gitignore; outside the allowlist",
                    "outside-allowlist",
                )
            elif d.status == "ADDED":
                bad(path, "new file outside the allowlist", "outside-allowlist")
            else:
                bad(path, "modifies a file outside the allowlist", "outside-allowlist")
        if d.new_mode != MODE_BLOB:
            bad(path, f"is a {_mode(d.new_mode)}; only 100644 files are allowed", "mode")
        if d.status == "MODIFIED" and d.old_mode != MODE_BLOB:
            bad(
                path,
                f"was a {_mode(d.old_mode)} in the base; only 100644 files are allowed",
                "mode",
            )
    if require_all:
        for path in allowed:
            entry = repo.entry(build_tree, path)
            if entry is None:
                bad(path, "expected file was not written", "missing")
                continue
            if entry.mode != MODE_BLOB:
                if not any(v.path == path and v.rule == "mode" for v in out):  # unchanged: a
                    # symlink the base already held would otherwise pass as "written"
                    bad(path, f"is a {_mode(entry.mode)}; only 100644 files are allowed", "mode")
                continue
            data = repo.read_blob(entry.oid)
            if len(data) > max_file_bytes:
                bad(path, f"is {len(data)} bytes (limit {max_file_bytes})", "too-large")
            elif not data.strip():
                bad(path, "is empty", "empty")
            else:
                try:
                    data.decode("utf-8")
                except UnicodeDecodeError:
                    bad(path, "is not valid UTF-8 text", "encoding")
    return sorted(out, key=lambda v: (v.path, v.rule))
