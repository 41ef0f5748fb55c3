"""A clone's trust: its pinned root and how far its target branch is sanctioned.

The same rule as the server hook (:mod:`kavi.gitstore.trustchain`), applied to this
clone's own history: every commit the target branch reaches, from the pinned root. The
first time a clone needs it, the root found on the target branch's first-parent line
is pinned ("trust on first use", printed with its key fingerprints) unless the user
pinned one before (``git kavi trust pin FILE|FINGERPRINT``); from then on a history
that does not grow from that root is refused, naming the commit and the rule.

Governance (config, policy, allowed signers) is read from the **governing commit**: the
newest commit of the target branch whose whole history is sanctioned. When a later
commit breaks a rule, reads stay on the last sanctioned state and every command that
writes to the target branch refuses, naming the commit and the rule.

Public API (issue 13 builds on it): :func:`trust_state`, :func:`governing_commit`,
:func:`forge_identity`, :func:`require_sanctioned_tip`, :func:`load_pin`,
:func:`pin_root`, :func:`record_judge`.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kavi.errors import GitError, TrustError

if TYPE_CHECKING:
    from kavi.forge.context import Forge
    from kavi.gitstore.govstate import GovReader
    from kavi.gitstore.record_rules import RecordJudge
    from kavi.gitstore.trustchain import Judge, Rejection, Scope, TrustRoot

PIN_FILE = "trust-root.json"
STATE_FILE = "trust-state.json"  # under the cache dir: derived, safe to delete


@dataclass(frozen=True)
class TrustState:
    branch: str  # the governing branch
    tip: str | None
    governing: str | None  # newest sanctioned commit (== tip when all is well)
    root: TrustRoot | None  # the pinned root (None while the forge is keyless)
    problem: Rejection | None = None
    chain: dict[str, str] = field(default_factory=dict)  # branch → tip followed to get here

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def forge_id(self) -> str | None:
        return self.root.forge_id if self.root is not None else None


# -- the pin ----------------------------------------------------------------------------


def load_pin(forge: Forge) -> TrustRoot | None:
    from kavi.gitstore.trustchain import TrustRoot

    try:
        data = json.loads((forge.kavi_dir / PIN_FILE).read_text(encoding="utf-8"))
        signers = str(data["signers"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    forge_id = data.get("forge_id")
    return TrustRoot(signers, forge_id if isinstance(forge_id, str) and len(forge_id) == 40 else None)


def pin_root(forge: Forge, root: TrustRoot, how: str) -> None:
    """Write the pin (atomically); the verification cache starts again from it."""
    from kavi.artifacts.vault import atomic_write
    from kavi.clock import now_iso

    data = {
        "version": 1,
        "forge_id": root.forge_id,
        "signers": root.signers,
        "how": how,
        "pinned_at": now_iso(),
    }
    atomic_write(forge.kavi_dir / PIN_FILE, (json.dumps(data, indent=2) + "\n").encode())
    (forge.kavi_dir / "cache" / STATE_FILE).unlink(missing_ok=True)


def fingerprints(signers: str) -> list[tuple[str, str]]:
    """(fingerprint, principals) of every key an allowed-signers text lists."""
    from kavi.errors import SigningError
    from kavi.sshsig import fingerprint, parse_allowed_signers

    out = []
    for entry in parse_allowed_signers(signers):
        try:
            out.append((fingerprint(entry.public_key), ",".join(entry.principals)))
        except (SigningError, ValueError):
            continue
    return out


def describe_root(root: TrustRoot) -> list[str]:
    lines = [f"forge {root.forge_id or '(not known yet)'}"]
    lines += [f"  {fp}  {who}" for fp, who in fingerprints(root.signers)]
    return lines


def _announce(root: TrustRoot, subject: str) -> None:
    sys.stderr.write(
        "kavi: pinned this clone's trust root on first use: "
        + f'forge {(root.forge_id or "")[:12]} ("{subject[:60]}")\n'
        + "".join(f"        {fp}  {who}\n" for fp, who in fingerprints(root.signers))
        + "      compare these fingerprints with your team; `git kavi trust show` prints them again\n"
    )
    sys.stderr.flush()


# -- verification ---------------------------------------------------------------------------


def _read_cached(forge: Forge) -> dict[str, Any] | None:
    try:
        data = json.loads((forge.kavi_dir / "cache" / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_cached(forge: Forge, state: TrustState, verified: dict[str, TrustState]) -> None:
    import os

    data = {
        "branch": state.branch,
        "tip": state.tip,
        "governing": state.governing,
        "problem": state.problem.as_dict() if state.problem is not None else None,
        "chain": state.chain,
        "forge_id": state.forge_id,
        # every branch verified on the way, so the next run starts from its governing commit
        "branches": {
            b: {"governing": s.governing, "ok": s.problem is None, "tip": s.tip} for b, s in verified.items()
        },
    }
    path = forge.kavi_dir / "cache" / STATE_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass  # a cache that cannot be written only costs speed


def cached_governing(forge: Forge) -> str | None:
    """The governing commit from the cache, if every branch followed is still where it was
    and the state had no problem (no pygit2: the hot path of ``run-skill``)."""
    from kavi import cache

    data = _read_cached(forge)
    if data is None or data.get("problem") is not None or not isinstance(data.get("chain"), dict):
        return None
    chain: dict[str, str] = data["chain"]
    if not chain or next(iter(chain)) != forge.config.target_branch:
        return None
    for branch, tip in chain.items():
        if cache.read_ref(forge.location.common_dir, f"refs/heads/{branch}") != tip:
            return None
    governing = data.get("governing")
    return governing if isinstance(governing, str) else None


def trust_state(forge: Forge) -> TrustState:
    """Verify (incrementally, cached) the governing branch's history from the pinned root."""
    from kavi.gitstore.govstate import GovReader
    from kavi.gitstore.protected import Layout

    repo = forge.repo
    gov = GovReader(
        repo,
        default=Layout(target_branch=forge.config.target_branch),
        cache_dir=forge.kavi_dir / "cache",
        remember_registries=True,
    )
    cached = _read_cached(forge)
    branch = forge.config.target_branch
    chain: dict[str, str] = {}
    verified: dict[str, TrustState] = {}
    state: TrustState | None = None
    while branch not in chain:
        tip = repo.branch_tip(branch)
        if tip is None:
            break
        chain[branch] = tip
        state = verified[branch] = _verify_branch(forge, gov, branch, tip, cached)
        if state.governing is None:
            break
        following = gov.layout(state.governing).target_branch
        if following == branch or repo.branch_tip(following) is None:
            break
        branch = following
    if state is None:
        return TrustState(forge.config.target_branch, None, None, load_pin(forge))
    state = TrustState(state.branch, state.tip, state.governing, state.root, state.problem, chain)
    _write_cached(forge, state, verified)
    return state


