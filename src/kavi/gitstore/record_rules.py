"""Signed records that travel: ledger-mirror and notes commits, as hook and clones judge them.

Every record commit carries three trailers:

* ``Kavi-Forge`` — the forge's identity (its root commit); another forge's records
  never count here, even when the same person signed them;
* ``Kavi-Governance`` — the commit of the governing branch whose ``allowed_signers`` the
  signature is judged by; it must lie on that branch's first-parent line at or after the
  root (never a commit merely reachable through a merge), and records only move forward
  along that line;
* ``Kavi-Signer`` — the principal ``allowed_signers`` gives the signing key there
  (whatever ``user.email`` said).

The server hook also passes ``bound`` — the governing branch's trust after the push —
so a key removed there signs no new records.
"""

from __future__ import annotations

from kavi.gitstore.govstate import GovReader
from kavi.gitstore.objects import format_trailers, trailers
from kavi.gitstore.protected import signer_lines
from kavi.gitstore.repo import GitRepo
from kavi.gitstore.trust import SigCache

FORGE_KEY = "Kavi-Forge"
GOVERNANCE_KEY = "Kavi-Governance"
SIGNER_KEY = "Kavi-Signer"


def record_trailers(forge_id: str, governance: str, principal: str) -> str:
    """The trailer block every signed record commit ends with."""
    return format_trailers({FORGE_KEY: forge_id, GOVERNANCE_KEY: governance, SIGNER_KEY: principal})


class LineIndex:
    """Positions on a first-parent line, walking back lazily from ``tip`` (position 0) and
    never below ``stop`` (the root, inclusive)."""

    def __init__(self, repo: GitRepo, tip: str | None, stop: str | None, *, limit: int = 10_000_000) -> None:
        self.repo = repo
        self._next: str | None = tip if stop is not None else None
        self.stop = stop
        self._pos: dict[str, int] = {}
        self._limit = limit

    def position(self, commit: str) -> int | None:
        while commit not in self._pos and self._next is not None and len(self._pos) < self._limit:
            current = self._next
            self._pos[current] = len(self._pos)
            if current == self.stop:
                self._next = None
                break
            parents = self.repo.commit_meta(current)[1]
            self._next = parents[0] if parents else None
        return self._pos.get(commit)


class RecordJudge:
    def __init__(
        self,
        repo: GitRepo,
        *,
        gov: GovReader,
        sigs: SigCache,
        forge_id: str | None,
        line: LineIndex,
        branch: str,
        bound: str | None = None,
    ) -> None:
        self.repo = repo
        self.gov = gov
        self.sigs = sigs
        self.forge_id = forge_id
        self.line = line
        self.branch = branch
        self.bound = bound
        self.last_position: int | None = None

    def governance(self, fields: dict[str, str]) -> str | None:
        g = fields.get(GOVERNANCE_KEY, "")
        return g if len(g) == 40 and self.repo.has_object(g) else None

    def prefetch(self, messages: dict[str, str]) -> None:
        items: list[tuple[str, str, str | None]] = []
        for commit, message in messages.items():
            fields = trailers(message)
            g = self.governance(fields)
            if g is None:
                break
            items.append((commit, self.gov.signers(g), fields.get(SIGNER_KEY)))
        self.sigs.prefetch(items)

    def problem(self, commit: str, message: str) -> tuple[str, str] | None:
        """Why this record commit does not count here, as (rule, reason); None: it does.
        Rules: ``forge`` (another forge's, or none), ``governance`` (names a commit off the
        governing line, or an older one than the record before it), ``signature``."""
        if self.repo.extract_signature(commit) is None:
            return "signature", "bad signature: unsigned"
        fields = trailers(message)
        forge = fields.get(FORGE_KEY)
        if self.forge_id is None:
            return "forge", "this forge has no trust root yet: push its target branch (with the root) first"
        if forge != self.forge_id:
            if forge:
                return "forge", f"belongs to forge {forge[:12]}, not to this forge ({self.forge_id[:12]})"
            return "forge", "carries no Kavi-Forge (not made by this forge's Kavi)"
        g = self.governance(fields)
        position = self.line.position(g) if g is not None else None
        if g is None or position is None:
            return "governance", (
                f"names governance commit {fields.get(GOVERNANCE_KEY) or '(none)'}, which is not in the "
                f"sanctioned first-parent history of {self.branch} (from the trust root on)"
            )
        if self.last_position is not None and position > self.last_position:
            return "governance", (
                f"names governance {g[:12]}, older than the record before it (records only move forward)"
            )
        signers = self.gov.signers(g)
        claim = fields.get(SIGNER_KEY)
        verdict = self.sigs.commit(commit, signers, claim)
        if not verdict.ok:
            return "signature", f"bad signature: {verdict.detail}"
        if (
            self.bound is not None
            and signer_lines(self.bound) != signer_lines(signers)
            and not self.sigs.commit(commit, self.bound, claim).ok
        ):
            return (
                "signature",
                f"the key is no longer trusted on {self.branch} (removed or restricted there)",
            )
        self.last_position = position
        return None
