"""``build-skill``: let a backend write the skill in a sandbox, then judge what it left.

1. preflight (proposal state, backend available, target branch tip);
2. ledger step 1: the frozen BUILD_PACKET artifact and ``build.started``;
3. branch ``skill/<name>-<shortid>`` at the target tip, worktree sandbox outside the
   repository, ``.git`` link removed, secret-looking files withheld;
4. the backend runs with a scrubbed environment and a hard timeout;
5. Kavi commits the sandbox onto the build branch (trailers name proposal, build,
   packet), then the gate: raw tree diff, sandbox walk, tripwire;
6. ledger step 2: the BUILD_LOG artifact, ``build.finished`` and the status change;
7. the sandbox is removed; the branch stays for inspection (deleted if no commit).
"""

from __future__ import annotations

import os
import re
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kavi.backends.base import Backend, BackendRequest, BackendResult
from kavi.clock import now_iso
from kavi.confine.jail import Confinement
from kavi.errors import ConfigError, GateError, GitError, KaviError, StateError, ValidationError
from kavi.forge.context import Forge
from kavi.forge.packet import PACKET_FILE, render_packet
from kavi.forge.spec import SkillPaths, skill_paths
from kavi.hashing import blake3_hex
from kavi.ledger.models import (
    Artifact,
    ArtifactKind,
    Build,
    BuildOptions,
    BuildStatus,
    BuildUsage,
    Proposal,
    ToolAttempt,
    Violation,
)
from kavi.ledger.reducer import EventKind
from kavi.ledger.states import ProposalStatus
from kavi.secrets import redact, secret_values
from kavi.textsafe import printable

if TYPE_CHECKING:
    from kavi.gitstore.repo import GitRepo

Progress = Callable[[str], None]

BUILDABLE = (ProposalStatus.PROPOSED, ProposalStatus.BUILT, ProposalStatus.VERIFIED)
BUILD_AUTHOR_EMAIL = "kavi-build@kavi.invalid"


@dataclass
class BuildOutcome:
    build: Build
    proposal: Proposal
    packet: Artifact
    log: Artifact | None


@dataclass(frozen=True)
class Repeat:
    """The backend and options of a proposal's last attempt (``--retry``, ``forge``)."""

    backend: str
    from_dir: Path | None
    timeout: float | None


def last_attempt_options(forge: Forge, proposal: Proposal) -> Repeat | None:
    previous = forge.ledger.latest_build(proposal.id)
    if previous is None:
        return None
    o = previous.options
    return Repeat(previous.backend, Path(o.from_dir) if o.from_dir else None, o.timeout_seconds)


def make_backend(forge: Forge, name: str, from_dir: Path | None, paths: tuple[str, ...] = ()) -> Backend:
    backends = forge.committed_config.backends
    if name == "files":
        from kavi.backends.files import FilesBackend

        if from_dir is None:
            raise ValidationError(
                "--backend files needs --from DIR",
                remedy="point --from at a directory holding the skill and test files",
            )
        return FilesBackend(from_dir)
    if from_dir is not None:
        raise ValidationError("--from is only used with --backend files")
    if name == "claude":
        from kavi.backends.claude import ClaudeBackend

        claude = ClaudeBackend(backends.claude)
        claude.preflight(os.environ, paths)  # fail before any state exists
        return claude
    if name == "openai":
        from kavi.backends.openai import OpenAIBackend

        return OpenAIBackend(backends.openai)
    raise ValidationError(
        f"unknown backend {name!r}",
        why="the backends are: claude, openai, files",
        remedy="pass --backend claude|openai|files",
    )


def sandbox_base(forge: Forge) -> Path:
    configured = forge.committed_config.sandbox_root
    base = Path(os.path.expanduser(configured)) if configured else Path(tempfile.gettempdir())
    base = base.resolve()
    for inside in (forge.workdir, forge.location.common_dir):
        if base == inside or inside in base.parents:
            raise ConfigError(
                f"sandbox_root {base} is inside the repository",
                why="sandboxes must live outside the working tree and outside .git",
                remedy="set sandbox_root in .kavi/config.yaml to a directory outside the repo",
            )
    return base