def _verify_branch(
    forge: Forge, gov: GovReader, branch: str, tip: str, cached: dict[str, Any] | None
) -> TrustState:
    from kavi.gitstore.trustchain import Judge, Scope, TrustRoot

    repo = forge.repo
    ref = f"refs/heads/{branch}"
    pin = load_pin(forge)
    base = None
    data = cached or {}
    branches = data.get("branches")
    known = branches.get(branch) if isinstance(branches, dict) else None
    if isinstance(known, dict) and pin is not None and pin.forge_id and data.get("forge_id") == pin.forge_id:
        g = known.get("governing")
        if isinstance(g, str) and repo.has_object(g):
            if g == tip and known.get("ok"):
                return TrustState(branch, tip, tip, pin)
            if repo.is_ancestor(g, tip):
                base = g
    if base is not None and pin is not None:
        commits = repo.walk_new_commits(tip, [base])
        line = _line(gov, tip, stop=base, limit=len(commits))
        if line and gov.meta(line[0])[1][:1] == (base,):
            judge = Judge(repo, pin, gov=gov)
            return _judged(branch, tip, judge, Scope(ref), commits, line, base, pin)
    # from the root
    line = _line(gov, tip, stop=None)
    root_at = next(
        (i for i, c in enumerate(line) if gov.has_keys(c) and (i == 0 or not gov.has_keys(line[i - 1]))), None
    )
    if root_at is None:
        return TrustState(branch, tip, tip, pin)  # keyless: nothing is trusted, nothing to judge
    root = line[root_at]
    found = TrustRoot(gov.signers(root), root)
    problem = _pin_problem(pin, found, ref, root)
    if problem is not None:
        return TrustState(branch, tip, None, pin, problem)
    if pin is None or pin.forge_id is None:
        how = "first use" if pin is None else "pinned keys, forge id learned"
        try:
            pin_root(forge, found, how)
        except OSError as exc:
            import errno

            if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise
            # a read-only clone (a mounted snapshot): trusted on first use for this command
            # only; the first command with a writable repository pins it
        if pin is None:
            _announce(found, (repo.commit(root).message.splitlines() or [""])[0])
        pin = found
    hide = [line[root_at - 1]] if root_at > 0 else []
    commits = repo.walk_new_commits(tip, hide)
    judge = Judge(repo, pin, gov=gov)
    return _judged(branch, tip, judge, Scope(ref), commits, line[root_at:], None, pin)


def _line(gov: GovReader, tip: str, stop: str | None, limit: int | None = None) -> list[str]:
    """First-parent line from ``tip`` back to (excluding) ``stop``, oldest first (at most
    ``limit`` commits)."""
    out: list[str] = []
    current: str | None = tip
    while current is not None and current != stop and (limit is None or len(out) < limit):
        out.append(current)
        parents = gov.meta(current)[1]
        current = parents[0] if parents else None
    out.reverse()
    return out


