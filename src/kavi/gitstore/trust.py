"""Signature verdicts on git objects: commits and tags, judged by exit codes (kavi.sshsig).

:class:`SigCache` answers "is this object signed by a key that this allowed-signers
text trusts (under the principal that text gives the key)?" once per question, and can
verify many commits concurrently (each verification is one ``ssh-keygen`` process).
"""

from __future__ import annotations

from collections.abc import Sequence

from kavi.gitstore.objects import TagInfo, read_tag
from kavi.gitstore.repo import GitRepo
from kavi.layout import SIGNERS_FILE
from kavi.sshsig import Verdict, verify

_BATCH = 32


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


class SigCache:
    """Verdicts on commit and tag signatures against allowed-signers texts, cached."""

    def __init__(self, repo: GitRepo) -> None:
        self.repo = repo
        self._verdicts: dict[tuple[str, str, str | None], Verdict] = {}

    def commit(self, commit: str, signers: str, principal: str | None = None) -> Verdict:
        key = (commit, signers, principal)
        if key not in self._verdicts:
            self._verdicts[key] = commit_verdict(self.repo, commit, signers, principal)
        return self._verdicts[key]

    def tag(self, tag: TagInfo, signers: str) -> Verdict:
        key = ("tag:" + tag.id, signers, None)
        if key not in self._verdicts:
            if tag.signature is None:
                self._verdicts[key] = Verdict(False, None, None, "unsigned tag")
            else:
                self._verdicts[key] = verify(tag.payload, tag.signature, signers)
        return self._verdicts[key]

    def prefetch(self, items: Sequence[tuple[str, str, str | None]]) -> None:
        """Verify ``(commit, signers, principal)`` triples concurrently, in order, a batch at
        a time, stopping after the first batch with a bad one (the checks that follow reject
        there, so verifying the rest would only burn CPU)."""
        from concurrent.futures import ThreadPoolExecutor

        todo: list[tuple[tuple[str, str, str | None], bytes, str]] = []
        for commit, signers, principal in items:
            key = (commit, signers, principal)
            if key in self._verdicts:
                continue
            found = self.repo.extract_signature(commit)  # object reads stay on this thread
            if found is None:
                self._verdicts[key] = Verdict(False, None, None, "unsigned")
                break
            todo.append((key, found[1], found[0]))
        if len(todo) < 2:
            return

        def run(
            item: tuple[tuple[str, str, str | None], bytes, str],
        ) -> tuple[tuple[str, str, str | None], Verdict]:
            key, payload, signature = item
            return key, verify(payload, signature, key[1], principal=key[2])

        with ThreadPoolExecutor(max_workers=8) as pool:
            for start in range(0, len(todo), _BATCH):
                bad = False
                for key, verdict in pool.map(run, todo[start : start + _BATCH]):
                    self._verdicts[key] = verdict
                    bad = bad or not verdict.ok
                if bad:
                    return