def _commit_message(proposal: Proposal, build_id: str, attempt: int, backend: str, packet_hash: str) -> str:
    return (
        f"kavi build: {proposal.name} attempt {attempt} ({backend})\n\n"
        f"Sandbox contents written by the {backend} backend, committed by Kavi.\n\n"
        f"Kavi-Proposal: {proposal.id}\n"
        f"Kavi-Build: {build_id}\n"
        f"Kavi-Packet: blake3:{packet_hash}\n"
        f"Kavi-Backend: {backend}\n"
        f"Kavi-Attempt: {attempt}\n"
    )


def _summary(result: BackendResult | None, violations: list[Violation], error: str | None) -> str:
    if error:
        return error
    parts = []
    if result is not None and not result.ok:
        parts.append(f"backend failed: {result.reason}")
    if violations:
        parts.append(
            f"gate refused {len(violations)} path(s): "
            + "; ".join(f"{v.path} ({v.reason})" for v in violations[:10])
            + (" …" if len(violations) > 10 else "")
        )
    return " | ".join(parts) or "both files written; gate passed"


def _log_body(
    *,
    build: Build,
    paths: SkillPaths,
    result: BackendResult | None,
    violations: list[Violation],
    withheld: list[str],
) -> str:
    lines = [
        f"- status: **{build.status.value}**",
        f"- branch: {_code(build.branch_name)}",
        f"- base commit: {_code(build.base_commit)}",
        f"- build commit: {_code(build.commit_id or '(none)')}",
        f"- allowed paths: {_code(paths.skill_file)}, {_code(paths.test_file)}",
        f"- summary: {_code(build.summary)}",
    ]
    if withheld:
        lines.append(f"- withheld from the sandbox: {', '.join(_code(printable(w)) for w in withheld)}")
    from kavi.forge.budget import describe

    spent = describe(build.usage)
    if spent:
        lines.append(f"- backend usage: {_code(printable(spent))}")
    if build.tool_attempts:
        lines += ["", "## Refused tool calls", ""]
        lines += [f"- {_code(a.tool)} {_code(a.input)} — {a.outcome}" for a in build.tool_attempts]
    lines += ["", "## Gate", ""]
    if violations:
        lines += [f"- {_code(v.path)} — {_code(v.reason)} [{v.rule}]" for v in violations]
    else:
        lines.append("- no violations")
    lines += ["", "## Backend transcript", "", "```text"]
    transcript = result.transcript if result is not None else "(backend did not run)"
    lines += [printable(transcript, multiline=True).replace("```", "'''").rstrip(), "```"]
    return "\n".join(lines)


