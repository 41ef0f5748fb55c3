"""The server-side rules: which ref updates of one push are sanctioned by Kavi.

Everything is decided from git objects (no ledger database), against the state
*before* the push: trust (``.kavi/allowed_signers``) and configuration are read from
the protected branch's old tip — or, before ``.kavi/`` exists there, from the trust
root pinned when the hook was installed — so a push can never vouch for itself.
Signature verdicts come from ``ssh-keygen`` exit codes, judged at the server's
clock (a backdated committer date cannot revive an expired key). The cost grows with
what is pushed: only new commits are read, and a commit whose protected subtrees
(``.kavi``, the skills dir, the tests dir) are unchanged is dismissed after comparing
three tree ids.

Rules, per ref:

* protected branches — no deletion, no non-fast-forward; along the first-parent
  chain of new commits, every commit whose change against its first parent touches a
  protected path (``.kavi/**``, ``<skills_dir>/**``, ``<tests_dir>/test_skill_*.py``) must
  be a signed Kavi promotion merge or revocation commit bound by its signed tag (in
  the repository or in the same push), or a governance commit signed by a key trusted
  before it (the first commit adding ``.kavi/`` must carry exactly the pinned trust root);
* ``refs/kavi/ledger`` and ``refs/notes/kavi`` — fast-forward only, every new commit
  signed by a trusted key; ledger events contiguous, hash-chained and linear;
* ``refs/tags/kavi/*`` — created once as signed annotated tags, never moved or deleted;
* any other ``refs/kavi/*`` ref is refused.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass, field

from kavi.gitstore.objects import TagInfo, read_tag, trailers
from kavi.gitstore.repo import MODE_BLOB, ZERO_OID, GitRepo, RawDelta
from kavi.gitstore.symref import alias_target
from kavi.gitstore.trust import commit_verdict
from kavi.layout import CONFIG_FILE, KAVI_DIR, SIGNERS_FILE
from kavi.sshsig import verify
from kavi.textsafe import fold, fold_component, printable, same_component

LEDGER_REF = "refs/kavi/ledger"
NOTES_REF = "refs/notes/kavi"
TAG_PREFIX = "refs/tags/kavi/"
_KAVI_REFS = (LEDGER_REF, NOTES_REF, TAG_PREFIX + "x/v1")
_SIGNATURE_BATCH = 32
MAX_REJECTIONS = 10


@dataclass(frozen=True)
class Update:
    old: str
    new: str
    ref: str


@dataclass(frozen=True)
class Rejection:
    ref: str
    rule: str
    why: str
    remedy: str
    commit: str | None = None
    path: str | None = None

    def render(self, repo: GitRepo | None = None) -> str:
        lines = [f"kavi: REJECTED {printable(self.ref)}"]
        if self.commit:
            subject = ""
            if (
                repo is not None
                and repo.has_object(self.commit)
                and repo.object_type(self.commit) == "commit"
            ):
                first = (repo.commit(self.commit).message.splitlines() or [""])[0]
                subject = f' "{printable(first[:60])}"'
            lines.append(f"  commit:  {self.commit}{subject}")
        if self.path:
            lines.append(f"  path:    {printable(self.path)}")
        lines.append(f"  rule:    {self.rule}")
        lines.append(f"  why:     {printable(self.why)}")
        lines.append(f"  do this: {printable(self.remedy)}")
        return "\n".join(lines)


@dataclass(frozen=True)
class HookConfig:
    """The part of ``.kavi/config.yaml`` the hook needs."""

    protected: tuple[str, ...] = ("main",)
    skills_dir: str = "skills"
    tests_dir: str = "tests"

    def to_dict(self) -> dict[str, object]:
        return {"protected": list(self.protected), "skills_dir": self.skills_dir, "tests_dir": self.tests_dir}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> HookConfig:
        protected = data.get("protected", ["main"])
        return cls(
            protected=tuple(str(b) for b in protected) if isinstance(protected, list) else ("main",),
            skills_dir=str(data.get("skills_dir", "skills")),
            tests_dir=str(data.get("tests_dir", "tests")),
        )


@dataclass
class Pinned:
    """What was pinned at install time: the trust root and the layout for an empty repository."""

    signers: str
    config: HookConfig = field(default_factory=HookConfig)
    cache_dir: str | None = None  # where parsed config blobs are cached (the bare repo's kavi/)


PROMOTE_REMEDY = (
    "skill changes reach {branch} only through Kavi: `git kavi propose-skill`, `build-skill`, "
    "`verify-skill`, then `git kavi promote-skill <proposal>` (signed by a trusted key), and push "
    "the branch together with refs/tags/kavi/*, refs/notes/kavi and refs/kavi/ledger"
)


def signer_lines(text: str) -> set[str]:
    """The entries of an allowed-signers file, compared verbatim (comments and blanks aside)."""
    return {line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")}


def _governance_path(path: str) -> bool:
    """``.kavi/**`` or a ``.gitattributes``: changed by a commit signed with a trusted key."""
    if path == KAVI_DIR or path.startswith(KAVI_DIR + "/"):
        return True
    return same_component(fold_component(path.rsplit("/", 1)[-1]), ".gitattributes")


def _parts(path: str) -> list[str]:
    return [fold_component(c) for c in path.split("/") if c]


def _under(parts: Sequence[str], prefix: Sequence[str], *, exact: bool = False) -> bool:
    """Do the folded components ``parts`` start with (or, ``exact``, equal) ``prefix``?"""
    if len(parts) < len(prefix) or (exact and len(parts) != len(prefix)):
        return False
    return all(same_component(a, b) for a, b in zip(parts, prefix, strict=False))


def is_protected_path(path: str, configs: Sequence[HookConfig]) -> bool:
    """``.kavi/**``, ``<skills_dir>/**``, ``<tests_dir>/test_skill_*.py`` (and a
    ``.gitattributes`` on the way to or inside them) under any of ``configs``.

    Compared after :func:`fold`: on a case-insensitive or normalising checkout
    ``Skills/x.py`` and ``ſkills/x.py`` *are* ``skills/x.py``."""
    p = fold(path)
    parts = [fold_component(c) for c in path.split("/")]
    for cfg in configs:
        for prefix in (fold(KAVI_DIR), fold(cfg.skills_dir)):
            if p == prefix or p.startswith(prefix + "/"):
                return True
        tests = fold(cfg.tests_dir)
        if p.startswith(tests + "/") and fnmatch.fnmatch(p[len(tests) + 1 :], "test_skill_*.py"):
            return True
        # the same, as NTFS reads names (``KAVI~1/``, ``skills./``, ``TEST_S~1.PY``)
        dirs = [_parts(KAVI_DIR), _parts(cfg.skills_dir), _parts(cfg.tests_dir)]
        if any(_under(parts, d) for d in dirs[:2]) or _under(
            parts, [*dirs[2], "test_skill_*.py"], exact=True
        ):
            return True
        # ``.gitattributes`` on the way to a protected directory, or in one, changes the
        # bytes a checkout writes for its files (``eol=crlf``, filters)
        if parts and same_component(parts[-1], ".gitattributes"):
            where = parts[:-1]
            if any(_under(d[: len(where)], where, exact=True) or _under(where, d) for d in dirs):
                return True
    return False


def _is_zero(oid: str) -> bool:
    return oid == ZERO_OID or set(oid) == {"0"}


class HookChecker:
    def __init__(
        self,
        repo: GitRepo,
        pinned: Pinned,
        updates: Sequence[Update],
        *,
        before: dict[str, str] | None = None,
    ) -> None:
        """``before`` maps ref names to their pre-push values when they are not this
        repository's own refs (the client-side pre-push check uses the remote's state)."""
        self.repo = repo
        self.pinned = pinned
        self.updates = list(updates)
        self.before = before
        self.pushed = {u.ref: u.new for u in self.updates}
        self.rejections: list[Rejection] = []
        self._config, self._signers = self._governance()
        self._sig_cache: dict[str, tuple[bool, str]] = {}

    # -- governance before the push ------------------------------------------------------

    def _governance(self) -> tuple[HookConfig, str]:
        """Config and trust from the protected branch's old tip (else the pinned root)."""
        for branch in self.pinned.config.protected:
            tip = self._before(f"refs/heads/{branch}")
            if tip is None:
                continue
            signers = self.repo.file_bytes(tip, SIGNERS_FILE)
            entry = self.repo.entry(tip, CONFIG_FILE)
            config = self.pinned.config if entry is None else self._config_from_blob(entry.oid, remember=True)
            if signers is not None:
                return config, signers.decode("utf-8", "replace")
            return config, self.pinned.signers
        return self.pinned.config, self.pinned.signers

    def _config_from_blob(self, oid: str, *, remember: bool = False) -> HookConfig:
        """Parse a committed config.yaml once; later pushes read the cached JSON (no YAML/pydantic).
        Only configs already on the server (``remember``) are cached: a rejected push of many
        config edits leaves nothing behind."""
        import json
        from pathlib import Path

        cache = (
            Path(self.pinned.cache_dir) / "config-cache" / f"{oid}.json" if self.pinned.cache_dir else None
        )
        if cache is not None and cache.exists():
            return HookConfig.from_dict(json.loads(cache.read_text()))
        from kavi.config import parse_config
        from kavi.errors import KaviError

        try:
            full = parse_config(self.repo.read_blob(oid).decode("utf-8", "replace"))
        except KaviError:
            return self.pinned.config
        config = HookConfig(tuple(full.protected), full.skills_dir, full.tests_dir)
        if cache is not None and remember:
            try:
                cache.parent.mkdir(parents=True, exist_ok=True)
                cache.write_text(json.dumps(config.to_dict()))
            except OSError:
                pass  # a read-only server still works, just slower
        return config

    def _before(self, ref: str) -> str | None:
        if self.before is not None:
            value = self.before.get(ref)
            return None if value is None or _is_zero(value) or not self.repo.has_object(value) else value
        return self.repo.ref_target(ref)

    def _protected_tips(self, exclude: str) -> list[str]:
        """Tips of the other protected branches: a new protected branch is judged on every
        commit that is not already part of protected history."""
        tips = []
        for ref in self.protected_branches:
            if ref == exclude:
                continue
            tip = self._before(ref)
            if tip is not None:
                tips.append(tip)
        return tips

    @property
    def protected_branches(self) -> list[str]:
        """Branches protected at install time stay protected, whatever a config says later."""
        names = list(self.pinned.config.protected)
        names += [b for b in self._config.protected if b not in names]
        return [f"refs/heads/{b}" for b in names]

    def is_protected_path(self, path: str, layouts: Sequence[HookConfig] = ()) -> bool:
        """:func:`is_protected_path` under this push's configuration; ``layouts`` adds the
        configurations of commits inside the push (a moved ``skills_dir`` is protected too)."""
        return is_protected_path(path, (self._config, *layouts))

    # -- signatures ------------------------------------------------------------------------

    def signed_ok(
        self, commit: str, principal: str | None = None, *, at: str | None = None
    ) -> tuple[bool, str]:
        """Signed by a key trusted before the push — and, with ``at`` (the commit's parent
        on a protected branch), still trusted there: a key removed earlier in the same
        push no longer counts."""
        key = f"{commit}:{principal}:{at}"
        if key not in self._sig_cache:
            verdict = commit_verdict(self.repo, commit, self._signers, principal=principal)
            result = (verdict.ok, verdict.principal or verdict.detail)
            current = self._signers_at(at)
            if verdict.ok and current is not None and signer_lines(current) != signer_lines(self._signers):
                again = commit_verdict(self.repo, commit, current, principal=principal)
                if not again.ok:
                    result = (False, "the key was removed from .kavi/allowed_signers before this commit")
            self._sig_cache[key] = result
        return self._sig_cache[key]

    def _prefetch_signatures(self, items: list[tuple[str, str | None]]) -> None:
        """Verify many commit signatures concurrently (each is one ssh-keygen process)."""
        from concurrent.futures import ThreadPoolExecutor

        from kavi.sshsig import Verdict

        todo = []
        for commit, principal in items:
            key = f"{commit}:{principal}:None"
            if key in self._sig_cache:
                continue
            found = self.repo.extract_signature(commit)  # object reads stay on this thread
            if found is None:
                self._sig_cache[key] = (False, "unsigned")
                break  # the checks reject here: nothing after it needs verifying
            todo.append((key, found[1], found[0], principal))
        if not todo:
            return

        def run(item: tuple[str, bytes, str, str | None]) -> tuple[str, Verdict]:
            key, payload, signature, principal = item
            return key, verify(payload, signature, self._signers, principal=principal)

        # in order, a batch at a time, stopping at the first bad signature: the checks
        # that follow reject there, so verifying the rest would only burn the server's CPU
        with ThreadPoolExecutor(max_workers=8) as pool:
            for start in range(0, len(todo), _SIGNATURE_BATCH):
                bad = False
                for key, verdict in pool.map(run, todo[start : start + _SIGNATURE_BATCH]):
                    self._sig_cache[key] = (verdict.ok, verdict.principal or verdict.detail)
                    bad = bad or not verdict.ok
                if bad:
                    return

    def tag_ok(self, tag: TagInfo) -> tuple[bool, str]:
        if tag.signature is None:
            return False, "unsigned tag"
        key = f"tag:{tag.id}"
        if key not in self._sig_cache:
            verdict = verify(tag.payload, tag.signature, self._signers)
            self._sig_cache[key] = (verdict.ok, verdict.principal or verdict.detail)
        return self._sig_cache[key]

    def reject(
        self, ref: str, rule: str, why: str, remedy: str, commit: str | None = None, path: str | None = None
    ) -> None:
        self.rejections.append(Rejection(ref, rule, why, remedy, commit, path))

    # -- entry point ---------------------------------------------------------------------

    def check(self) -> list[Rejection]:
        guarded = [*self.protected_branches, LEDGER_REF, NOTES_REF]
        for index, u in enumerate(self.updates):
            if len(self.rejections) >= MAX_REJECTIONS:
                # one rejection refuses the whole push: judging (and verifying) the rest
                # would only let a push of thousands of bad refs burn the server's CPU
                self.reject(
                    "(the rest of the push)",
                    "not-judged",
                    f"{len(self.updates) - index} more ref update(s) were not checked after "
                    f"{MAX_REJECTIONS} rejections",
                    "fix the problems above and push again",
                )
                break
            alias = next((g for g in guarded if fold(u.ref) == fold(g) and u.ref != g), None)
            if (
                alias is None
                and fold(u.ref).startswith(fold(TAG_PREFIX))
                and not u.ref.startswith(TAG_PREFIX)
            ):
                alias = TAG_PREFIX + "…"
            if alias is not None:
                self.reject(
                    u.ref,
                    "ref-alias",
                    f"{u.ref} differs from Kavi's {alias} only in case or "
                    "normalisation (the same file on a case-insensitive server)",
                    f"use {alias} itself",
                )
                continue
            target = alias_target(self.repo.git_dir, u.ref)
            if target is not None:
                self.reject(
                    u.ref,
                    "symbolic-ref",
                    f"{u.ref} is a symbolic ref to {target} on this server: the update would land "
                    f"on {target} without being judged as {target}",
                    f"push to {target} itself",
                )
                continue
            blocked = next((k for k in _KAVI_REFS if fold(k).startswith(fold(u.ref) + "/")), None)
            if blocked is not None:
                self.reject(
                    u.ref,
                    "ref-conflict",
                    f"a ref named {u.ref} would stop git from creating Kavi's {blocked} "
                    "(a file where a directory must be)",
                    "choose another name; Kavi needs refs/tags/kavi/*, refs/kavi/ledger and refs/notes/kavi",
                )
                continue
            if u.ref.startswith("refs/replace/"):
                self.reject(
                    u.ref,
                    "replace-ref",
                    "replace refs would make git show other objects in place of the ones Kavi checked",
                    "do not push refs/replace/*; rewrite history instead",
                )
                continue
            if u.ref.startswith(NOTES_REF) and u.ref != NOTES_REF:
                self.reject(
                    u.ref,
                    "unknown-kavi-ref",
                    f"{u.ref} looks like Kavi's notes (git log shows "
                    "refs/notes/kavi*) but is not refs/notes/kavi",
                    "use a notes ref outside refs/notes/kavi*",
                )
                continue
            if u.ref in self.protected_branches:
                self.check_protected_branch(u)
            elif u.ref == LEDGER_REF:
                self.check_signed_chain(u, ledger=True)
            elif u.ref == NOTES_REF:
                self.check_signed_chain(u, ledger=False)
            elif u.ref.startswith(TAG_PREFIX):
                self.check_tag_ref(u)
            elif u.ref.startswith("refs/kavi/"):
                self.reject(
                    u.ref,
                    "unknown-kavi-ref",
                    "only refs/kavi/ledger is allowed under refs/kavi/",
                    "push refs/kavi/ledger only",
                )
        return self.rejections

    def _stale_start(self, u: Update, branch: str, start: str | None) -> bool:
        """A new protected branch must grow from the current tip of the first protected
        branch along its first-parent line (``start``: the first commit on that line that
        is already protected history). Containing the tip through a second parent is not
        enough: ``merge -s ours`` keeps any old state of the files."""
        tips = ((b, self._before(b)) for b in self.protected_branches if b != u.ref)
        governing_ref, governing = next(((b, t) for b, t in tips if t), (None, None))
        if governing_ref is None or start == governing:
            return False
        name = governing_ref[len("refs/heads/") :]
        self.reject(
            u.ref,
            "stale-branch",
            f"a new protected branch {branch} must grow from the current tip of {name} "
            f"({(governing or '')[:12]}) along its first-parent line; {u.new[:12]} does not, so it "
            "could bring back skills that were revoked or replaced",
            f"create it from the current tip: git push origin {name}:{branch}",
            commit=u.new,
        )
        return True

    # -- protected branches ------------------------------------------------------------

    def check_protected_branch(self, u: Update) -> None:
        branch = u.ref[len("refs/heads/") :]
        if _is_zero(u.new):
            self.reject(
                u.ref,
                "protected-branch-delete",
                f"{branch} is protected and cannot be deleted",
                "leave the branch; revoke skills with `git kavi revoke-skill`",
            )
            return
        if not _is_zero(u.old) and not self.repo.is_ancestor(u.old, u.new):
            self.reject(
                u.ref,
                "non-fast-forward",
                f"force-push to protected branch {branch} ({u.old[:12]} is not an ancestor of {u.new[:12]})",
                f"fetch, rebase or merge onto origin/{branch}, then push without --force",
                commit=u.new,
            )
            return
        hide = self._protected_tips(u.ref) if _is_zero(u.old) else [u.old]
        new_commits = set(self.repo.walk_new_commits(u.new, hide))
        chain: list[str] = []
        current: str | None = u.new
        while current is not None and current in new_commits:
            chain.append(current)
            parents = self.repo.commit_meta(current)[1]
            current = parents[0] if parents else None
        if _is_zero(u.old) and self._stale_start(u, branch, current):
            return
        if not _is_zero(u.old) and current != u.old:
            # the branch's old tip must stay on its first-parent line; otherwise a merge whose
            # first parent is another line could bring old versions of protected files back
            # without any commit on the line "changing" them
            self.reject(
                u.ref,
                "first-parent",
                f"the first-parent history of {branch} does not pass through its current tip "
                f"{u.old[:12]} (a merge of {branch} into another branch, pushed as {branch})",
                f"rebase onto origin/{branch} (`git pull --rebase`) or merge your branch into {branch} "
                f"(so {branch} stays the first parent), then push",
                commit=u.new,
            )
            return
        found = len(self.rejections)
        for commit in reversed(chain):
            self.check_commit(u, branch, commit)
            if len(self.rejections) > found:
                return  # the first bad commit refuses the push; the rest need no verifying

    def _guarded_tops(self, tree: str | None, layouts: Sequence[HookConfig]) -> frozenset[tuple[str, str]]:
        """The top-level entries that could hold a protected path: folded names matching a
        protected first component, and every non-ASCII name (decided by the full diff)."""
        if tree is None:
            return frozenset()
        firsts = {
            fold_component(p.split("/", 1)[0])
            for cfg in (self._config, *layouts)
            for p in (KAVI_DIR, cfg.skills_dir, cfg.tests_dir)
        } | {".gitattributes"}
        return frozenset(
            (n, o)
            for n, o in self.repo.top_entries(tree).items()
            if not n.isascii() or "~" in n or any(same_component(fold_component(n), f) for f in firsts)
        )

    def protected_changes(
        self, parent_tree: str | None, tree: str, layouts: Sequence[HookConfig] = ()
    ) -> list[RawDelta]:
        if self._guarded_tops(parent_tree, layouts) == self._guarded_tops(tree, layouts):
            return []
        return [
            d
            for d in self.repo.diff_raw(parent_tree, tree)
            if self.is_protected_path(d.old_path, layouts) or self.is_protected_path(d.new_path, layouts)
        ]

    def _layout_at(self, commit: str | None) -> list[HookConfig]:
        """The layout committed at ``commit`` when it differs from the pre-push one."""
        if commit is None:
            return []
        entry = self.repo.entry(commit, CONFIG_FILE)
        if entry is None:
            return []
        layout = self._config_from_blob(entry.oid)
        return [] if layout == self._config else [layout]

    def _signers_at(self, commit: str | None) -> str | None:
        if commit is None:
            return None
        data = self.repo.file_bytes(commit, SIGNERS_FILE)
        return None if data is None else data.decode("utf-8", "replace")

    def check_commit(self, u: Update, branch: str, commit: str) -> None:
        tree, parents = self.repo.commit_meta(commit)
        parent = parents[0] if parents else None
        parent_tree = self.repo.commit_meta(parent)[0] if parent else None
        layouts = self._layout_at(parent)
        changes = self.protected_changes(parent_tree, tree, layouts)
        if not changes:
            return
        info = self.repo.commit(commit)
        fields = trailers(info.message)
        action = fields.get("Kavi-Action")
        skill_paths = [d for d in changes if not _governance_path(d.path)]
        if action == "promote" and len(info.parents) == 2:
            self.check_promotion(u, branch, commit, info.tree, info.parents, fields, parent_tree)
            return
        if action == "revoke" and len(info.parents) == 1:
            self.check_revocation(u, branch, commit, info.tree, fields, parent, parent_tree)
            return
        if skill_paths:
            first = skill_paths[0]
            what = {"DELETED": "deletes", "ADDED": "adds", "MODIFIED": "modifies"}.get(
                first.status, "changes"
            )
            if first.status == "MODIFIED" and first.old_mode != first.new_mode:
                what = f"changes the mode ({first.old_mode:o} → {first.new_mode:o}) of"
            context = " inside a merge that is not a Kavi promotion" if len(info.parents) > 1 else ""
            self.reject(
                u.ref,
                "protected-path",
                f"commit {what} protected path {first.path}{context}; only signed Kavi promotions "
                "and revocations may change skills, their tests and the registry",
                PROMOTE_REMEDY.format(branch=branch),
                commit=commit,
                path=first.path,
            )
            return
        self.check_governance(u, commit, info.tree, parent, parent_tree, changes)

    def check_governance(
        self,
        u: Update,
        commit: str,
        tree: str,
        parent: str | None,
        parent_tree: str | None,
        changes: list[RawDelta],
    ) -> None:
        path = changes[0].path
        had_kavi = parent_tree is not None and self.repo.entry(parent_tree, KAVI_DIR) is not None
        if not had_kavi:
            if any(d.path == KAVI_DIR or d.path.startswith(KAVI_DIR + "/") for d in changes):
                self._check_bootstrap(u, commit, tree)
            return  # before Kavi governs the branch, .gitattributes is anyone's
        ok, detail = self.signed_ok(commit, at=parent)
        if not ok:
            self.reject(
                u.ref,
                "governance-untrusted",
                f"changes {path} without a signature from a key trusted before the change ({detail})",
                "sign the commit with a key already listed in .kavi/allowed_signers "
                "(git commit -S with gpg.format=ssh); a new key cannot approve its own addition",
                commit=commit,
                path=path,
            )

    def _check_bootstrap(self, u: Update, commit: str, tree: str) -> None:
        """The commit that first adds ``.kavi/``: exactly the pinned trust root, signed by it."""
        signers = self.repo.file_bytes(tree, SIGNERS_FILE)
        found = signer_lines(signers.decode("utf-8", "replace")) if signers else set()
        if found != signer_lines(self.pinned.signers):
            self.reject(
                u.ref,
                "trust-root-mismatch",
                "the commit that first adds .kavi/ must carry exactly the trust root pinned when "
                "the server hook was installed",
                "commit the pinned .kavi/allowed_signers (or reinstall the hook with "
                "`git kavi hooks install --server <repo> --trust FILE`)",
                commit=commit,
                path=SIGNERS_FILE,
            )
            return
        verdict = commit_verdict(self.repo, commit, self.pinned.signers)
        if not verdict.ok:
            self.reject(
                u.ref,
                "trust-root-unsigned",
                f"the commit that first adds .kavi/ must be signed by a key of the pinned trust root "
                f"({verdict.detail}): it decides the forge's configuration and policy",
                "sign it with a trusted key: `git commit --amend -S` on the `git kavi init` commit "
                "(or `git rebase --exec 'git commit --amend --no-edit -S'`), then push again",
                commit=commit,
                path=KAVI_DIR,
            )

    # -- promotions and revocations ---------------------------------------------------

    def _changed(self, parent_tree: str | None, tree: str) -> dict[str, RawDelta]:
        return {d.path: d for d in self.repo.diff_raw(parent_tree, tree)}

    def check_promotion(
        self,
        u: Update,
        branch: str,
        commit: str,
        tree: str,
        parents: tuple[str, ...],
        f: dict[str, str],
        parent_tree: str | None,
    ) -> None:
        remedy = PROMOTE_REMEDY.format(branch=branch)
        ok, detail = self.signed_ok(commit, at=parents[0])
        if not ok:
            why = "unsigned" if detail == "unsigned" else f"not signed by an allowed signer ({detail})"
            self.reject(u.ref, "promotion-signature", f"promotion merge is {why}", remedy, commit=commit)
            return
        name, version = f.get("Kavi-Skill", ""), f.get("Kavi-Version", "")
        cfg = self._config
        skill_path, test_path = f"{cfg.skills_dir}/{name}.py", f"{cfg.tests_dir}/test_skill_{name}.py"
        registry_path = f"{cfg.skills_dir}/registry.yaml"
        if f.get("Kavi-Skill-Path") != skill_path or f.get("Kavi-Test-Path") != test_path:
            self.reject(
                u.ref,
                "promotion-paths",
                f"promotion of {name!r} names paths that are not the skill "
                f"layout ({skill_path}, {test_path})",
                remedy,
                commit=commit,
            )
            return
        expected = {
            skill_path: f.get("Kavi-Skill-Blob"),
            test_path: f.get("Kavi-Test-Blob"),
            registry_path: f.get("Kavi-Registry-Blob"),
        }
        changed = self._changed(parent_tree, tree)
        for path, delta in changed.items():
            if path not in expected:
                self.reject(
                    u.ref,
                    "promotion-extra-path",
                    f"promotion merge of {name} also changes {path}; a promotion may only add the skill, "
                    "its test and the registry entry",
                    remedy,
                    commit=commit,
                    path=path,
                )
                return
            if delta.status not in ("ADDED", "MODIFIED") or delta.new_mode != MODE_BLOB:
                self.reject(
                    u.ref,
                    "promotion-mode",
                    f"promotion merge {delta.status.lower()}s {path} "
                    f"(mode {delta.new_mode:o}); only regular 100644 files",
                    remedy,
                    commit=commit,
                    path=path,
                )
                return
            if delta.new_oid != expected[path]:
                self.reject(
                    u.ref,
                    "promotion-binding",
                    f"{path} in the merge tree ({delta.new_oid[:12]}) is not the "
                    f"blob the promotion names ({(expected[path] or '-')[:12]})",
                    remedy,
                    commit=commit,
                    path=path,
                )
                return
        build = parents[1]
        for path in (skill_path, test_path):
            entry = self.repo.entry(build, path)
            if entry is None or entry.oid != expected[path]:
                self.reject(
                    u.ref,
                    "promotion-build-mismatch",
                    f"{path} in the merge differs from the build commit {build[:12]} it claims to promote",
                    remedy,
                    commit=commit,
                    path=path,
                )
                return
        problem = self._registry_problem(
            parent_tree,
            tree,
            registry_path,
            name,
            version,
            expected[skill_path],
            expected[test_path],
            skill_path,
            test_path,
        )
        if problem:
            self.reject(u.ref, "registry-mismatch", problem, remedy, commit=commit, path=registry_path)
            return
        self._check_binding_tag(u, commit, tree, f"kavi/{name}/v{version}", f, remedy)

    def _registry(self, tree: str | None, path: str) -> dict[str, dict[str, object]] | None:
        from kavi.errors import KaviError
        from kavi.forge.registry import parse_registry

        data = self.repo.file_bytes(tree, path) if tree else None
        if data is None:
            return {}
        try:
            registry = parse_registry(data.decode("utf-8", "replace"), source=path)
        except KaviError:
            return None
        return {n: e.model_dump() for n, e in registry.skills.items()}

    def _registry_problem(
        self,
        parent_tree: str | None,
        tree: str,
        path: str,
        name: str,
        version: str,
        blob: str | None,
        test_blob: str | None,
        skill_path: str,
        test_path: str,
    ) -> str | None:
        import hashlib

        before, after = self._registry(parent_tree, path), self._registry(tree, path)
        if after is None or before is None:
            return f"{path} is not a valid Kavi registry"
        entry = after.get(name)
        if entry is None:
            return f"{path} has no entry for {name}"
        data = self.repo.read_blob(blob) if blob and self.repo.has_object(blob) else b""
        wanted = {
            "version": int(version) if version.isdigit() else version,
            "blob": blob,
            "test_blob": test_blob,
            "file": skill_path,
            "test_file": test_path,
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        for key, value in wanted.items():
            if entry.get(key) != value:
                return f"{path} records {key}={entry.get(key)!r} for {name}, the promotion says {value!r}"
        others_before = {n: e for n, e in before.items() if n != name}
        others_after = {n: e for n, e in after.items() if n != name}
        if others_before != others_after:
            changed = sorted(set(others_before) ^ set(others_after)) or sorted(
                n for n in others_after if others_after[n] != others_before.get(n)
            )
            return f"the promotion of {name} also changes the registry entries of {', '.join(changed)}"
        return None

    def _check_binding_tag(
        self, u: Update, commit: str, tree: str, tag_name: str, f: dict[str, str], remedy: str
    ) -> None:
        ref = f"refs/tags/{tag_name}"
        tag_oid = self.pushed.get(ref) or self._before(ref) or self.repo.ref_target(ref)
        if tag_oid is None or _is_zero(tag_oid):
            self.reject(
                u.ref,
                "promotion-binding",
                f"no signed tag {tag_name} binds this commit (push the tag in the same push)",
                remedy + f"; push with `git push origin {u.ref} {ref}`",
                commit=commit,
            )
            return
        tag = read_tag(self.repo, tag_oid)
        if tag is None:
            self.reject(u.ref, "promotion-binding", f"{ref} is not an annotated tag", remedy, commit=commit)
            return
        ok, detail = self.tag_ok(tag)
        tf = trailers(tag.message)
        if not ok:
            self.reject(
                u.ref,
                "promotion-binding",
                f"tag {tag_name} is not signed by an allowed signer ({detail})",
                remedy,
                commit=commit,
            )
            return
        if tag.target != commit or tf.get("Kavi-Tree") != tree:
            self.reject(
                u.ref,
                "promotion-binding",
                f"tag {tag_name} binds {tag.target[:12]} / tree "
                f"{tf.get('Kavi-Tree', '-')[:12]}, not this commit and tree",
                remedy,
                commit=commit,
            )
            return
        for key in ("Kavi-Skill-Blob", "Kavi-Test-Blob", "Kavi-Registry-Blob"):
            if tf.get(key) != f.get(key):
                self.reject(
                    u.ref,
                    "promotion-binding",
                    f"tag {tag_name} and the commit disagree on {key}",
                    remedy,
                    commit=commit,
                )
                return

    def check_revocation(
        self,
        u: Update,
        branch: str,
        commit: str,
        tree: str,
        f: dict[str, str],
        parent: str | None,
        parent_tree: str | None,
    ) -> None:
        remedy = (
            "revoke skills with `git kavi revoke-skill <name>` (signed by a trusted key) and push its tag"
        )
        ok, detail = self.signed_ok(commit, at=parent)
        if not ok:
            self.reject(
                u.ref,
                "revocation-signature",
                f"revocation commit is not signed by an allowed signer ({detail})",
                remedy,
                commit=commit,
            )
            return
        name = f.get("Kavi-Skill", "")
        cfg = self._config
        allowed_deleted = {f"{cfg.skills_dir}/{name}.py", f"{cfg.tests_dir}/test_skill_{name}.py"}
        registry_path = f"{cfg.skills_dir}/registry.yaml"
        for path, delta in self._changed(parent_tree, tree).items():
            if path in allowed_deleted and delta.status == "DELETED":
                continue
            if (
                path == registry_path
                and delta.status == "MODIFIED"
                and delta.new_oid == f.get("Kavi-Registry-Blob")
            ):
                continue
            self.reject(
                u.ref,
                "revocation-extra-path",
                f"revocation of {name} also changes {path}",
                remedy,
                commit=commit,
                path=path,
            )
            return
        before, after = self._registry(parent_tree, registry_path), self._registry(tree, registry_path)
        if (
            before is None
            or after is None
            or name not in before
            or after != {n: e for n, e in before.items() if n != name}
        ):
            self.reject(
                u.ref,
                "registry-mismatch",
                f"{registry_path} after the revocation must be the registry before it minus {name}",
                remedy,
                commit=commit,
                path=registry_path,
            )
            return
        tag_name = f.get("Kavi-Tag", "")
        ref = f"refs/tags/{tag_name}"
        tag_oid = self.pushed.get(ref) or self.repo.ref_target(ref)
        tag = read_tag(self.repo, tag_oid) if tag_oid and not _is_zero(tag_oid) else None
        if tag is None or not tag_name.startswith(f"kavi/{name}/"):
            self.reject(
                u.ref,
                "revocation-binding",
                f"no signed revocation tag {tag_name or '(none)'} binds this commit",
                remedy,
                commit=commit,
            )
            return
        ok, detail = self.tag_ok(tag)
        if not ok or tag.target != commit or trailers(tag.message).get("Kavi-Tree") != tree:
            self.reject(
                u.ref,
                "revocation-binding",
                f"tag {tag_name} does not bind this commit with a trusted signature ({detail})",
                remedy,
                commit=commit,
            )

    # -- ledger mirror and notes -----------------------------------------------------------

    def check_signed_chain(self, u: Update, *, ledger: bool) -> None:
        what = "the ledger mirror" if ledger else "the Kavi notes"
        remedy = (
            "extend it with Kavi (`git kavi ledger sync`), fetch and import others' events "
            "(`git kavi ledger import`), never rewrite it"
        )
        if _is_zero(u.new):
            self.reject(
                u.ref, "ledger-delete" if ledger else "notes-delete", f"{what} cannot be deleted", remedy
            )
            return
        if self.repo.object_type(u.new) != "commit":
            self.reject(
                u.ref,
                "ledger-object" if ledger else "notes-object",
                f"{what} must point at a commit, not a {self.repo.object_type(u.new)}",
                remedy,
                commit=u.new,
            )
            return
        if not _is_zero(u.old) and not self.repo.is_ancestor(u.old, u.new):
            self.reject(
                u.ref,
                "ledger-rewrite" if ledger else "notes-rewrite",
                f"{what} only fast-forwards; {u.old[:12]} is not an ancestor of {u.new[:12]}",
                remedy,
                commit=u.new,
            )
            return
        new = self.repo.walk_new_commits(u.new, [] if _is_zero(u.old) else [u.old])
        prev_event = None
        if ledger and not _is_zero(u.old):
            from kavi.gitstore.mirror import parse_event

            prev_event = parse_event(self.repo.commit(u.old).message)
        infos = {c: self.repo.commit(c) for c in new}
        claims = {c: trailers(i.message).get("Kavi-Signer") if ledger else None for c, i in infos.items()}
        self._prefetch_signatures([(c, claims[c]) for c in new])
        for commit in new:
            info = infos[commit]
            ok, detail = self.signed_ok(commit, claims[commit])
            if not ok:
                self.reject(
                    u.ref,
                    "ledger-signature" if ledger else "notes-signature",
                    f"commit in {what} is not signed by an allowed signer ({detail})",
                    remedy,
                    commit=commit,
                )
                return
            if not ledger:
                continue
            problem = self._ledger_link(info.parents, info.message, prev_event)
            if problem:
                self.reject(u.ref, "ledger-chain", problem, remedy, commit=commit)
                return
            from kavi.gitstore.mirror import parse_event

            prev_event = parse_event(info.message)

    def _ledger_link(self, parents: tuple[str, ...], message: str, prev: object) -> str | None:
        from kavi.gitstore.mirror import parse_event
        from kavi.ledger.models import Event
        from kavi.ledger.store import event_hash

        if len(parents) > 1:
            return "the ledger mirror must be linear (merge commit)"
        event = parse_event(message)
        if event is None:
            return "commit carries no parsable ledger event"
        expected_seq = prev.seq + 1 if isinstance(prev, Event) else 1
        expected_prev = prev.hash if isinstance(prev, Event) else ""
        if event.seq != expected_seq:
            return f"gap: expected event #{expected_seq}, found #{event.seq}"
        if event.prev_hash != expected_prev:
            return f"event #{event.seq} does not link to the previous event (rewrite)"
        if event_hash(event.model_dump(mode="json")) != event.hash:
            return f"event #{event.seq} content does not match its hash"
        return None

    # -- tags --------------------------------------------------------------------------------

    def check_tag_ref(self, u: Update) -> None:
        remedy = (
            "Kavi tags are written once by `git kavi promote-skill` / `revoke-skill`; promote a new version"
        )
        if _is_zero(u.new):
            self.reject(u.ref, "tag-delete", "Kavi tags are never deleted", remedy)
            return
        if not _is_zero(u.old):
            self.reject(
                u.ref, "tag-moved", f"Kavi tags are never moved ({u.old[:12]} → {u.new[:12]})", remedy
            )
            return
        tag = read_tag(self.repo, u.new)
        if tag is None:
            self.reject(
                u.ref, "tag-not-annotated", "Kavi tags must be signed annotated tags", remedy, commit=u.new
            )
            return
        if tag.name != u.ref[len("refs/tags/") :]:
            self.reject(
                u.ref,
                "tag-name",
                f"the tag object is named {tag.name!r}, not {u.ref[len('refs/tags/') :]!r}",
                remedy,
            )
            return
        ok, detail = self.tag_ok(tag)
        if not ok:
            self.reject(
                u.ref,
                "tag-signature",
                f"tag is not signed by an allowed signer ({detail})",
                remedy,
                commit=tag.target,
            )
