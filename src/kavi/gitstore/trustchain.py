"""The one trust rule: which commits of a protected history are sanctioned.

Used by the server hook (on what a push newly reaches) and by every clone (on its
target branch, from the pinned root): the same :class:`Judge`, the same verdicts.

A history starts keyless. The first commit on the first-parent line whose
``.kavi/allowed_signers`` lists an entry is the forge's **root**: it must carry exactly
the pinned trust root, be signed by one of its keys, and (once known) be the pinned
forge id — its id *is* the forge's identity, carried by every Kavi tag, ledger event and
notes commit. Before the root nothing is trusted and nothing is judged (the root's
signature vouches for the tree it carries). After it, every commit a protected branch
reaches is judged against its **first parent**, with the trust and layout committed
there:

* on the first-parent line, a change to a protected path must be a signed Kavi
  promotion or revocation bound by its signed tag, or a governance change (``.kavi/**``,
  protected ``.gitattributes``) signed by a key trusted at the parent; a signed change of
  ``skills_dir`` carries the registry to the new place; no change may leave the forge
  without a key;
* off the line (commits reached through a second parent), a governance state that is
  not one of the commit's parents' must be signed the same way, and no second root may
  appear; skill content there is judged where a line commit adopts it.

``bound`` adds a second trust source every signature must also satisfy: for a lagging
protected branch, the trust of the governing (target) branch after the push.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kavi.gitstore.govstate import GovReader
from kavi.gitstore.objects import TagInfo, trailers
from kavi.gitstore.protected import Layout, PathRule, governance_path, signer_lines
from kavi.gitstore.rejection import REPUBLISH_HINT, Rejection
from kavi.gitstore.repo import MODE_TREE, GitRepo, RawDelta

__all__ = ["PROMOTE_REMEDY", "REPUBLISH_HINT", "Judge", "Rejection", "Scope", "TrustRoot", "find_root"]
from kavi.gitstore.trust import SigCache
from kavi.layout import CONFIG_FILE, KAVI_DIR, SIGNERS_FILE
from kavi.sshsig import Verdict

PROMOTE_REMEDY = (
    "skill changes reach {branch} only through Kavi: `git kavi propose-skill`, `build-skill`, "
    "`verify-skill`, then `git kavi promote-skill <proposal>` (signed by a trusted key), and push "
    "the branch together with refs/tags/kavi/*, refs/notes/kavi and refs/kavi/ledger; " + REPUBLISH_HINT
)


@dataclass(frozen=True)
class TrustRoot:
    """What a server or a clone pinned: the root's allowed-signers text and, once known,
    the forge id (the root commit)."""

    signers: str
    forge_id: str | None = None

    @property
    def lines(self) -> frozenset[str]:
        return signer_lines(self.signers)


@dataclass(frozen=True)
class Scope:
    """What judging one branch's new commits needs besides the commits themselves."""

    ref: str
    layouts: tuple[Layout, ...] = ()  # governing layouts, applied to every commit too
    bound: str | None = None  # allowed-signers every signature must also satisfy

    @property
    def branch(self) -> str:
        return self.ref[len("refs/heads/") :] if self.ref.startswith("refs/heads/") else self.ref