def build_skill(
    forge: Forge,
    proposal_ref: str,
    *,
    backend_name: str,
    from_dir: Path | None = None,
    timeout: float | None = None,
    hint: str | None = None,
    forge_run_id: str | None = None,
    progress: Progress = lambda _msg: None,
    live: Progress = lambda _msg: None,
) -> BuildOutcome:
    """Build ``proposal_ref``; ``progress`` gets the steps, ``live`` what the backend is
    doing while it runs (escaped, secrets redacted)."""
    from kavi.forge.research import packet_feedback
    from kavi.gitstore import gate, sandbox, tripwire
    from kavi.gitstore.repo import Person

    ledger = forge.ledger
    proposal = ledger.find_proposal(proposal_ref)
    if proposal.status not in BUILDABLE:
        raise StateError(
            f"proposal {proposal.id[:8]} ({proposal.name}) is {proposal.status.value}",
            why="only PROPOSED, BUILT or VERIFIED proposals can be built",
            remedy="propose the skill again to build a new version",
        )
    config = forge.committed_config
    policy = forge.policy
    paths = skill_paths(config, proposal.name)
    backend = make_backend(forge, backend_name, from_dir, paths.allowed)
    from kavi.forge import budget

    budget_left = (
        budget.remaining(config, proposal, ledger.builds_for(proposal.id))
        if backend.name != "files"
        else None
    )
    repo = forge.repo
    base = repo.branch_tip(config.target_branch)
    if base is None:
        raise GitError(
            f"target branch {config.target_branch!r} has no commits",
            remedy="run `git kavi init` (it commits the governance files)",
        )
    if repo.entry(base, PACKET_FILE) is not None:
        raise ValidationError(f"the repository already tracks {PACKET_FILE}; Kavi needs that name")
    links = _links_on_the_way(repo, base, paths.allowed)
    if links:
        raise GateError(
            f"{config.target_branch} holds a symlink where the build must write: {', '.join(links)}",
            why="the agent writes the skill and its test as regular files; through a committed "
            "symlink (at the file or a directory above it) a write would land wherever the link "
            "leads, outside the sandbox",
            remedy=f"replace the symlink(s) on {config.target_branch} with a regular file or "
            "directory (an ordinary commit), then build again",
        )
    sandbox_root_base = sandbox_base(forge)
    if policy.sandbox.confine == "required":
        from kavi.confine import jail

        if not jail.available():
            raise ConfigError(
                "policy requires confined builds, and this machine cannot confine processes",
                why="user and PID namespaces (unshare, setpriv) are unavailable here",
                remedy="enable unprivileged user namespaces, or set sandbox.confine: auto in "
                ".kavi/policy.yaml (a signed governance change)",
            )

    build_id = str(uuid.uuid4())
    branch = f"skill/{proposal.name}-{build_id[:8]}"
    if repo.branch_tip(branch) is not None:
        raise GitError(f"branch {branch} already exists", remedy="re-run the build")
    previous = ledger.latest_build(proposal.id)
    attempt = (previous.attempt_number + 1) if previous else 1
    hint = " ".join(hint.split()) if hint and hint.strip() else None
    feedback = packet_feedback(forge, proposal, previous, hint)
    secrets = secret_values(
        os.environ,
        [
            *config.backends.credential_names(),
            *(f"KAVI_SECRET_{s}" for s in proposal.required_secrets),
        ],
        url_names=config.backends.passthrough_names(),
    )
    packet_text = redact(
        render_packet(
            proposal=proposal,
            paths=paths,
            policy=policy,
            base_commit=base,
            target_branch=config.target_branch,
            attempt=attempt,
            feedback=feedback,
        ),
        secrets,
    )
    packet_hash = blake3_hex(packet_text.encode("utf-8"))
    vault = forge.vault(secrets)

    progress(f"build {build_id[:8]}: attempt {attempt} of {proposal.name} with {backend.name}")
    with vault.pending(), ledger.transaction(forge.actor) as txn:
        packet, _ = vault.write(
            ArtifactKind.BUILD_PACKET,
            name=proposal.name,
            related_id=build_id,
            title=f"BUILD_PACKET_{attempt} {proposal.name}",
            body=packet_text.split("\n", 2)[2] if packet_text.count("\n") >= 2 else packet_text,
            meta={
                "proposal_id": proposal.id,
                "build_id": build_id,
                "base_commit": base,
                "packet_blake3": packet_hash,
                "attempt": attempt,
            },
            attempt=attempt,
        )
        txn.put(EventKind.ARTIFACT_RECORDED, packet)
        started = Build(
            id=build_id,
            proposal_id=proposal.id,
            attempt_number=attempt,
            parent_build_id=previous.id if previous else None,
            branch_name=branch,
            backend=backend.name,
            base_commit=base,
            packet_artifact_id=packet.id,
            started_at=now_iso(),
            options=BuildOptions(
                from_dir=str(from_dir.resolve()) if from_dir is not None else None,
                timeout_seconds=timeout,
                hint=hint,
                research_id=feedback.research_id if feedback else None,
                forge_run_id=forge_run_id,
            ),
        )
        txn.put(EventKind.BUILD_STARTED, started)

    box: sandbox.Sandbox | None = None
    result: BackendResult | None = None
    violations: list[Violation] = []
    commit_id: str | None = None
    tree_id: str | None = None
    error: str | None = None
    pending_exc: BaseException | None = None
    try:
        box = sandbox.create(
            repo,
            root=sandbox_root_base / f"kavi-build-{build_id}",
            worktree_name=f"kavi-{build_id[:12]}",
            branch=branch,
            base_commit=base,
            exclude=policy.sandbox.exclude,
            keep=paths.allowed,
        )
        (box.work / PACKET_FILE).write_text(packet_text, encoding="utf-8")
        from kavi.backends.env import scrubbed_env

        env = scrubbed_env(
            os.environ,
            home=box.home,
            tmp=box.tmp,
            credentials=config.backends.credential_names(backend.name),
            passthrough=config.backends.passthrough_names(backend.name),
            forbidden=[f"KAVI_SECRET_{s}" for s in proposal.required_secrets],
            ceiling=box.root,
        )
        from kavi.confine import jail, launch

        # only the claude backend runs someone else's program; files and openai answers are
        # written by Kavi itself, so there is nothing to confine or to watch
        runs_agent = backend.name == "claude"
        confining = runs_agent and policy.sandbox.confine != "off" and jail.available()
        before = tripwire.take(repo) if runs_agent and not confining else None
        if before is not None:
            launch.not_dumpable()  # at least our own /proc/<pid>/environ stays unreadable to it
        if before is not None:
            tripwire.save(before, tripwire.saved_path(repo, build_id))
        home = Path(os.path.expanduser("~")).resolve()
        progress(f"running the {backend.name} backend in {box.work}")
        try:
            result = backend.run(
                BackendRequest(
                    sandbox=box.work,
                    packet_text=packet_text,
                    allowed_paths=paths.allowed,
                    env=env,
                    timeout_seconds=timeout or _default_timeout(forge, backend.name),
                    confinement=_confinement(forge, home, box.root) if confining else None,
                    budget_usd=budget_left,
                    progress=lambda line: live(printable(redact(line, secrets))),
                )
            )
        finally:  # whatever the backend did or however it ended, undo it in the main repository
            for change in tripwire.check(repo, before) if before is not None else []:
                violations.append(
                    Violation(path=change.split(" ")[0], reason=f"main repository: {change}", rule="tripwire")
                )
            tripwire.saved_path(repo, build_id).unlink(missing_ok=True)
        progress("committing the sandbox and running the gate")
        packet_file = box.work / PACKET_FILE
        snap = sandbox.snapshot(
            repo,
            box,
            limits=sandbox.Limits(
                max_file_bytes=policy.sandbox.max_file_bytes,
                max_files=policy.sandbox.max_files,
                max_depth=policy.sandbox.max_depth,
            ),
            allowed=paths.allowed,
            ignore=[PACKET_FILE] if packet_file.is_file() and not packet_file.is_symlink() else [],
            secrets=secrets,
        )
        violations.extend(snap.problems)
        try:
            tree_id = repo.update_tree(repo.commit_tree(base), snap.changes)
        except GitError as exc:  # a name the checks above did not foresee: fail, commit nothing
            violations.append(Violation(path=".", reason=exc.message, rule="bad-name"))
        if tree_id is not None:
            person = repo.author()
            author = Person(f"Kavi build ({backend.name})", BUILD_AUTHOR_EMAIL, person.time, person.offset)
            written = repo.write_commit(
                tree=tree_id,
                parents=[base],
                message=_commit_message(proposal, build_id, attempt, backend.name, packet_hash),
                author=author,
            )
            repo.set_ref(f"refs/heads/{branch}", written, message="kavi: build commit", old=base)
            commit_id = written
            violations.extend(
                gate.check(repo, base, commit_id, paths.allowed, max_file_bytes=policy.sandbox.max_file_bytes)
            )
    except KaviError as exc:
        error = f"build aborted: {exc.message}"
        pending_exc = exc
    except BaseException as exc:  # record the attempt, then re-raise (incl. Ctrl-C)
        error = f"build aborted: {type(exc).__name__}: {exc}"
        pending_exc = exc
    finally:
        if box is not None:
            try:
                sandbox.remove(repo, box)
            except Exception as exc:  # never let cleanup stop the ledger from recording the build
                progress(f"warning: could not remove the sandbox {box.root}: {exc}")
        if commit_id is None:
            repo.delete_ref(f"refs/heads/{branch}")

    violations = _finalise(violations, secrets)
    ok = error is None and result is not None and result.ok and not violations
    status = BuildStatus.SUCCEEDED if ok else BuildStatus.FAILED
    finished = started.model_copy(
        update={
            "status": status,
            "commit_id": commit_id,
            "tree_id": tree_id,
            "summary": printable(redact(_summary(result, violations, error), secrets)),
            "violations": violations,
            "usage": _safe_usage(result, started, secrets),
            "tool_attempts": _safe_attempts(result, secrets),
            "finished_at": now_iso(),
        }
    )
    with vault.pending(), ledger.transaction(forge.actor) as txn:
        log, _ = vault.write(
            ArtifactKind.BUILD_LOG,
            name=proposal.name,
            related_id=build_id,
            title=f"BUILD_LOG_{attempt} {proposal.name} — {status.value}",
            body=_log_body(
                build=finished,
                paths=paths,
                result=result,
                violations=violations,
                withheld=box.withheld if box else [],
            ),
            meta={
                "proposal_id": proposal.id,
                "build_id": build_id,
                "status": status.value,
                "commit": commit_id,
            },
            links=[_stem(packet, proposal.name, attempt)],
            attempt=attempt,
        )
        txn.put(EventKind.ARTIFACT_RECORDED, log)
        finished = finished.model_copy(update={"log_artifact_id": log.id})
        payload = finished.model_dump(mode="json")
        keep = (
            "status",
            "commit_id",
            "tree_id",
            "summary",
            "violations",
            "usage",
            "tool_attempts",
            "finished_at",
            "log_artifact_id",
        )
        txn.record(
            EventKind.BUILD_FINISHED,
            build_id,
            {"build_id": build_id, **{k: payload[k] for k in keep}},
        )
        if ok:
            txn.record(
                EventKind.STATUS_CHANGED,
                proposal.id,
                {
                    "proposal_id": proposal.id,
                    "from": proposal.status.value,
                    "to": "BUILT",
                    "reason": f"build {build_id[:8]} succeeded",
                },
            )
    if pending_exc is not None:
        raise pending_exc
    return BuildOutcome(
        build=ledger.build(build_id),
        proposal=ledger.proposal(proposal.id),
        packet=packet,
        log=log,
    )


