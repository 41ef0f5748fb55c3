"""Deterministic failure classification: a failed attempt, as the ledger holds it.

A failed build (its violations and the backend's reason) or a failed verification (each
gate's findings) becomes a list of :class:`~kavi.ledger.models.Fact` — failure kind,
gate, file, line, rule, message and the gate's own words — and one primary
:class:`~kavi.ledger.models.FailureKind` for the attempt. No model and no network: the
same records always classify the same way.

A fact is **security-class** when it shows an attempt on what governs or protects the
forge: a policy-scanner finding, the runtime guard or the OS boundary refusing an
operation, a secret value in what the agent wrote or said, or a gate violation of a
forbidden path (git's own files, ``.kavi/``, another skill's code, files Python or pytest
run by themselves, links and devices, the main repository). Security-class facts decide
the primary kind, and the forge loop escalates on them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from kavi.config import ForgeConfig
from kavi.ledger.models import Build, BuildStatus, Fact, FailureKind, Verification, Violation
from kavi.secrets import REDACTED
from kavi.textsafe import fold_component, is_git_dir_name, same_component

K = FailureKind

#: Which kind wins when an attempt failed in several ways (security-class facts first).
PRECEDENCE: tuple[FailureKind, ...] = (
    K.CONFINEMENT_VIOLATION,
    K.SECRET_IN_OUTPUT,
    K.RUNTIME_GUARD,
    K.GATE_VIOLATION,
    K.VERIFY_POLICY,
    K.INTERRUPTED,
    K.BUDGET_EXCEEDED,
    K.TIMEOUT,
    K.BACKEND_UNAVAILABLE,
    K.BACKEND_REFUSED,
    K.BACKEND_ERROR,
    K.VERIFY_INVARIANT,
    K.VERIFY_LINT,
    K.VERIFY_TYPE,
    K.VERIFY_TEST,
    K.UNKNOWN,
)

#: The kind a failed gate's findings have unless a pattern below says otherwise.
GATE_KINDS: dict[str, FailureKind] = {
    "scope": K.GATE_VIOLATION,
    "policy": K.VERIFY_POLICY,
    "invariants": K.VERIFY_INVARIANT,
    "ruff": K.VERIFY_LINT,
    "mypy": K.VERIFY_TYPE,
    "pytest": K.VERIFY_TEST,
}

#: Findings whose words decide their kind, whatever gate reported them; a new boundary
#: (e.g. the OS confinement of generated tests) plugs in here with its kind and reason.
FINDING_PATTERNS: tuple[tuple[re.Pattern[str], FailureKind, str | None], ...] = (
    (
        re.compile(r"runtime guard refused|GuardViolation"),
        K.RUNTIME_GUARD,
        "the runtime guard refused an operation of the generated code",
    ),
    (
        re.compile(r"\bconfine(?:ment|d)?\b[^\n]*\b(?:violat|refus|denied|escap|blocked)", re.IGNORECASE),
        K.CONFINEMENT_VIOLATION,
        "the OS boundary refused an operation of the generated code",
    ),
    (re.compile(r"\btimed out after\b"), K.TIMEOUT, None),
)

#: Policy-scanner rules about the file as a whole (size, encoding, syntax), not capabilities.
POLICY_FILE_RULES = frozenset({"KS001", "KS003", "KS004", "KS007", "KS008"})

#: The backend's own reason for failing, first match wins.
BACKEND_REASONS: tuple[tuple[re.Pattern[str], FailureKind], ...] = (
    (re.compile(r"KeyboardInterrupt|_Terminated|\bInterrupted\b"), K.INTERRUPTED),
    (
        re.compile(r"error_max_budget|max[-_ ]budget|error_max_turns|max[-_ ]turns", re.IGNORECASE),
        K.BUDGET_EXCEEDED,
    ),
    (re.compile(r"did not finish within|timed out|deadline", re.IGNORECASE), K.TIMEOUT),
    (
        re.compile(
            r"unreachable|connection (?:failed|refused)|could not connect|not found on PATH|"
            r"HTTP (?:401|403|404|429|5\d\d)",
            re.IGNORECASE,
        ),
        K.BACKEND_UNAVAILABLE,
    ),
    (re.compile(r"model refused|not allowed to use|permission", re.IGNORECASE), K.BACKEND_REFUSED),
)

#: The openai backend refusing a path the model gave: an attempt to write outside the sandbox.
_ESCAPING_PATH = re.compile(
    r"^refused path .*: (?:absolute path|contains a '\.\.' component|resolves outside the sandbox|"
    r"writes into \.git|.* is a symlink)"
)

#: Gate rules that are security-class whatever the path.
ALWAYS_SECURITY: dict[str, str] = {
    "tripwire": "changed the main repository outside the sandbox",
    "secret": "a secret value in what the agent wrote",
    "nested-repo": "a git repository, or git's own directory, inside the sandbox",
    "symlink": "a symbolic link (it can point anywhere on the machine)",
    "hard-link": "a hard link (its content can be a file outside the sandbox)",
    "special-file": "a device, socket or fifo",
}

_AUTORUN = ("conftest.py", "sitecustomize.py", "usercustomize.py")


@dataclass(frozen=True)
class Classification:
    kind: FailureKind
    facts: list[Fact]
    outcome: str  # one line: what failed ("build FAILED", "verification FAILED: mypy, pytest")

    @property
    def security(self) -> bool:
        return any(f.security for f in self.facts)

    @property
    def security_reasons(self) -> list[str]:
        reasons = [f"{f.kind.value} at {f.where}: {f.why_security}" for f in self.facts if f.security]
        return list(dict.fromkeys(reasons))


#: Gate rules that only follow from another failure (a backend that wrote nothing).
CONSEQUENTIAL_RULES = frozenset({"missing"})


def primary_kind(facts: Sequence[Fact]) -> FailureKind:
    """Security-class facts first; a file missing because the backend failed is a
    consequence, not the kind of the failure."""
    pool = (
        [f for f in facts if f.security]
        or [f for f in facts if not (f.gate == "scope" and f.rule in CONSEQUENTIAL_RULES)]
        or list(facts)
    )
    if not pool:
        return K.UNKNOWN
    return min(pool, key=lambda f: PRECEDENCE.index(f.kind)).kind


def forbidden_reason(path: str, rule: str, reason: str, config: ForgeConfig) -> str | None:
    """Why a gate violation at ``path`` is security-class, or None when it is only out of scope.

    Names are compared as the most forgiving filesystem reads them (the hook's folding)."""
    from kavi.gitstore.protected import Layout, PathRule

    if rule in ALWAYS_SECURITY:
        return ALWAYS_SECURITY[rule]
    parts = [fold_component(c) for c in path.split("/") if c]
    if not parts:
        return None
    if any(is_git_dir_name(c) for c in path.split("/") if c):
        return "git's own files"
    if same_component(parts[0], ".kavi"):
        return "the forge's governance files (.kavi/)"
    if same_component(parts[0], ".github") or same_component(parts[0], "hooks"):
        return "CI or hook configuration"
    name = parts[-1]
    if any(same_component(name, n) for n in (".gitattributes", ".gitmodules")):
        return "git configuration inside the tree"
    if any(same_component(name, n) for n in _AUTORUN) or name.endswith(".pth"):
        return "a file Python or pytest runs by itself"
    if PathRule([Layout.from_config(config)])(path):
        if same_component(name, "registry.yaml"):
            return "the skill registry"
        if rule == "deleted" or reason.startswith(("modifies", "renamed")):
            return "another skill's code or tests (protected paths)"
    return None


def violation_fact(v: Violation, config: ForgeConfig) -> Fact:
    why = forbidden_reason(v.path, v.rule, v.reason, config)
    named = v.path not in (".", "…", "")
    return Fact(
        kind=K.SECRET_IN_OUTPUT if v.rule == "secret" else K.GATE_VIOLATION,
        gate="scope",
        file=v.path if named else None,
        rule=v.rule,
        message=v.reason,
        words=f"{v.path}: {v.reason} [{v.rule}]",
        security=why is not None,
        why_security=why,
    )


def backend_fact(reason: str, *, gate: str = "backend") -> Fact:
    """The backend's (or the build's) own reason for failing, as one fact."""
    if reason.startswith(("refused path ", "refused file ")):
        escaping = _ESCAPING_PATH.match(reason) is not None
        return Fact(
            kind=K.GATE_VIOLATION,
            gate=gate,
            message=reason,
            words=reason,
            security=escaping,
            why_security="the model named a path outside the sandbox" if escaping else None,
        )
    kind = next((k for pattern, k in BACKEND_REASONS if pattern.search(reason)), K.BACKEND_ERROR)
    return Fact(kind=kind, gate=gate, message=reason, words=reason)


def _transcript_secret(log_text: str | None) -> Fact | None:
    """A secret redacted out of the backend's transcript: the agent saw a secret."""
    if not log_text or "## Backend transcript" not in log_text:
        return None
    transcript = log_text.split("## Backend transcript", 1)[1]
    if REDACTED not in transcript:
        return None
    return Fact(
        kind=K.SECRET_IN_OUTPUT,
        gate="backend",
        message="the backend's transcript contained a secret value (redacted in the build log)",
        words=f"{REDACTED} in the backend transcript",
        security=True,
        why_security="a secret value in what the agent said",
    )


def classify_build(build: Build, config: ForgeConfig, log_text: str | None = None) -> Classification:
    """A FAILED build: its gate violations and the backend's reason (from the build record),
    plus a secret seen in the transcript (from the BUILD_LOG artifact, when given)."""
    facts = [violation_fact(v, config) for v in build.violations if v.rule != "truncated"]
    for part in build.summary.split(" | "):
        if part.startswith("backend failed: "):
            facts.append(backend_fact(part[len("backend failed: ") :]))
        elif part.startswith("build aborted: "):
            facts.append(backend_fact(part[len("build aborted: ") :], gate="build"))
    leaked = _transcript_secret(log_text)
    if leaked is not None:
        facts.append(leaked)
    if not facts and build.status is BuildStatus.FAILED:
        facts.append(Fact(kind=K.UNKNOWN, gate="build", message=build.summary, words=build.summary))
    return Classification(primary_kind(facts), facts, f"build {build.status.value}")


_LOCATED = re.compile(
    r"^(?P<file>[^\s:][^:\n]*?):(?P<line>\d+):(?:(?P<col>\d+):)?\s?(?P<rest>.*)$", re.DOTALL
)
_LEADING_CODE = re.compile(r"^(?P<rule>[A-Z]+[0-9]+)\s+(?P<msg>.*)$", re.DOTALL)
_TRAILING_CODE = re.compile(r"^(?P<msg>.*?)\s*\[(?P<rule>[a-z0-9-]+)\]$", re.DOTALL)
_BRACKET_FIRST = re.compile(r"^\[(?P<rule>[a-z0-9-]+)\]\s*(?P<msg>.*)$", re.DOTALL)


def _split_rule(gate: str, rest: str) -> tuple[str | None, str]:
    if gate in ("ruff", "policy"):
        m = _LEADING_CODE.match(rest)
    elif gate == "invariants":
        m = _BRACKET_FIRST.match(rest)
    else:
        m = _TRAILING_CODE.match(rest)
    return (m.group("rule"), m.group("msg").strip()) if m else (None, rest.strip())


def finding_fact(gate: str, finding: str, config: ForgeConfig) -> Fact:
    """One line of a gate's findings (``file:line: …``), in its own words and as facts."""
    m = _LOCATED.match(finding)
    file, line, rest = (
        (m.group("file"), int(m.group("line")), m.group("rest")) if m else (None, None, finding)
    )
    rule, message = _split_rule(gate, rest)
    kind = GATE_KINDS.get(gate, K.UNKNOWN)
    why: str | None = None
    for pattern, pattern_kind, pattern_why in FINDING_PATTERNS:
        if pattern.search(finding):
            kind, why = pattern_kind, pattern_why
            break
    else:
        if gate == "policy":
            if rule in POLICY_FILE_RULES:
                kind = K.VERIFY_LINT
            else:
                why = f"the policy scanner refused it ({rule or 'finding'})"
        elif gate == "scope":
            why = forbidden_reason(file or "", rule or "", message, config)
    return Fact(
        kind=kind,
        gate=gate,
        file=file,
        line=line or None,
        rule=rule,
        message=message,
        words=finding,
        security=why is not None,
        why_security=why,
    )


def classify_verification(verification: Verification, config: ForgeConfig) -> Classification:
    """A FAILED verification: every finding of every failed gate (a skipped gate is a
    consequence, not a failure of its own)."""
    facts: list[Fact] = []
    failed: list[str] = []
    for gate, result in verification.gates.items():
        if result.ok or result.skipped:
            continue
        failed.append(gate)
        found = [finding_fact(gate, f, config) for f in result.findings]
        if not found:
            words = f"the {gate} gate failed without findings"
            found = [Fact(kind=GATE_KINDS.get(gate, K.UNKNOWN), gate=gate, message=words, words=words)]
        facts.extend(found)
    outcome = f"verification {verification.status.value}" + (f": {', '.join(failed)}" if failed else "")
    return Classification(primary_kind(facts), facts, outcome)
