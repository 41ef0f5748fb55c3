"""``run-skill``: run a TRUSTED skill — the exact approved bytes, confined, recorded.

:func:`run_skill` is the one entry point (the CLI calls it once per process; a
long-lived front end such as an MCP server may call it per request). Order:

1. a worker process starts at once (:class:`kavi.confine.session.Worker`): it imports
   pydantic and the skill contract while Kavi checks, and is killed if a check refuses;
2. ledger lookup (TRUSTED only) → registry agrees with the ledger → source hash equals
   the promotion record → runtime policy decision for the side-effect class and how it
   must be confined → input validated against the proposal's declared I/O schema;
3. the worker gets its view of the machine (:mod:`kavi.confine.views`, from the
   class's capabilities in :mod:`kavi.confine.capabilities`), its resource limits, and
   the verified source, the validated input and the granted secrets; it runs the skill
   under the runtime guard and replies;
4. the output is validated against the declared schema here (the skill's own classes
   are never loaded in Kavi's process), secret values are redacted from it, and the run
   is recorded (RUN_RECORD artifact, ledger row, how it was confined). Refusals and
   failures after the skill was found are recorded too (REFUSED or FAILED, naming the
   limit when one ended the run).
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kavi.clock import now_iso
from kavi.confine.result import WorkerResult
from kavi.confine.session import Worker, skill_request
from kavi.errors import (
    ApprovalError,
    GovernanceError,
    GuardViolation,
    KaviError,
    PolicyDenied,
    TrustError,
    ValidationError,
)
from kavi.forge.context import Forge
from kavi.ledger.models import ArtifactKind, Run, RunStatus
from kavi.ledger.reducer import EventKind
from kavi.policy.model import Decision, RuntimeRule
from kavi.skills.loader import TrustedSkill


@dataclass
class RunOutcome:
    run: Run
    output: dict[str, Any]
    artifact_path: str | None


def parse_input(text: str, *, source: str) -> dict[str, Any]:
    """A run's input: a JSON object within Kavi's input bounds (:mod:`kavi.inputs`)."""
    from kavi.inputs import parse_json

    data = parse_json(text, source=source)
    if not isinstance(data, dict):
        raise ValidationError(f"{source} must be a JSON object, got {type(data).__name__}")
    return data


def matching_rule(forge: Forge, skill: TrustedSkill) -> RuntimeRule | None:
    """The first runtime rule that matches this skill (None: the default decision)."""
    effect = skill.proposal.side_effect_class
    for rule in forge.policy.runtime.rules:
        if rule.match.side_effect not in (None, effect) or rule.match.skill not in (
            None,
            skill.promotion.skill_name,
        ):
            continue
        return rule
    return None


def decide(forge: Forge, skill: TrustedSkill) -> tuple[Decision, str]:
    """First matching runtime rule wins; the engine only decides, it never edits inputs."""
    rule = matching_rule(forge, skill)
    if rule is None:
        return forge.policy.runtime.default, "no rule matched; default decision"
    return rule.decision, rule.reason or f"rule for {skill.proposal.side_effect_class.value}"


def _roots(forge: Forge, paths: Sequence[str], *, create: bool) -> tuple[Path, ...]:
    """The policy's roots as real directories (``create``: made if missing)."""
    out = []
    for rel in paths:
        p = Path(rel)
        root = p if p.is_absolute() else forge.workdir / p
        if not p.is_absolute():
            _no_symlink_below(forge.workdir, root)
        if create:
            root.mkdir(parents=True, exist_ok=True)
        if root.is_dir():
            out.append(root.resolve())
    return tuple(out)


def _no_symlink_below(top: Path, path: Path) -> None:
    """Refuse a root inside the forge reached through a symlink: a skill that may write in
    the vault could have planted one to point another run's roots at ``~/.ssh``."""
    current = top
    for part in path.relative_to(top).parts:
        current = current / part
        if current.is_symlink():
            raise PolicyDenied(
                f"{current.relative_to(top)} is a symbolic link; Kavi will not give it to a skill",
                why="a root of the runtime policy must be a real directory of the forge "
                "(a link could have been planted to lead a skill elsewhere)",
                remedy="replace the link with a directory, or name its target in .kavi/policy.yaml",
            )