def _links_on_the_way(repo: GitRepo, base: str, allowed: tuple[str, ...]) -> list[str]:
    """The allowed paths, or directories above them, that ``base`` holds as symlinks."""
    from kavi.gitstore.repo import MODE_LINK

    found: list[str] = []
    for path in allowed:
        parts = path.split("/")
        for depth in range(1, len(parts) + 1):
            entry = repo.entry(base, "/".join(parts[:depth]))
            if entry is None:
                break
            if entry.mode == MODE_LINK:
                found.append("/".join(parts[:depth]))
                break
    return sorted(set(found))


def _safe_usage(result: BackendResult | None, started: Build, secrets: list[str]) -> BuildUsage:
    """The backend's usage as the ledger keeps it: the model's name is what the server
    answered (a hostile one chooses it), so it is redacted and escaped like any
    agent-chosen text; so is the version, for the same price."""
    if result is None:
        return started.usage
    usage = result.usage
    return usage.model_copy(
        update={
            name: printable(redact(value, secrets))
            for name, value in (("model", usage.model), ("backend_version", usage.backend_version))
            if value is not None
        }
    )


def _safe_attempts(result: BackendResult | None, secrets: list[str]) -> list[ToolAttempt]:
    """The backend's refused tool calls as the ledger keeps them: agent-chosen text with
    secrets redacted and control characters escaped."""
    if result is None:
        return []
    return [
        ToolAttempt(
            tool=printable(redact(a.tool, secrets)),
            input=printable(redact(a.input, secrets)),
            outcome=a.outcome,
        )
        for a in result.attempts
    ]


