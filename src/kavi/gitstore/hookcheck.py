"""The server-side rules: which ref updates of one push are sanctioned by Kavi.

Decided from git objects alone (no ledger database), with the one trust rule of
:mod:`kavi.gitstore.trustchain` — the same a clone applies to its own history:

* the **governing branch** is found by following ``target_branch`` from the branch
  pinned at install through the committed configs; trust and configuration are read
  from it, **after the push** as well as before (a branch protected by the push, or a
  key removed by it, counts for the whole push);
* protected branches (pinned ∪ configured before ∪ after the push) never move backwards
  or disappear, keep their old tip on the first-parent line, and every commit they newly
  reach is judged (all parents); a new protected branch grows from the governing tip;
  a branch that becomes protected by the push is judged as if it were created now; a
  lagging protected branch signs with keys the governing branch still trusts and never
  takes a skill version the governing branch has revoked or replaced;
* ``refs/kavi/ledger`` and ``refs/notes/kavi`` only fast-forward; every new commit is a
  record of this forge, judged by :mod:`kavi.gitstore.record_rules`; ledger events are
  contiguous, hash-chained and linear;
* ``refs/tags/kavi/*`` are created once, as signed tags of this forge naming a promotion
  or revocation that is on a protected branch after the push;
* refs that alias, shadow or block Kavi's (case variants, symbolic refs, symlinked ref
  directories, ``refs/replace/*``, look-alike notes refs) are refused.

At most ten rejections are reported; one refuses the whole push.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from kavi.gitstore import promotion_rules
from kavi.gitstore.govstate import GovReader
from kavi.gitstore.protected import Layout
from kavi.gitstore.record_rules import LineIndex, RecordJudge
from kavi.gitstore.rejection import REPUBLISH_HINT, Rejection, non_fast_forward, protected_delete
from kavi.gitstore.repo import ZERO_OID, GitRepo
from kavi.gitstore.symref import alias_target
from kavi.gitstore.trust import SigCache
from kavi.gitstore.trustchain import Judge, Scope, TrustRoot, find_root
from kavi.textsafe import fold

LEDGER_REF = "refs/kavi/ledger"  # kavi.gitstore.mirror's, imported lazily (it brings pydantic)
NOTES_REF = "refs/notes/kavi"
TAG_PREFIX = "refs/tags/kavi/"
_KAVI_REFS = (LEDGER_REF, NOTES_REF, TAG_PREFIX + "x/v1")
MAX_REJECTIONS = 10

__all__ = ["HookChecker", "Pinned", "Rejection", "Update"]


@dataclass(frozen=True)
class Update:
    old: str
    new: str
    ref: str


@dataclass
class Pinned:
    """What was pinned at install time: the trust root (and the forge id, when known) and
    the layout of an empty repository (its first protected branch is where governance
    starts)."""

    signers: str
    layout: Layout = field(default_factory=Layout)
    forge_id: str | None = None
    cache_dir: str | None = None  # the bare repo's kavi/: parsed configs, the derived forge id


def _is_zero(oid: str | None) -> bool:
    return oid is None or oid == ZERO_OID or set(oid) == {"0"}


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
        from pathlib import Path

        self.repo = repo
        self.pinned = pinned
        self.updates = list(updates)
        self.before = before
        self.pushed = {u.ref: u.new for u in self.updates}
        self.rejections: list[Rejection] = []
        cache = Path(pinned.cache_dir) if pinned.cache_dir else None
        self.gov = GovReader(repo, default=pinned.layout, cache_dir=cache)
        self.sigs = SigCache(repo)
        pre_chain: list[Layout] = []
        post_chain: list[Layout] = []
        self.pre_ref, self.pre_tip = self._governing(self._before, pre_chain, remember=True)
        self.post_ref, self.post_tip = self._governing(self._after, post_chain)
        self.pre_layout = self.gov.layout(self.pre_tip, remember=True) if self.pre_tip else pinned.layout
        self.post_layout = self.gov.layout(self.post_tip) if self.post_tip else self.pre_layout
        # every config on the way to the governing branch protects what it names (its
        # target included), before and after the push
        self.pre_protected = self._names(pinned.layout.protected, *(lay.protected for lay in pre_chain))
        self.protected = self._names(self.pre_protected, *(lay.protected for lay in post_chain))
        for name in self.pre_protected:  # already on the server: the fast lane may read them
            tip = self._before(f"refs/heads/{name}")
            if tip is not None and self.repo.object_type(tip) == "commit":
                self.gov.trusted_files(tip, self.gov.layout(tip, remember=True), remember=True)
        forge_id = pinned.forge_id or self._known_forge_id()
        self.judge = Judge(
            repo, TrustRoot(pinned.signers, forge_id), gov=self.gov, sigs=self.sigs, tag_of=self._tag_of
        )

    # -- state before and after the push --------------------------------------------------

    def _before(self, ref: str) -> str | None:
        if self.before is not None:
            value = self.before.get(ref)
            return None if _is_zero(value) or not self.repo.has_object(value or "") else value
        return self.repo.ref_target(ref)

    def _after(self, ref: str) -> str | None:
        if ref in self.pushed:
            new = self.pushed[ref]
            return None if _is_zero(new) else new
        return self._before(ref)

    def _tag_of(self, ref: str) -> str | None:
        return self._after(ref) or self.repo.ref_target(ref)

    def _governing(
        self, read: Callable[[str], str | None], chain: list[Layout], *, remember: bool = False
    ) -> tuple[str | None, str | None]:
        """Follow ``target_branch`` from the first pinned branch through committed configs
        (``chain`` collects the layouts met on the way)."""
        branch = self.pinned.layout.protected[0]
        found: tuple[str | None, str | None] = (None, None)
        seen: set[str] = set()
        while branch not in seen:
            seen.add(branch)
            tip = read(f"refs/heads/{branch}")
            if tip is None or self.repo.object_type(tip) != "commit":
                break
            found = (f"refs/heads/{branch}", tip)
            layout = self.gov.layout(tip, remember=remember)
            chain.append(layout)
            branch = layout.target_branch
        return found

    @staticmethod
    def _names(*groups: Sequence[str]) -> tuple[str, ...]:
        out: list[str] = []
        for group in groups:
            out.extend(b for b in group if b not in out)
        return tuple(out)

    @property
    def protected_branches(self) -> list[str]:
        return [f"refs/heads/{b}" for b in self.protected]

    def _known_forge_id(self) -> str | None:
        """The forge id the server already knows: derived once from its governing line."""
        from pathlib import Path

        cache = Path(self.pinned.cache_dir) / "forge-id" if self.pinned.cache_dir else None
        if cache is not None:
            try:
                text = cache.read_text().strip()
                if len(text) == 40 and self.repo.has_object(text):
                    return text
            except OSError:
                pass
        root = find_root(self.gov, self.pre_tip) if self.pre_tip else None
        if root is not None and cache is not None:
            try:
                cache.write_text(root + "\n")
            except OSError:
                pass
        return root

    def _signers_after(self) -> str | None:
        if self.post_tip is None or not self.gov.has_keys(self.post_tip):
            return None
        return self.gov.signers(self.post_tip)

    def _scope(self, ref: str) -> Scope:
        bound = None if ref == self.post_ref else self._signers_after()
        return Scope(ref, (self.pre_layout, self.post_layout), bound)

    def reject(self, rejection: Rejection | None) -> bool:
        if rejection is not None:
            self.rejections.append(rejection)
        return rejection is not None

    # -- entry point ----------------------------------------------------------------------

    def check(self) -> list[Rejection]:
        guarded = [*self.protected_branches, LEDGER_REF, NOTES_REF]
        branches = [u for u in self.updates if u.ref in self.protected_branches]
        rest = [u for u in self.updates if u.ref not in self.protected_branches]
        order = branches + [Update(ZERO_OID, tip, ref) for ref, tip in self._newly_protected()] + rest
        for index, u in enumerate(order):
            if len(self.rejections) >= MAX_REJECTIONS:
                # one rejection refuses the whole push: judging (and verifying) the rest
                # would only let a push of thousands of bad refs burn the server's CPU
                self.reject(
                    Rejection(
                        "(the rest of the push)",
                        "not-judged",
                        f"{len(order) - index} more ref update(s) were not checked after "
                        f"{MAX_REJECTIONS} rejections",
                        "fix the problems above and push again",
                    )
                )
                break
            if self.reject(self._ref_name_problem(u, guarded)):
                continue
            if u.ref in self.protected_branches:
                self.check_protected_branch(u, implicit=u.ref not in self.pushed)
            elif u.ref == LEDGER_REF:
                self.check_records(u, ledger=True)
            elif u.ref == NOTES_REF:
                self.check_records(u, ledger=False)
            elif u.ref.startswith(TAG_PREFIX):
                self.check_tag_ref(u)
            elif u.ref.startswith("refs/kavi/"):
                self.reject(
                    Rejection(
                        u.ref,
                        "unknown-kavi-ref",
                        "only refs/kavi/ledger is allowed under refs/kavi/",
                        "push refs/kavi/ledger only",
                    )
                )
        return self.rejections

    def _newly_protected(self) -> list[tuple[str, str]]:
        """Branches the push makes protected that already exist and are not pushed now."""
        out = []
        for name in self.protected:
            ref = f"refs/heads/{name}"
            if name in self.pre_protected or ref in self.pushed:
                continue
            tip = self._before(ref)
            if tip is not None:
                out.append((ref, tip))
        return out

    def _ref_name_problem(self, u: Update, guarded: list[str]) -> Rejection | None:
        alias = next((g for g in guarded if fold(u.ref) == fold(g) and u.ref != g), None)
        if alias is None and fold(u.ref).startswith(fold(TAG_PREFIX)) and not u.ref.startswith(TAG_PREFIX):
            alias = TAG_PREFIX + "…"
        if alias is not None:
            return Rejection(
                u.ref,
                "ref-alias",
                f"{u.ref} differs from Kavi's {alias} only in case or "
                "normalisation (the same file on a case-insensitive server)",
                f"use {alias} itself",
            )
        target = alias_target(self.repo.git_dir, u.ref)
        if target is not None:
            return Rejection(
                u.ref,
                "symbolic-ref",
                f"{u.ref} is a symbolic ref to {target} on this server: the update would land "
                f"on {target} without being judged as {target}",
                f"push to {target} itself",
            )
        blocked = next((k for k in _KAVI_REFS if fold(k).startswith(fold(u.ref) + "/")), None)
        if blocked is not None:
            return Rejection(
                u.ref,
                "ref-conflict",
                f"a ref named {u.ref} would stop git from creating Kavi's {blocked} "
                "(a file where a directory must be)",
                "choose another name; Kavi needs refs/tags/kavi/*, refs/kavi/ledger and refs/notes/kavi",
            )
        if u.ref.startswith("refs/replace/"):
            return Rejection(
                u.ref,
                "replace-ref",
                "replace refs would make git show other objects in place of the ones Kavi checked",
                "do not push refs/replace/*; rewrite history instead",
            )
        if u.ref.startswith(NOTES_REF) and u.ref != NOTES_REF:
            return Rejection(
                u.ref,
                "unknown-kavi-ref",
                f"{u.ref} looks like Kavi's notes (git log shows refs/notes/kavi*) "
                "but is not refs/notes/kavi",
                "use a notes ref outside refs/notes/kavi*",
            )
        return None

    # -- protected branches ------------------------------------------------------------------

    def check_protected_branch(self, u: Update, *, implicit: bool = False) -> None:
        found = self._branch_problem(u)
        if found is not None and implicit:
            name = u.ref[len("refs/heads/") :]
            target = (self.post_ref or "refs/heads/main")[len("refs/heads/") :]
            found = Rejection(
                u.ref,
                "newly-protected",
                f"{name} already exists on this server and becomes protected by this push, but "
                f"its history breaks a rule ({found.rule}: {found.why})",
                f"reset it to the target branch first (`git push --force origin {target}:{name}` in a "
                f"push of its own), or do not protect {name}",
                commit=found.commit,
                path=found.path,
            )
        self.reject(found)

    def _branch_problem(self, u: Update) -> Rejection | None:
        branch = u.ref[len("refs/heads/") :]
        if _is_zero(u.new):
            return protected_delete(u.ref)
        if self.repo.object_type(u.new) != "commit":
            return Rejection(u.ref, "branch-object", f"{branch} must point at a commit", "push a commit")
        if not _is_zero(u.old) and not self.repo.is_ancestor(u.old, u.new):
            return non_fast_forward(u.ref, u.old, u.new)
        hide = ([self.pre_tip] if self.pre_tip else []) if _is_zero(u.old) else [u.old]
        ordered = self.repo.walk_new_commits(u.new, hide)
        new_set = set(ordered)
        chain: list[str] = []
        current: str | None = u.new
        while current is not None and current in new_set:
            chain.append(current)
            parents = self.gov.meta(current)[1]
            current = parents[0] if parents else None
        if _is_zero(u.old):
            if self.pre_tip is not None and current != self.pre_tip:
                name = (self.pre_ref or "")[len("refs/heads/") :]
                return Rejection(
                    u.ref,
                    "stale-branch",
                    f"a new protected branch {branch} must grow from the current tip of {name} "
                    f"({self.pre_tip[:12]}) along its first-parent line; {u.new[:12]} does not, so it "
                    "could bring back skills that were revoked or replaced",
                    f"create it from the current tip: git push origin {name}:{branch}",
                    commit=u.new,
                )
        elif current != u.old:
            # the branch's old tip must stay on its first-parent line; otherwise a merge whose
            # first parent is another line could bring old versions of protected files back
            return Rejection(
                u.ref,
                "first-parent",
                f"the first-parent history of {branch} does not pass through its current tip "
                f"{u.old[:12]} (a merge of {branch} into another branch, pushed as {branch})",
                f"rebase onto origin/{branch} (`git pull --rebase`) or merge your branch into {branch} "
                f"(so {branch} stays the first parent), then push; " + REPUBLISH_HINT,
                commit=u.new,
            )
        scope = self._scope(u.ref)
        found = self.judge.judge(scope, ordered, set(chain))
        if found is None and not self.gov.has_keys(u.new):
            # nothing with a key was changed (the judge refuses that): the branch has no root yet
            found = self._before_the_root(u, ordered)
        if found is None and scope.bound is not None:
            found = self._lagging_state(u)
        return found

    def _before_the_root(self, u: Update, commits: list[str]) -> Rejection | None:
        """A protected branch still without a root on a server that pins one: nothing Kavi
        protects may change there before the root arrives (it would vouch for whatever
        others put there first); the forge's history arrives with its root, in one push."""
        from kavi.gitstore.protected import PathRule

        rule = PathRule((self.pinned.layout, self.pre_layout, self.post_layout))
        for commit in commits:
            parents = self.gov.meta(commit)[1]
            changes = self.gov.changes(parents[0] if parents else None, commit, rule)
            if changes:
                return Rejection(
                    u.ref,
                    "no-root-yet",
                    f"changes {changes[0].path} on a protected branch that has no trust root yet; this "
                    "server pins one, so governance and skills arrive together with it",
                    "give the forge its root first (`git kavi trust add`), then push the branch",
                    commit=commit,
                    path=changes[0].path,
                )
        return None

    def _lagging_state(self, u: Update) -> Rejection | None:
        """A protected branch that is not the governing one may not take a skill version
        the governing branch has revoked or replaced."""
        gov = self.gov
        if self.post_tip is None:
            return None
        new = gov.registry(u.new, gov.layout(u.new)) or {}
        old = {} if _is_zero(u.old) else (gov.registry(u.old, gov.layout(u.old)) or {})
        current = gov.registry(self.post_tip, self.post_layout) or {}
        for name, entry in sorted(new.items()):
            if old.get(name) == entry or current.get(name) == entry:
                continue
            governing = (self.post_ref or "")[len("refs/heads/") :]
            now = current.get(name)
            state = f"has v{now.get('version')}" if now else "no longer has it (revoked)"
            return Rejection(
                u.ref,
                "lagging-state",
                f"{u.ref[len('refs/heads/') :]} would take {name} v{entry.get('version')}, which "
                f"{governing} has revoked or replaced ({governing} {state})",
                f"move it to {governing}'s tip instead: git push origin {governing}:{u.ref}",
                commit=u.new,
            )
        return None

    # -- ledger mirror and notes ------------------------------------------------------------

    def check_records(self, u: Update, *, ledger: bool) -> None:
        what = "the ledger mirror" if ledger else "the Kavi notes"
        kind = "ledger" if ledger else "notes"
        remedy = (
            "extend it with Kavi (`git kavi ledger sync`), fetch and import others' events "
            "(`git kavi ledger import`), never rewrite it; " + REPUBLISH_HINT
        )
        if _is_zero(u.new):
            self.reject(Rejection(u.ref, f"{kind}-delete", f"{what} cannot be deleted", remedy))
            return
        if self.repo.object_type(u.new) != "commit":
            self.reject(
                Rejection(
                    u.ref,
                    f"{kind}-object",
                    f"{what} must point at a commit, not a {self.repo.object_type(u.new)}",
                    remedy,
                    commit=u.new,
                )
            )
            return
        if not _is_zero(u.old) and not self.repo.is_ancestor(u.old, u.new):
            self.reject(
                Rejection(
                    u.ref,
                    f"{kind}-rewrite",
                    f"{what} only fast-forwards; {u.old[:12]} is not an ancestor of {u.new[:12]}",
                    remedy,
                    commit=u.new,
                )
            )
            return
        from kavi.gitstore.mirror import MirrorEntry, check_chain, parse_event_fields, walk_chain

        judge = self._record_judge(None if _is_zero(u.old) else u.old)
        found: dict[str, tuple[str, str]] = {}

        def signature(entry: MirrorEntry) -> str | None:
            problem = judge.problem(entry.commit, messages[entry.commit])
            if problem is not None:
                found[entry.commit] = problem
            return None if problem is None else problem[1]

        if ledger:
            entries = walk_chain(self.repo, u.new, stop=None if _is_zero(u.old) else u.old)
            messages = {e.commit: self.repo.commit(e.commit).message for e in entries}
            judge.prefetch(messages)
            after = None if _is_zero(u.old) else parse_event_fields(self.repo.commit(u.old).message)
            problems = check_chain(self.repo, entries, verify_signature=signature, after=after)
            first = next(iter(problems), None)
            if first is not None:
                own = found.get(first.commit)
                rule = f"ledger-{own[0]}" if own is not None and own[1] == first.problem else "ledger-chain"
                self.reject(
                    Rejection(u.ref, rule, f"commit in {what}: {first.problem}", remedy, commit=first.commit)
                )
            return
        new = self.repo.walk_new_commits(u.new, [] if _is_zero(u.old) else [u.old])
        messages = {c: self.repo.commit(c).message for c in new}
        judge.prefetch(messages)
        for commit in new:
            problem = judge.problem(commit, messages[commit])
            if problem is not None:
                self.reject(
                    Rejection(
                        u.ref, f"notes-{problem[0]}", f"commit in {what}: {problem[1]}", remedy, commit=commit
                    )
                )
                return

    def _record_judge(self, old: str | None) -> RecordJudge:
        forge_id = self.judge.forge_id
        line = LineIndex(self.repo, self.post_tip, forge_id)
        judge = RecordJudge(
            self.repo,
            gov=self.gov,
            sigs=self.sigs,
            forge_id=forge_id,
            line=line,
            branch=(self.post_ref or "the target branch")[len("refs/heads/") :],
            bound=self._signers_after(),
        )
        if old is not None:
            from kavi.gitstore.objects import trailers

            g = judge.governance(trailers(self.repo.commit(old).message))
            judge.last_position = line.position(g) if g is not None else None
        return judge

    # -- tags ----------------------------------------------------------------------------------

    def check_tag_ref(self, u: Update) -> None:
        remedy = (
            "Kavi tags are written once by `git kavi promote-skill` / `revoke-skill`; promote a new version"
        )
        if _is_zero(u.new):
            self.reject(Rejection(u.ref, "tag-delete", "Kavi tags are never deleted", remedy))
            return
        if not _is_zero(u.old):
            self.reject(
                Rejection(
                    u.ref, "tag-moved", f"Kavi tags are never moved ({u.old[:12]} → {u.new[:12]})", remedy
                )
            )
            return
        fallback = self._signers_after() or self.gov.signers(self.pre_tip) or self.pinned.signers
        self.reject(
            promotion_rules.tag_ref_problem(
                self.judge, Scope(u.ref), u.new, landed=self._landed, fallback_signers=fallback
            )
        )

    def _landed(self, commit: str) -> bool:
        for ref in self.protected_branches:
            tip = self._after(ref)
            if tip is not None and self.repo.is_ancestor(commit, tip):
                return True
        return False