def _secrets(skill: TrustedSkill, rule: RuntimeRule | None) -> dict[str, str]:
    from kavi.secrets import secret_env_name

    out = {}
    for name in skill.proposal.required_secrets:
        if rule is not None and rule.secrets is not None and name not in rule.secrets:
            raise PolicyDenied(
                f"the runtime policy does not grant secret {name} to {skill.promotion.skill_name}",
                why=f"its runtime rule lists only {', '.join(rule.secrets) or 'no secrets'}",
                remedy="add the name to that rule's `secrets` in .kavi/policy.yaml "
                "(a signed governance change)",
            )
        var = secret_env_name(name)
        if var not in os.environ:
            raise PolicyDenied(
                f"skill {skill.promotion.skill_name} needs secret {name}, and {var} is not set",
                remedy=f"export {var}=… (it is only given to this TRUSTED skill)",
            )
        out[name] = os.environ[var]
    return out


def run_skill(
    forge: Forge,
    name: str,
    payload: dict[str, Any],
    *,
    approved: bool = False,
    caller: str = "cli",
    worker: Worker | None = None,
    approved_for: str | None = None,
) -> RunOutcome:
    """Run TRUSTED skill ``name`` on ``payload`` confined, record it, return its output.

    ``approved``: a person approved this run (for REQUIRE_APPROVAL rules); ``approved_for``:
    the promotion id that person was shown (the run is refused if another version is in
    force by now); ``caller``: who asked (``cli``, ``mcp (stdio) client …``), kept in the
    record; ``worker``: one started earlier with :meth:`Worker.start` (this call owns it
    from now on). Raises a
    :class:`KaviError` for every refusal or failure (recorded first when the skill was
    found). Safe to call once per request from a long-lived process.
    """
    from kavi.skills.loader import find_trusted

    worker = worker or Worker.start()  # imports while the checks below run
    try:
        skill = find_trusted(forge, name)
        forge.ledger.require_writable()  # a run that cannot be recorded does not run at all
    except BaseException:
        worker.abort()
        raise
    started, clock = now_iso(), time.monotonic()
    plan = _Plan(forge, skill, caller, worker)
    try:
        output = plan.execute(payload, approved=approved, approved_for=approved_for)
    except KaviError as exc:
        status = RunStatus.REFUSED if isinstance(exc, GovernanceError) else RunStatus.FAILED
        if plan.limit is not None or exc.code == "KAVI-RUN-FAILED":
            status = RunStatus.FAILED
        _record_run(plan, status, payload, None, exc.message, started, clock, exc.code)
        raise
    finally:
        plan.worker.abort()
    run, artifact = _record_run(plan, RunStatus.SUCCEEDED, payload, output, None, started, clock)
    return RunOutcome(run=run, output=output, artifact_path=artifact)