def _code(text: str) -> str:
    """``text`` as one markdown code span, whatever backticks it holds (agent-chosen names)."""
    run = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * (run + 1)
    pad = " " if run else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _stem(artifact: Artifact, name: str, attempt: int) -> str:
    from kavi.artifacts.vault import artifact_stem

    return artifact_stem(artifact.kind, name, artifact.id, attempt)


def _default_timeout(forge: Forge, backend: str) -> float:
    backends = forge.committed_config.backends
    return {
        "claude": backends.claude.timeout_seconds,
        "openai": backends.openai.timeout_seconds,
        "files": backends.files.timeout_seconds,
    }.get(backend, 600.0)


MAX_VIOLATIONS = 200


def _finalise(violations: list[Violation], secrets: list[str]) -> list[Violation]:
    """Sorted, de-duplicated, safe to show and at most :data:`MAX_VIOLATIONS` long.

    Paths and reasons are agent-chosen text: secret values (and encodings of them) are
    redacted and control characters escaped before they reach the ledger, the build log
    or a terminal. Beyond the limit one ``truncated`` entry counts the rest.
    """
    seen: set[tuple[str, str]] = set()
    out: list[Violation] = []
    for v in violations:
        safe = Violation(
            path=printable(redact(v.path, secrets)),
            reason=printable(redact(v.reason, secrets)),
            rule=v.rule,
        )
        if (safe.path, safe.reason) not in seen:
            seen.add((safe.path, safe.reason))
            out.append(safe)
    if len(out) > MAX_VIOLATIONS:  # keep the rarer findings; stray files are the bulk
        out.sort(key=lambda v: (v.rule == "outside-allowlist", v.path))
        rest = len(out) - MAX_VIOLATIONS + 1
        more = Violation(path="…", reason=f"{rest} more violation(s) not listed", rule="truncated")
        out = [*out[: MAX_VIOLATIONS - 1], more]
    out.sort(key=lambda v: (v.rule == "truncated", v.path, v.rule, v.reason))
    return out