def _pin_problem(pin: TrustRoot | None, found: TrustRoot, ref: str, root: str) -> Rejection | None:
    from kavi.gitstore.trustchain import Rejection

    if pin is None:
        return None
    wanted = pinned_fingerprints(pin)
    if pin.forge_id is not None and pin.forge_id != found.forge_id:
        why = f"its trust root is {root[:12]}, but this clone pinned forge {pin.forge_id[:12]}"
    elif wanted and not wanted <= {fp for fp, _ in fingerprints(found.signers)}:
        why = f"its trust root does not list the pinned key {sorted(wanted)[0]}"
    elif not wanted and pin.lines != found.lines:
        why = "its trust root does not carry exactly the keys this clone pinned"
    else:
        return None
    return Rejection(
        ref,
        "foreign-root",
        f"this history does not grow from the pinned trust root: {why}",
        "fetch the forge you pinned (`git kavi trust show` names it); a clone trusts one forge",
        commit=root,
    )


FINGERPRINT_PIN = "# kavi: pinned by fingerprint "


def pinned_fingerprints(pin: TrustRoot) -> set[str]:
    """A pin made from a fingerprint (``trust pin SHA256:…``) before the root was seen."""
    return {
        line[len(FINGERPRINT_PIN) :].strip()
        for line in pin.signers.splitlines()
        if line.startswith(FINGERPRINT_PIN)
    }


def _judged(
    branch: str,
    tip: str,
    judge: Judge,
    scope: Scope,
    commits: list[str],
    line: list[str],
    base: str | None,
    pin: TrustRoot,
) -> TrustState:
    line_set = set(line)
    for commit in commits:
        problem = judge.judge_commit(scope, commit, on_line=commit in line_set)
        if problem is None:
            continue
        return TrustState(branch, tip, _last_sanctioned(judge, line, commit, base), pin, problem)
    return TrustState(branch, tip, tip, pin)


def _last_sanctioned(judge: Judge, line: list[str], bad: str, base: str | None) -> str | None:
    """The newest line commit that does not reach ``bad``."""
    previous = base
    for commit in line:
        if commit == bad or judge.repo.is_ancestor(bad, commit):
            return previous
        previous = commit
    return previous


# -- what commands use ------------------------------------------------------------------------


def governing_commit(forge: Forge) -> str | None:
    """Where governance is read: the newest sanctioned commit of the target branch (its tip
    while the forge is keyless). A history that does not grow from the pinned root is
    refused."""
    fast = cached_governing(forge)
    if fast is not None:
        return fast
    state = trust_state(forge)
    if state.tip is not None and state.governing is None and state.problem is not None:
        raise refusal(state, state.problem)
    if state.problem is not None and state.governing is not None:
        sys.stderr.write(
            f"kavi: warning: {state.branch} has history Kavi does not trust from commit "
            f"{(state.problem.commit or '')[:12]} ({state.problem.rule}); governance is read from "
            f"{state.governing[:12]}, and nothing will be promoted until it is fixed "
            "(`git kavi trust show`)\n"
        )
    return state.governing


def refusal(state: TrustState, problem: Rejection) -> TrustError:
    return TrustError(
        f"{state.branch} carries history Kavi does not trust: {problem.why}",
        why=f"commit {problem.commit or '-'} breaks rule {problem.rule}"
        + (f" at {problem.path}" if problem.path else ""),
        remedy=problem.remedy,
        details={"commit": problem.commit, "rule": problem.rule, "path": problem.path},
    )


def require_sanctioned_tip(forge: Forge) -> str:
    """The target branch's tip, for commands that build on it — refused unless its whole
    history is sanctioned."""
    state = trust_state(forge)
    if state.tip is None:
        raise GitError(f"target branch {state.branch} does not exist")
    if state.problem is not None:
        raise refusal(state, state.problem)
    return state.tip


def forge_identity(forge: Forge) -> str:
    """This forge's id (its root commit)."""
    state = trust_state(forge)
    if state.problem is not None and state.governing is None:
        raise refusal(state, state.problem)
    if state.forge_id is None:
        raise TrustError(
            "this forge has no trust root yet",
            why=".kavi/allowed_signers lists no key, so nothing can be signed or verified",
            remedy="make your git signing key the first key (the root): git kavi trust add",
        )
    return state.forge_id


def record_judge(forge: Forge, *, gov: GovReader | None = None) -> RecordJudge:
    """A judge for this forge's record commits (ledger mirror, notes), as the hook has one."""
    from kavi.gitstore.govstate import GovReader
    from kavi.gitstore.protected import Layout
    from kavi.gitstore.record_rules import LineIndex, RecordJudge
    from kavi.gitstore.trust import SigCache

    state = trust_state(forge)
    if state.problem is not None and state.governing is None:
        raise refusal(state, state.problem)  # the history does not grow from the pinned root
    repo = forge.repo
    reader = gov or GovReader(repo, default=Layout(target_branch=state.branch))
    line = LineIndex(repo, state.governing, state.forge_id)
    return RecordJudge(
        repo, gov=reader, sigs=SigCache(repo), forge_id=state.forge_id, line=line, branch=state.branch
    )