class _Plan:
    """One run's checks, confinement and record."""

    def __init__(self, forge: Forge, skill: TrustedSkill, caller: str, worker: Worker) -> None:
        self.forge, self.skill, self.caller, self.worker = forge, skill, caller, worker
        self.confinement = "not started (refused before the skill ran)"
        self.limit: str | None = None
        self.secrets: list[str] = []

    def execute(
        self, payload: dict[str, Any], *, approved: bool, approved_for: str | None = None
    ) -> dict[str, Any]:
        from kavi.confine import capabilities
        from kavi.confine.session import namespaces_usable, unavailable_reason
        from kavi.secrets import environment_secrets
        from kavi.skills.loader import check_registry, read_verified_source

        forge, skill = self.forge, self.skill
        check_registry(forge, skill)
        self.skill = skill = read_verified_source(skill)
        if approved_for is not None and skill.promotion.id != approved_for:
            raise ApprovalError(
                f"{skill.promotion.skill_name} changed after this run was approved "
                f"(v{skill.promotion.version} is in force now)",
                why="an approval holds for the version that was shown, and only for it",
                remedy="call it again and approve what is shown then",
            )
        self._authorise(approved)
        rule = matching_rule(forge, skill)
        confine = rule.confine if rule is not None else "auto"
        caps = capabilities.for_class(skill.proposal.side_effect_class)
        validated = validate_input(skill, payload)
        secrets = _secrets(skill, rule)
        self.secrets = environment_secrets(
            os.environ, [f"KAVI_SECRET_{s}" for s in skill.proposal.required_secrets]
        )
        self.secrets = sorted(
            {*self.secrets, *(v for v in secrets.values() if len(v) >= 4)}, key=len, reverse=True
        )
        confined = confine != "off" and namespaces_usable()
        if not confined:
            self._may_run_unconfined(confine, caps, unavailable_reason())
        worker = self.worker
        if confined != worker.confined or (confined and caps.network == worker.own_network):
            worker.abort()  # the speculative start guessed wrong (a network class, or no jail)
            self.worker = Worker(confined=confined, own_network=not caps.network)
        result = self._run(self.worker, caps, validated, secrets)
        if result.cannot_confine:
            self._may_run_unconfined(confine, caps, result.cannot_confine)
            self.worker = Worker(confined=False, own_network=True)
            result = self._run(self.worker, caps, validated, secrets)
        return self._output(result)

    def _authorise(self, approved: bool) -> None:
        skill = self.skill
        decision, reason = decide(self.forge, skill)
        effect = skill.proposal.side_effect_class.value
        if decision is Decision.DENY:
            raise PolicyDenied(
                f"runtime policy denies {effect} skills: {reason}",
                why=f"{skill.promotion.skill_name} declares side-effect class {effect}",
                remedy="change .kavi/policy.yaml (runtime.rules) with a signed governance commit",
            )
        if decision is Decision.REQUIRE_APPROVAL and not approved:
            raise PolicyDenied(
                f"runtime policy requires approval for {effect} skills: {reason}",
                remedy="re-run at a terminal with --approve (a person must approve each run)",
            )

    def _may_run_unconfined(self, confine: str, caps: Any, reason: str) -> None:
        """Refuse unless the policy lets this skill run without OS confinement."""
        effect = self.skill.proposal.side_effect_class.value
        if confine == "off":
            self.confinement = "none: the policy says `confine: off` for this skill (runtime guard only)"
            return
        self.confinement = f"none: {reason}"
        if confine == "required":
            raise PolicyDenied(
                "the runtime policy requires OS confinement for this skill, "
                "and this machine cannot confine it",
                why=reason,
                remedy="run it on Linux with unprivileged user namespaces, or change the rule's "
                "`confine` in .kavi/policy.yaml (a signed governance change)",
            )
        if caps.network:
            raise PolicyDenied(
                f"{effect} skills run only confined by the operating system, "
                "and this machine cannot confine them",
                why=reason,
                remedy=f"run it where Linux namespaces are available, or set `confine: off` in the "
                f"runtime rule for {effect} in .kavi/policy.yaml (a signed governance change)",
            )
        self.confinement += "; the runtime guard confines reads, writes and network in-process"

    def _run(
        self, worker: Worker, caps: Any, validated: dict[str, Any], secrets: dict[str, str]
    ) -> WorkerResult:
        from kavi.artifacts.vault import VAULT_SUBDIR
        from kavi.confine import jail
        from kavi.confine.views import allowlist_view

        forge, skill, runtime = self.forge, self.skill, self.forge.policy.runtime
        p = skill.promotion
        _no_symlink_below(forge.workdir, forge.workdir / forge.config.vault_dir)
        vault = (forge.workdir / forge.config.vault_dir).resolve()
        vault.mkdir(parents=True, exist_ok=True)
        (vault / VAULT_SUBDIR).mkdir(exist_ok=True)  # exists before any skill could plant it
        writes = _roots(forge, runtime.allowed_write_paths, create=True) if caps.writes else ()
        reads = _roots(forge, runtime.allowed_read_paths, create=False)
        common = forge.location.common_dir.resolve()
        protected = (vault / VAULT_SUBDIR, forge.workdir / ".git", common, forge.workdir / ".kavi")
        tmp = "/tmp" if worker.confined else str(worker.tmp)
        # the skill starts in the vault if it may see it (the default), else in its /tmp
        visible = any(vault == root or root in vault.parents for root in (*reads, *writes))
        cwd = vault if visible else Path(tmp)
        limits = runtime.limits.model_dump()
        guard = {  # kavi.policy.guard.GuardPolicy, built in the worker
            "write_roots": [str(root) for root in (*writes, Path(tmp))],
            "allow_network": caps.network,
            "protected": [str(x) for x in protected if x.exists()],
            "read_roots": None if worker.confined else [str(root) for root in (*reads, Path(tmp))],
        }
        request = skill_request(
            source=skill.source,
            filename=str(skill.path),
            module=f"_kavi_trusted_.{p.skill_name}_v{p.version}",
            class_name=p.class_name,
            payload=validated,
            context={
                "vault_root": str(vault),
                "allowed_write_paths": [str(w) for w in writes],
                "read_roots": [str(r) for r in reads],
                "protected": [str(x) for x in protected],
            },
            guard=guard,
            cwd=str(cwd),
            secrets=secrets,
        )
        view = None
        if worker.confined:
            home = Path(os.path.expanduser("~")).resolve()
            hidden = [forge.workdir.resolve(), common, *jail.worktrees(common), home, *_account_home()]
            view = allowlist_view(
                read_roots=reads,
                write_roots=writes,
                private=[(Path("/tmp"), runtime.limits.tmp_mb)],
                protected=protected,
                hidden=hidden,
                network=caps.network,
                cwd=cwd,
            )
            self.confinement = describe(caps, limits, runtime.timeout_seconds)
        worker.send(view=view, request=request, limits=limits, timeout=runtime.timeout_seconds)
        _prepare_record(forge)  # while the skill runs
        return worker.collect()

    def _output(self, result: WorkerResult) -> dict[str, Any]:
        from kavi.secrets import redact
        from kavi.skills.schema_models import io_models

        skill = self.skill
        name = skill.promotion.skill_name
        limit = result.limit
        if limit is not None:
            self.limit = limit
            raise limit_error(name, limit, self.forge)
        reply = result.reply
        if reply is None:
            detail = redact(
                result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "", self.secrets
            )
            raise GovernanceError(
                f"{name} ended without a reply ({_ended(result)})",
                code="KAVI-RUN-FAILED",
                why=detail[:500] or None,
                remedy="see the skill's tests; report the failure to the skill's owner",
            )
        if not reply.get("ok"):
            raise _failure(name, reply, skill, self.secrets)
        _inp, out_model = io_models(skill.proposal.io_schema)
        data = reply.get("output")
        if not isinstance(data, dict):
            raise TrustError(
                f"{name} returned {type(data).__name__}, not its output model",
                remedy="the skill is broken; revoke it or promote a fixed version",
            )
        output = _validate(out_model, data, skill, what="output")
        redacted = _redact_json(output, self.secrets)
        return redacted if isinstance(redacted, dict) else output


