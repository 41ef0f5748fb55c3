"""Governance as committed at a commit: trust, layout, registry and protected changes.

Everything is read from git objects and cached by blob id, so judging many commits of
one history reads each distinct ``allowed_signers``, ``config.yaml`` and
``registry.yaml`` once. Parsed layouts can also be kept on disk (the server hook's
``config-cache-2/``) so the hook's fast lane can read them without YAML or pygit2; only
layouts of commits already accepted are written there.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from kavi.gitstore.protected import Layout, PathRule, signer_lines
from kavi.gitstore.repo import GitRepo, RawDelta
from kavi.layout import CONFIG_FILE, KAVI_DIR, SIGNERS_FILE

CONFIG_CACHE = "config-cache-2"
REGISTRY_CACHE = "registry-cache"  # registry blob -> the files it names (for the fast lane)


class GovReader:
    def __init__(
        self,
        repo: GitRepo,
        *,
        default: Layout | None = None,
        cache_dir: Path | None = None,
        remember_registries: bool = False,
    ) -> None:
        """``cache_dir``: where parsed layouts and registries are kept on disk;
        ``remember_registries``: keep every registry parsed (a clone judging its own
        branch), not only those of commits the caller says are accepted (the hook)."""
        self.repo = repo
        self.default = default or Layout()
        self.cache_dir = cache_dir
        self.remember_registries = remember_registries
        self._blobs: dict[str, str] = {}
        self._layouts: dict[str, Layout] = {}
        self._registries: dict[tuple[str, str], dict[str, dict[str, object]] | None] = {}
        self._registry_blocks: dict[str, tuple[str, dict[str, object]] | None] = {}  # by block text
        self._meta: dict[str, tuple[str, tuple[str, ...]]] = {}

    # -- commits -------------------------------------------------------------------

    def meta(self, commit: str) -> tuple[str, tuple[str, ...]]:
        """(tree, parents), cached."""
        found = self._meta.get(commit)
        if found is None:
            found = self.repo.commit_meta(commit)
            self._meta[commit] = found
        return found

    def tree(self, commit: str) -> str:
        return self.meta(commit)[0]

    def _text(self, commit: str, path: str) -> tuple[str | None, str]:
        entry = self.repo.entry(self.tree(commit), path)
        if entry is None or entry.mode not in (0o100644, 0o100755):
            return None, ""
        if entry.oid not in self._blobs:
            self._blobs[entry.oid] = self.repo.read_blob(entry.oid).decode("utf-8", "replace")
        return entry.oid, self._blobs[entry.oid]

    # -- trust -----------------------------------------------------------------------

    def signers(self, commit: str | None) -> str:
        """``.kavi/allowed_signers`` at ``commit`` ("" when absent)."""
        return "" if commit is None else self._text(commit, SIGNERS_FILE)[1]

    def has_keys(self, commit: str | None) -> bool:
        """Does the commit's ``allowed_signers`` list any entry at all? (Before the first
        one, nothing is trusted and no governance rule can apply: the forge has no root.)"""
        return bool(signer_lines(self.signers(commit)))

    def has_kavi(self, commit: str | None) -> bool:
        return commit is not None and self.repo.entry(self.tree(commit), KAVI_DIR) is not None

    # -- layout ---------------------------------------------------------------------------

    def layout(self, commit: str | None, *, remember: bool = False) -> Layout:
        """The layout committed at ``commit`` (the default one where there is none)."""
        if commit is None:
            return self.default
        entry = self.repo.entry(self.tree(commit), CONFIG_FILE)
        if entry is None:
            return self.default
        return self.layout_of_blob(entry.oid, remember=remember)

    def layout_of_blob(self, oid: str, *, remember: bool = False) -> Layout:
        found = self._layouts.get(oid)
        if found is not None:
            if remember:
                self._remember(oid, found)
            return found
        cache = self.cache_dir / CONFIG_CACHE / f"{oid}.json" if self.cache_dir else None
        if cache is not None and cache.exists():
            try:
                layout = Layout.from_dict(json.loads(cache.read_text()))
                self._layouts[oid] = layout
                return layout
            except (OSError, ValueError):
                pass
        from kavi.config import parse_config
        from kavi.errors import KaviError

        try:
            layout = Layout.from_config(parse_config(self.repo.read_blob(oid).decode("utf-8", "replace")))
        except KaviError:
            layout = self.default
        self._layouts[oid] = layout
        if remember:
            self._remember(oid, layout)
        return layout

    def _remember(self, oid: str, layout: Layout) -> None:
        """Only configs already on the server are cached: a rejected push of many config
        edits leaves nothing behind."""
        if self.cache_dir is None:
            return
        path = self.cache_dir / CONFIG_CACHE / f"{oid}.json"
        if path.exists():
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(layout.to_dict()))
            tmp.replace(path)
        except OSError:
            pass  # a read-only server still works, just slower

    # -- registry -------------------------------------------------------------------------

    def registry(self, commit: str | None, layout: Layout) -> dict[str, dict[str, object]] | None:
        """``<skills_dir>/registry.yaml`` at ``commit`` as name → entry ({} when absent,
        None when it is not a valid registry)."""
        if commit is None:
            return {}
        entry = self.repo.entry(self.tree(commit), layout.registry_path)
        if entry is None:
            return {}
        key = (entry.oid, layout.registry_path)
        if key not in self._registries:
            from kavi.errors import KaviError
            from kavi.forge.registry import registry_entries

            try:
                data = self.repo.read_blob(entry.oid).decode("utf-8", "replace")
                self._registries[key] = registry_entries(
                    data, source=layout.registry_path, blocks=self._registry_blocks
                )
            except (KaviError, ValueError):
                self._registries[key] = None
        return self._registries[key]

    def trusted_files(self, commit: str | None, layout: Layout, *, remember: bool = False) -> tuple[str, ...]:
        """The skill and test files the registry at ``commit`` names: what the ledger still
        trusts, wherever the layout has moved since. ``remember`` (a commit already on the
        server, or on a clone's own branch) keeps the list on disk, keyed by the registry's
        blob id, and a list kept there is read instead of parsing the YAML again (a
        registry of a thousand skills takes half a second to parse)."""
        blob = None if commit is None else self.repo.entry(self.tree(commit), layout.registry_path)
        path = None
        if blob is not None and self.cache_dir is not None:
            path = self.cache_dir / REGISTRY_CACHE / f"{blob.oid}.json"
            if (blob.oid, layout.registry_path) not in self._registries:
                kept = _read_list(path)
                if kept is not None:
                    return kept
        registry = self.registry(commit, layout)
        out = tuple(
            value
            for entry in (registry or {}).values()
            for value in (entry.get("file"), entry.get("test_file"))
            if isinstance(value, str) and value
        )
        if (remember or self.remember_registries) and path is not None and registry is not None:
            _write_list(path, sorted(out))
        return out

    # -- changes -----------------------------------------------------------------------------

    def changes(self, parent: str | None, commit: str, rule: PathRule) -> list[RawDelta]:
        """The raw changes of ``commit`` against ``parent`` (None: against nothing) that touch a
        protected path. The tree diff runs in libgit2 and descends only into subtrees whose
        ids differ, so the cost follows what changed, not the size of the tree."""
        tree = self.tree(commit)
        parent_tree = self.tree(parent) if parent is not None else None
        if parent_tree == tree:
            return []
        return [d for d in self.repo.diff_raw(parent_tree, tree) if rule(d.old_path) or rule(d.new_path)]


def _read_list(path: Path) -> tuple[str, ...] | None:
    """A list of strings kept as JSON (None: absent or unreadable — recompute it)."""
    try:
        kept = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if isinstance(kept, list) and all(isinstance(x, str) for x in kept):
        return tuple(kept)
    return None


def _write_list(path: Path, items: list[str]) -> None:
    """Keep ``items`` at ``path`` (once; a cache that cannot be written only costs speed)."""
    if path.exists():
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(items))
        tmp.replace(path)
    except OSError:
        pass
