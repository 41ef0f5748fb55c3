"""Signature verdicts on git objects: commits and tags, judged by exit codes (kavi.sshsig)."""

from __future__ import annotations

from kavi.gitstore.objects import read_tag
from kavi.gitstore.repo import GitRepo
from kavi.layout import SIGNERS_FILE
from kavi.sshsig import Verdict, verify


def commit_verdict(repo: GitRepo, commit: str, allowed: str, principal: str | None = None) -> Verdict:
    found = repo.extract_signature(commit)
    if found is None:
        return Verdict(False, None, None, "unsigned")
    signature, payload = found
    return verify(payload, signature, allowed, principal=principal)


def tag_verdict(repo: GitRepo, tag: str, allowed: str) -> Verdict:
    info = read_tag(repo, tag)
    if info is None:
        return Verdict(False, None, None, "not an annotated tag")
    if info.signature is None:
        return Verdict(False, None, None, "unsigned tag")
    return verify(info.payload, info.signature, allowed)


class SignersAt:
    """``.kavi/allowed_signers`` as of a commit, cached (read once per commit)."""

    def __init__(self, repo: GitRepo) -> None:
        self.repo = repo
        self._cache: dict[str, str] = {}

    def __call__(self, commit: str) -> str:
        if commit not in self._cache:
            data = self.repo.file_bytes(commit, SIGNERS_FILE) if self.repo.has_object(commit) else None
            self._cache[commit] = "" if data is None else data.decode("utf-8", "replace")
        return self._cache[commit]


class MirrorSignatures:
    """Judge a ledger-mirror commit's signature: by the allowed signers of the governance
    commit it names (``Kavi-Governance``), which must be part of the local target branch,
    for the principal it names (``Kavi-Signer``). Returns the problem, or None."""

    def __init__(self, repo: GitRepo, target_tip: str | None, target: str) -> None:
        self.repo = repo
        self.target_tip = target_tip
        self.target = target
        self.signers_at = SignersAt(repo)
        self._ancestry: dict[str, bool] = {}

    def __call__(self, commit: str, fields: dict[str, str]) -> str | None:
        repo = self.repo
        governance = fields.get("Kavi-Governance", "")
        if not governance or not repo.has_object(governance):
            return f"names governance commit {governance or '(none)'} which this clone does not have"
        if governance not in self._ancestry:
            self._ancestry[governance] = self.target_tip is not None and repo.is_ancestor(
                governance, self.target_tip
            )
        if not self._ancestry[governance]:
            return f"governance commit {governance[:12]} is not part of {self.target}"
        verdict = commit_verdict(
            repo, commit, self.signers_at(governance), principal=fields.get("Kavi-Signer")
        )
        return None if verdict.ok else f"bad signature: {verdict.detail}"