def validate_input(skill: TrustedSkill, payload: Any) -> dict[str, Any]:
    """``payload`` validated against the proposal's declared input schema (a
    :class:`ValidationError` listing every bad field, else the validated input)."""
    from kavi.skills.schema_models import io_models

    inp, _out = io_models(skill.proposal.io_schema)
    return _validate(inp, payload, skill, what="input")


def _validate(model: Any, data: Any, skill: TrustedSkill, *, what: str) -> dict[str, Any]:
    from pydantic import ValidationError as PydanticError

    from kavi.yamlio import format_validation

    name = skill.promotion.skill_name
    try:
        validated: dict[str, Any] = model.model_validate(data).model_dump(mode="json")
    except PydanticError as exc:
        if what == "input":
            raise ValidationError(
                f"invalid input for {name}",
                why=format_validation(exc),
                remedy=f"the input fields are: {json.dumps(skill.proposal.io_schema['input'])}",
            ) from None
        raise TrustError(
            f"{name} returned output that does not match its output model",
            why=format_validation(exc),
            remedy="the skill is broken; revoke it or promote a fixed version",
        ) from None
    return validated


def _redact_json(value: Any, secrets: list[str], *, shapes: bool = False) -> Any:
    """``value`` with every secret value replaced in its strings (``shapes``: and the
    credential shapes of :func:`kavi.secrets.redact_shapes` — for what is recorded)."""
    from kavi.secrets import redact, redact_record

    clean = redact_record if shapes else redact
    if isinstance(value, str):
        return clean(value, secrets)
    if isinstance(value, list):
        return [_redact_json(v, secrets, shapes=shapes) for v in value]
    if isinstance(value, dict):
        return {clean(str(k), secrets): _redact_json(v, secrets, shapes=shapes) for k, v in value.items()}
    return value