class Judge:
    def __init__(
        self,
        repo: GitRepo,
        root: TrustRoot,
        *,
        gov: GovReader,
        sigs: SigCache | None = None,
        tag_of: Callable[[str], str | None] | None = None,
    ) -> None:
        self.repo = repo
        self.root = root
        self.gov = gov
        self.sigs = sigs or SigCache(repo)
        self.tag_of = tag_of or repo.ref_target
        self.root_commit: str | None = None  # the root met while judging

    @property
    def forge_id(self) -> str | None:
        return self.root.forge_id or self.root_commit

    # -- signatures ---------------------------------------------------------------------

    def signed(self, commit: str, at: str | None, scope: Scope, principal: str | None = None) -> Verdict:
        """Signed by a key the allowed-signers at ``at`` trusts (and ``scope.bound``, if any)."""
        signers = self.gov.signers(at)
        verdict = self.sigs.commit(commit, signers, principal)
        return self._bounded(verdict, signers, scope, lambda s: self.sigs.commit(commit, s, principal))

    def _bounded(
        self, verdict: Verdict, signers: str, scope: Scope, again: Callable[[str], Verdict]
    ) -> Verdict:
        if not verdict.ok or scope.bound is None or signer_lines(scope.bound) == signer_lines(signers):
            return verdict
        second = again(scope.bound)
        if second.ok:
            return verdict
        return Verdict(
            False,
            None,
            verdict.key_fingerprint,
            "the key is no longer trusted on the target branch (removed or restricted there)",
        )

    def tag_signed(self, tag: TagInfo, at: str | None, scope: Scope) -> Verdict:
        """A tag signed by a key trusted at ``at`` (its commit's first parent), and ``bound``."""
        signers = self.gov.signers(at)
        verdict = self.sigs.tag(tag, signers)
        return self._bounded(verdict, signers, scope, lambda s: self.sigs.tag(tag, s))

    def prefetch(self, commits: Sequence[str], scope: Scope) -> None:
        """Verify the signatures the rules will ask for, concurrently."""
        items: list[tuple[str, str, str | None]] = []
        for commit in commits:
            parents = self.gov.meta(commit)[1]
            if self.repo.extract_signature(commit) is None:
                continue
            items.append((commit, self.gov.signers(parents[0] if parents else None), None))
        self.sigs.prefetch(items)

    # -- history ------------------------------------------------------------------------

    def judge(self, scope: Scope, commits: Sequence[str], line: set[str]) -> Rejection | None:
        """Judge ``commits`` (parents before children); ``line`` are those on the branch's
        first-parent line. The first bad commit decides (nothing after it is verified)."""
        for commit in commits:
            found = self.judge_commit(scope, commit, on_line=commit in line)
            if found is not None:
                return found
        return None

    def judge_commit(self, scope: Scope, commit: str, *, on_line: bool) -> Rejection | None:
        gov = self.gov
        parents = gov.meta(commit)[1]
        parent = parents[0] if parents else None
        if not gov.has_keys(parent):
            if not gov.has_keys(commit):
                return None  # before the root nothing is trusted, so nothing can be forged
            if on_line:
                return self._root(scope, commit, parent)
            if any(gov.has_keys(p) and not self._governance_delta(p, commit) for p in parents[1:]):
                return None  # a merge that takes the governance of a rooted parent
            return Rejection(
                scope.ref,
                "foreign-root",
                "a commit reached through a merge gives a keyless history its own trust root; "
                "a forge has exactly one root, on its target branch's first-parent line",
                "do not merge another forge's history (or a second bootstrap) into a protected branch",
                commit=commit,
                path=SIGNERS_FILE,
            )
        layout = gov.layout(parent)
        rule = PathRule((layout, gov.layout(commit), *scope.layouts), gov.trusted_files(parent, layout))
        if not on_line:
            return self._side(scope, commit, parents, rule)
        changes = gov.changes(parent, commit, rule)
        if not changes:
            return None
        info = self.repo.commit(commit)
        fields = trailers(info.message)
        action = fields.get("Kavi-Action")
        from kavi.gitstore import promotion_rules

        if action == "promote" and len(parents) == 2:
            return promotion_rules.check_promotion(self, scope, commit, parents, fields, layout)
        if action == "revoke" and len(parents) == 1:
            return promotion_rules.check_revocation(self, scope, commit, parent, fields, layout)
        skill = [d for d in changes if not governance_path(d.path)]
        if skill and not self._carries_registry(commit, parent, skill):
            return self._protected_path(scope, commit, skill[0], merge=len(parents) > 1, fields=fields)
        return self._governance(scope, commit, parent, changes)

    # -- the root -----------------------------------------------------------------------

    def _root(self, scope: Scope, commit: str, parent: str | None) -> Rejection | None:
        """The commit that gives the history its first key: exactly the pinned root, signed by it."""
        found = signer_lines(self.gov.signers(commit))
        if found != self.root.lines:
            return Rejection(
                scope.ref,
                "trust-root-mismatch",
                "the commit that first lists keys in .kavi/allowed_signers must carry exactly the "
                "pinned trust root" + f" ({len(found)} entries here, {len(self.root.lines)} pinned)",
                "commit the pinned .kavi/allowed_signers (or pin the right root: "
                "`git kavi hooks install --server <repo> --trust FILE` on a server, "
                "`git kavi trust pin FILE` in a clone)",
                commit=commit,
                path=SIGNERS_FILE,
            )
        if self.root.forge_id is not None and commit != self.root.forge_id:
            return Rejection(
                scope.ref,
                "foreign-root",
                f"this is the trust root of another forge: this one's root is {self.root.forge_id[:12]}",
                "push this forge's own history (clone it from its server), not another forge's",
                commit=commit,
                path=SIGNERS_FILE,
            )
        verdict = self.sigs.commit(commit, self.root.signers)
        if not verdict.ok:
            return Rejection(
                scope.ref,
                "trust-root-unsigned",
                f"the commit that first lists keys must be signed by a key of the pinned trust root "
                f"({verdict.detail}): it decides the forge's configuration and policy",
                "sign it with a root key: `git commit --amend -S` on that commit (or "
                "`git rebase --exec 'git commit --amend --no-edit -S'`), then push again",
                commit=commit,
                path=KAVI_DIR,
            )
        rule = PathRule((self.gov.layout(parent), self.gov.layout(commit)))
        skill = [d for d in self.gov.changes(parent, commit, rule) if not governance_path(d.path)]
        if skill:
            return Rejection(
                scope.ref,
                "trust-root-content",
                f"the root commit also changes {skill[0].path}; it may change .kavi/ only",
                "make the root a commit of its own (`git kavi init` or `git kavi trust add`)",
                commit=commit,
                path=skill[0].path,
            )
        self.root_commit = commit
        return None

    # -- governance ------------------------------------------------------------------------

    def _governance_delta(self, parent: str, commit: str) -> list[RawDelta]:
        gov = self.gov
        rule = PathRule((gov.layout(parent), gov.layout(commit)))
        return [d for d in gov.changes(parent, commit, rule) if governance_path(d.path)]

    def _governance(
        self, scope: Scope, commit: str, parent: str | None, changes: list[RawDelta]
    ) -> Rejection | None:
        path = changes[0].path
        verdict = self.signed(commit, parent, scope)
        if not verdict.ok:
            return Rejection(
                scope.ref,
                "governance-untrusted",
                f"changes {path} without a signature from a key trusted before the change ({verdict.detail})",
                "sign the commit with a key already listed in .kavi/allowed_signers "
                "(git commit -S with gpg.format=ssh); a new key cannot approve its own addition",
                commit=commit,
                path=path,
            )
        if not self.gov.has_keys(commit):
            return Rejection(
                scope.ref,
                "trust-empty",
                "the change leaves .kavi/allowed_signers without any key: nobody could ever sign "
                "a promotion or a governance change again",
                "keep at least one key; rotate by adding the new key first (`git kavi trust add`), "
                "then removing the old one (`git kavi trust remove`)",
                commit=commit,
                path=SIGNERS_FILE,
            )
        return self._layout_move(scope, commit, parent)

    def _layout_move(self, scope: Scope, commit: str, parent: str | None) -> Rejection | None:
        gov = self.gov
        before, after = gov.layout(parent), gov.layout(commit)
        if before.same_dirs(after) or parent is None:
            return None
        adopted = self._unpromoted(parent, before, after)
        if adopted is not None:
            return Rejection(
                scope.ref,
                "layout-move",
                f"the new layout would protect {adopted}, which nobody promoted: the moved-to "
                "directory must hold no skill content yet",
                "move skills_dir / tests_dir to a fresh directory (or remove the files in a commit "
                "of their own first)",
                commit=commit,
                path=adopted,
            )
        if before.skills_dir == after.skills_dir:
            return None
        old = self.repo.entry(gov.tree(parent), before.registry_path)
        if old is None:
            return None
        new = self.repo.entry(gov.tree(commit), after.registry_path)
        if new is not None and new.oid == old.oid:
            return None
        return Rejection(
            scope.ref,
            "layout-move",
            f"the commit moves skills_dir from {before.skills_dir} to {after.skills_dir} but leaves "
            f"the registry behind: {after.registry_path} must be {before.registry_path} as it was",
            f"carry it in the same signed commit: `mkdir -p {after.skills_dir} && git mv "
            f"{before.registry_path} {after.registry_path} && git commit --amend -S --no-edit` "
            "(skills stay where they were promoted; the registry keeps naming them)",
            commit=commit,
            path=CONFIG_FILE,
        )

    def _unpromoted(self, parent: str, before: Layout, after: Layout) -> str | None:
        """Skill content already in the directories a layout change starts protecting."""
        rule = PathRule((after,))
        old_rule = PathRule((before,), self.gov.trusted_files(parent, before))
        tree = self.gov.tree(parent)
        for directory in {after.skills_dir, after.tests_dir}:
            found = self.repo.entry(tree, directory)
            if found is None or found.mode != MODE_TREE:
                continue
            for entry in self.repo.walk_tree(found.oid, f"{directory}/"):
                if rule(entry.path) and not old_rule(entry.path) and entry.path != after.registry_path:
                    return entry.path
        return None

    def _carries_registry(self, commit: str, parent: str | None, skill: list[RawDelta]) -> bool:
        """A signed ``skills_dir`` move may carry the registry (and only it) to the new place."""
        gov = self.gov
        before, after = gov.layout(parent), gov.layout(commit)
        if before.skills_dir == after.skills_dir or parent is None:
            return False
        old = self.repo.entry(gov.tree(parent), before.registry_path)
        for d in skill:
            if d.path == before.registry_path and d.status == "DELETED":
                continue
            if (
                d.path == after.registry_path
                and d.status in ("ADDED", "MODIFIED")
                and old is not None
                and d.new_oid == old.oid
                and d.new_mode == old.mode
            ):
                continue
            return False
        return True

    def _side(self, scope: Scope, commit: str, parents: tuple[str, ...], rule: PathRule) -> Rejection | None:
        """A commit reached through a second parent: its governance state must be one of its
        parents', or a change signed by a key trusted at its first parent."""
        gov = self.gov
        changes = [d for d in gov.changes(parents[0], commit, rule) if governance_path(d.path)]
        if not changes:
            return None
        for other in parents[1:]:
            if not [d for d in gov.changes(other, commit, rule) if governance_path(d.path)]:
                return None
        verdict = self.signed(commit, parents[0], scope)
        if verdict.ok:
            return None
        return Rejection(
            scope.ref,
            "governance-untrusted",
            f"a commit reached through a merge changes {changes[0].path} without a signature from a "
            f"key trusted before it ({verdict.detail}); every commit a protected branch reaches counts",
            "sign governance changes with a trusted key on every branch you merge, or leave the "
            "commit out of the merge",
            commit=commit,
            path=changes[0].path,
        )

    def _protected_path(
        self, scope: Scope, commit: str, first: RawDelta, *, merge: bool, fields: dict[str, str]
    ) -> Rejection:
        what = {"DELETED": "deletes", "ADDED": "adds", "MODIFIED": "modifies"}.get(first.status, "changes")
        if first.status == "MODIFIED" and first.old_mode != first.new_mode:
            what = f"changes the mode ({first.old_mode:o} → {first.new_mode:o}) of"
        context = " inside a merge that is not a Kavi promotion" if merge else ""
        if "Kavi-Action" in fields and not merge:
            context = (
                " in a commit that looks like a rebased Kavi promotion (a rebase drops the signed merge)"
            )
        return Rejection(
            scope.ref,
            "protected-path",
            f"commit {what} protected path {first.path}{context}; only signed Kavi promotions "
            "and revocations may change skills, their tests and the registry",
            PROMOTE_REMEDY.format(branch=scope.branch),
            commit=commit,
            path=first.path,
        )


def find_root(gov: GovReader, tip: str | None) -> str | None:
    """The root on ``tip``'s first-parent line: the oldest commit of the unbroken run of
    commits with keys that ends at ``tip`` (None while the line is keyless)."""
    if tip is None or not gov.has_keys(tip):
        return None
    current = tip
    while True:
        parents = gov.meta(current)[1]
        if not parents or not gov.has_keys(parents[0]):
            return current
        current = parents[0]