# Readable only by root; a build run as root would otherwise show them to its backend
# (which is root in its namespace). Better still: do not build as root.
_SYSTEM_SECRETS = tuple(
    Path(p)
    for p in (
        "/etc/shadow",
        "/etc/gshadow",
        "/etc/shadow-",
        "/etc/gshadow-",
        "/etc/sudoers",
        "/etc/sudoers.d",
        "/etc/ssh",
        "/etc/ssl/private",
        "/var/log",
        "/var/spool",
        "/var/backups",
        "/var/mail",
    )
)


def _account_home(home: Path) -> list[Path]:
    """The account's home from the password database, when ``$HOME`` points elsewhere
    (``sudo -E``, CI runners): hidden as well."""
    import pwd

    try:
        account = Path(pwd.getpwuid(os.getuid()).pw_dir).resolve()
    except (KeyError, OSError):
        return []
    return [account] if account != home and account != Path("/") else []


def _confinement(forge: Forge, home: Path, sandbox_root: Path) -> Confinement:
    """What the jailed backend may see: its sandbox, and a read-only world without the
    forge, the home directory or anyone's sockets."""
    from kavi.confine import jail
    from kavi.confine.withhold import signing_key_files, withheld_paths

    common = forge.location.common_dir
    base = sandbox_root.parent  # other builds' sandboxes (this one is bound back)
    trees = [t for t in jail.worktrees(common) if not t.is_relative_to(sandbox_root)]
    hidden = (forge.workdir, common, *trees, *_account_home(home), base)
    return jail.Confinement(
        sandbox_root=sandbox_root,
        home=home if home != Path("/") else None,
        hide=tuple(h for h in hidden if h != Path("/")),
        private=jail.runtime_dirs(os.environ),
        withhold=tuple(
            withheld_paths(
                hidden=(home, *hidden),
                env=os.environ,
                sandbox=sandbox_root,
                extra=[
                    *signing_key_files(forge.repo.config_get("user.signingkey"), home),
                    *(p for p in _SYSTEM_SECRETS if os.geteuid() == 0 and os.path.lexists(p)),
                ],
            )
        ),
    )