def _ended(result: WorkerResult) -> str:
    status = result.status
    if "signal" in status:
        return f"killed by signal {status['signal']}"
    return f"exit {status.get('exit')}"


LIMIT_NAMES = {
    "wall_seconds": ("wall time", "runtime.timeout_seconds", "s"),
    "cpu_seconds": ("CPU time", "runtime.limits.cpu_seconds", "s"),
    "memory_mb": ("memory", "runtime.limits.memory_mb", " MiB"),
    "processes": ("process count", "runtime.limits.processes", ""),
    "file_size_mb": ("file size", "runtime.limits.file_size_mb", " MiB"),
}


def limit_error(name: str, limit: str, forge: Forge) -> GovernanceError:
    runtime = forge.policy.runtime
    what, key, unit = LIMIT_NAMES.get(limit, (limit, f"runtime.limits.{limit}", ""))
    value = runtime.timeout_seconds if limit == "wall_seconds" else getattr(runtime.limits, limit, None)
    setting = f"{key} = {value:g}{unit}" if isinstance(value, (int, float)) else key
    return GovernanceError(
        f"{name} exceeded its {what} limit ({setting}); it was killed with every process it started",
        code="KAVI-RUN-LIMIT",
        why="resource limits of .kavi/policy.yaml bound every confined run",
        remedy=f"raise {key} in .kavi/policy.yaml (a signed governance change) if the skill needs more",
    )


def _failure(name: str, reply: dict[str, Any], skill: TrustedSkill, secrets: list[str]) -> KaviError:
    from kavi.secrets import redact

    kind = str(reply.get("kind"))
    message = redact(str(reply.get("message", "")), secrets)[:2000]
    why = redact(str(reply["why"]), secrets)[:2000] if reply.get("why") else None
    if kind == "input":
        return ValidationError(
            f"invalid input for {name}",
            why=why,
            remedy=f"the input fields are: {json.dumps(skill.proposal.io_schema['input'])}",
        )
    if kind == "guard":
        found = [redact(str(v), secrets) for v in reply.get("violations") or []]
        return GuardViolation(
            "the runtime guard refused what the skill tried: " + "; ".join(found[:5]),
            why="TRUSTED skills may only write inside allowed_write_paths and never spawn processes, "
            "open sockets (unless their class has network) or run dynamic code",
            remedy="fix the skill (a new version goes through build, verify and promote again)",
        )
    if kind == "trust":
        return TrustError(message, remedy="restore the approved bytes from the skill's tag")
    if kind == "output":
        return TrustError(
            f"{name} returned output that is not plain JSON data",
            why=message,
            remedy="the skill is broken; revoke it or promote a fixed version",
        )
    if kind == "kavi" and reply.get("code") == PolicyDenied.code:
        return PolicyDenied(message, why=why, remedy=redact(str(reply.get("remedy") or ""), secrets) or None)
    return GovernanceError(
        f"{name} raised {message}" if kind == "failed" else message,
        code="KAVI-RUN-FAILED",
        why=why,
        remedy="see the skill's tests; report the failure to the skill's owner",
    )


def describe(caps: Any, limits: dict[str, Any], wall: float) -> str:
    """How a run was confined, for its record."""
    net = "the host's network" if caps.network else "no network (a namespace of its own)"
    return (
        "namespaces (user, PID, mount, IPC); "
        f"fresh root: runtime, read roots{', write roots' if caps.writes else ''}, private /tmp; {net}; "
        f"limits: {limits['cpu_seconds']} CPU s, {limits['memory_mb']} MiB, {limits['processes']} processes, "
        f"{limits['file_size_mb']} MiB files, {wall:g} s wall"
    )


def _account_home() -> list[Path]:
    import pwd

    try:
        return [Path(pwd.getpwuid(os.getuid()).pw_dir).resolve()]
    except (KeyError, OSError):
        return []


def _prepare_record(forge: Forge) -> None:
    """What recording a run needs and costs time on first use, done while the skill runs:
    the actor (a ``git var`` subprocess), the modules that seal, redact and write the
    record, and the validators of the models it is made of."""
    import kavi.artifacts.vault
    import kavi.ledger.privacy
    import kavi.secrets
    import kavi.textsafe  # noqa: F401
    from kavi.ledger.models import Artifact, Event

    for model in (Run, Artifact, Event):
        model.model_rebuild()  # built on first use otherwise: after the skill has answered
    _ = forge.actor


