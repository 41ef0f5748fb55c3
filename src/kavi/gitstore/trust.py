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
