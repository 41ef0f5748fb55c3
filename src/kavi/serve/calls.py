"""One tool call, the way ``run-skill`` runs a skill: no MCP types here, only Kavi's.

The MCP glue (:mod:`kavi.serve.mcp_server`) calls these from a worker thread:
:func:`run_call` opens the forge afresh (the committed policy may have moved since the
last call), hands the arguments to :func:`kavi.forge.run.run_skill` — the one entry
point: TRUSTED check, source hash, runtime policy, confinement, secrets as declared, run
record — and turns its outcome or refusal into a :class:`CallResult`. An approval asked
of the client's user is bound to the exact arguments and version it showed
(:func:`approval_request`, :func:`check_approval`).
"""

from __future__ import annotations

import hashlib
import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kavi.errors import ApprovalError, KaviError, PolicyDenied

APPROVAL_TIMEOUT_S = 600.0  # how long a call waits for its user's answer


@dataclass(frozen=True)
class Caller:
    """Who asks: the MCP client as it named itself (``clientInfo``) and the transport."""

    transport: str
    client_name: str | None = None
    client_version: str | None = None

    def text(self) -> str:
        """The run record's ``caller``: ``mcp (stdio) client claude-code 2.1.197``."""
        from kavi.textsafe import printable

        name = printable(self.client_name or "")[:100] or "(unnamed)"
        version = printable(self.client_version or "")[:50]
        return f"mcp ({self.transport}) client {name}{' ' + version if version else ''}"


@dataclass
class CallResult:
    """What one call returns: the skill's output, or an error in Kavi's words."""

    output: dict[str, Any] | None = None
    error: KaviError | None = None
    run_id: str | None = None
    record: str | None = None
    status: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def text(self) -> str:
        if self.error is not None:
            return self.error.render()
        return json.dumps(self.output, indent=2, sort_keys=True)


def canonical(arguments: dict[str, Any]) -> str:
    return json.dumps(arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class ApprovalAsk:
    """What the client's user is asked: one run of one version with these arguments."""

    skill: str
    promotion_id: str
    arguments: str  # canonical JSON: exactly what runs if approved
    code: str  # the first hex digits of the digest over all three
    message: str
    schema: dict[str, Any]


def approval_request(
    *,
    skill: str,
    title: str,
    tag: str,
    sha256: str,
    promotion_id: str,
    reason: str,
    arguments: dict[str, Any],
) -> ApprovalAsk:
    """The elicitation for one call: the arguments shown in full, and a code (the digest of
    skill, promotion and arguments) the answer must carry back."""
    args = canonical(arguments)
    digest = hashlib.sha256("\0".join((skill, promotion_id, args)).encode()).hexdigest()
    code = digest[:12]
    shown = json.dumps(arguments, indent=2, sort_keys=True, ensure_ascii=False)
    message = (
        f"Kavi: approve ONE run of {title}?\n\n"
        f"Runtime policy: {reason}\n"
        f"Version: {tag}, source sha256 {sha256[:16]}\n\n"
        f"Arguments (exactly these, and only for this call):\n{shown}\n\n"
        f"Approval code: {code}"
    )
    schema = {
        "type": "object",
        "properties": {
            "approve": {
                "type": "boolean",
                "title": "Run it",
                "description": "Approve this one run with the arguments shown",
                "default": False,
            },
            "code": {
                "type": "string",
                "title": "Approval code",
                "description": "The code shown above; it binds your answer to this call",
                "default": code,
            },
        },
        "required": ["approve", "code"],
    }
    return ApprovalAsk(skill, promotion_id, args, code, message, schema)


def check_approval(ask: ApprovalAsk, action: str, content: dict[str, Any] | None) -> dict[str, Any]:
    """The arguments to run (exactly those shown), or an :class:`ApprovalError`."""
    if action != "accept":
        verb = "declined" if action == "decline" else "cancelled"
        raise ApprovalError(
            f"the client's user {verb} this run of {ask.skill}",
            why="the runtime policy requires a person's approval of each call",
            remedy="call it again and approve it, or leave it",
        )
    content = content or {}
    if content.get("approve") is not True:
        raise ApprovalError(
            f"the client's user did not approve this run of {ask.skill}",
            why="the form came back without `approve` set",
            remedy="call it again and tick `Run it`",
        )
    code = content.get("code")
    if code != ask.code:
        raise ApprovalError(
            f"the approval does not match this call of {ask.skill}",
            why=f"it carries code {str(code)[:40]!r}; this call's arguments and version give {ask.code}",
            remedy="call it again and approve what is shown then",
        )
    arguments: dict[str, Any] = json.loads(ask.arguments)
    return arguments


def no_elicitation(err: KaviError, name: str, arguments: dict[str, Any]) -> KaviError:
    """``run-skill``'s refusal of an unapproved run, with the remedy an MCP user can use."""
    if not isinstance(err, PolicyDenied) or "requires approval" not in err.message:
        return err
    command = shlex.join(["git", "kavi", "run-skill", name, "--approve", "--json", canonical(arguments)])
    return PolicyDenied(
        err.message,
        why="this MCP client cannot ask its user (it did not declare the elicitation capability), "
        "and an agent may not approve on a person's behalf",
        remedy=f"use a client that supports MCP elicitation, or run it at a terminal: {command}",
    )


def lookup(workdir: Path, name: str) -> tuple[Any, Any] | None:
    """(the TRUSTED skill, its runtime decision and reason) — None if ``run_skill`` would
    refuse before a decision (it then refuses with its own words)."""
    from kavi.forge.context import Forge
    from kavi.forge.run import decide
    from kavi.skills.loader import find_trusted

    forge = Forge.open(workdir)
    try:
        skill = find_trusted(forge, name)
        return skill, decide(forge, skill)
    except KaviError:
        return None
    finally:
        forge.close()


def run_call(
    workdir: Path,
    name: str,
    arguments: dict[str, Any],
    caller: Caller,
    *,
    worker: Any = None,
    approved_for: str | None = None,
) -> CallResult:
    """Run ``name`` through :func:`kavi.forge.run.run_skill`; never raises a KaviError."""
    from kavi.forge.context import Forge
    from kavi.forge.run import run_skill
    from kavi.ledger.autoimport import ensure_ledger

    try:
        forge = Forge.open(workdir)
    except KaviError as exc:
        if worker is not None:
            worker.abort()
        return CallResult(error=exc)
    try:
        ensure_ledger(forge)
        outcome = run_skill(
            forge,
            name,
            arguments,
            approved=approved_for is not None,
            approved_for=approved_for,
            caller=caller.text(),
            worker=worker,
        )
    except KaviError as exc:
        if worker is not None:
            worker.abort()  # (run_skill owns it once called; aborting twice is harmless)
        return CallResult(error=exc)
    finally:
        forge.close()
    run = outcome.run
    return CallResult(
        output=outcome.output,
        run_id=run.id,
        record=outcome.artifact_path,
        status=run.status.value,
        meta={"runId": run.id, "status": run.status.value, "record": outcome.artifact_path},
    )