def _fenced(text: str, lang: str) -> str:
    """``text`` in a code fence longer than any run of backticks in it (a skill's output
    or error cannot close the fence and write markdown of its own into the record)."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{lang}\n{text}\n{fence}"


def _record_run(
    plan: _Plan,
    status: RunStatus,
    payload: dict[str, Any],
    output: dict[str, Any] | None,
    error: str | None,
    started: str,
    clock: float,
    code: str | None = None,
) -> tuple[Run, str | None]:
    """Record the run: a RUN_RECORD artifact in the local vault and a ``run.recorded``
    event whose input, output and error are sealed — only their digests travel (unless
    the policy's ``mirror.run_data`` says otherwise; see :mod:`kavi.ledger.privacy`)."""
    from kavi.ledger.privacy import NONCE_KEY, seal
    from kavi.secrets import environment_secrets, redact_record
    from kavi.textsafe import printable

    forge, skill = plan.forge, plan.skill
    p = skill.promotion
    secrets = plan.secrets or environment_secrets(
        os.environ, [f"KAVI_SECRET_{s}" for s in skill.proposal.required_secrets]
    )
    run = Run(
        id=str(uuid.uuid4()),
        skill_name=p.skill_name,
        version=p.version,
        proposal_id=p.proposal_id,
        promotion_id=p.id,
        status=status,
        input=_redact_json(payload, secrets, shapes=True),
        output=_redact_json(output, secrets, shapes=True) if output is not None else None,
        error=redact_record(error, secrets) if error is not None else None,
        error_code=code,
        duration_s=round(time.monotonic() - clock, 4),
        started_at=started,
        finished_at=now_iso(),
        confinement=plan.confinement,
        caller=plan.caller,
        limit_exceeded=plan.limit,
    )
    public, private = seal(
        EventKind.RUN_RECORDED,
        run.model_dump(mode="json"),
        fields=None if not _mirror_run_data(forge) else (),
    )
    run = run.model_copy(update={"sealed": public.get("sealed") or {}})
    vault = forge.vault(secrets)
    ledger = forge.ledger
    with vault.pending(), ledger.transaction(forge.actor) as txn:
        body = "\n".join(
            [
                f"- skill: `{p.skill_name}` v{p.version} ({p.tag_name})",
                f"- status: **{status.value}**" + (f" ({code})" if code else ""),
                f"- duration: {run.duration_s:.3f}s",
                f"- confinement: {plan.confinement}",
                f"- caller: {plan.caller}",
                *([f"- limit exceeded: {plan.limit}"] if plan.limit else []),
                *(f"- {name} sha256: `{value}` (what travels)" for name, value in sorted(run.sealed.items())),
                "",
                "## Input",
                "",
                _fenced(json.dumps(run.input, indent=2, sort_keys=True), "json"),
                "",
                "## Output" if output is not None else "## Error",
                "",
                _fenced(json.dumps(output, indent=2, sort_keys=True), "json")
                if output is not None
                else _fenced(printable(run.error or "", multiline=True), "text"),
            ]
        )
        meta: dict[str, Any] = {"run_id": run.id, "promotion_id": p.id, "status": status.value}
        if private is not None:
            meta["digest_nonce"] = private[NONCE_KEY]  # the record's own hash cannot be guessed either
        artifact, _ = vault.write(
            ArtifactKind.RUN_RECORD,
            name=p.skill_name,
            related_id=run.id,
            title=f"RUN_RECORD {p.skill_name} v{p.version} — {status.value}",
            body=body,
            meta=meta,
        )
        txn.put(EventKind.ARTIFACT_RECORDED, artifact)
        run = run.model_copy(update={"artifact_id": artifact.id})
        txn.record(EventKind.RUN_RECORDED, run.id, {**public, "artifact_id": artifact.id}, private=private)
    return run, artifact.path


def _mirror_run_data(forge: Forge) -> bool:
    """The policy's ``mirror.run_data``: a run's data may travel in its event."""
    return bool(forge.policy.mirror.run_data)
