"""The capability model: what LLM-written code may do, per side-effect class.

One table, read by everything that enforces or explains it: ``run-skill`` builds each
skill's confined view from :func:`for_class`, ``verify-skill`` runs generated tests
under :data:`GENERATED_TEST`, the build packet and the README show
:func:`table_markdown` (a test keeps the README's copy identical), and ``serve mcp``
derives each tool's annotations from :func:`tool_hints`.
"""

from __future__ import annotations

from dataclasses import dataclass

from kavi.policy.model import SideEffect


@dataclass(frozen=True)
class Capabilities:
    """What one kind of confined code gets from the operating system."""

    label: str
    network: bool  # the host's network (else a network namespace of its own: no loopback)
    writes: bool  # the policy's allowed write paths (else only a private /tmp)
    secrets: bool  # the declared secrets the policy grants (else none)
    limits_key: str  # where its resource limits live in .kavi/policy.yaml
    wall_key: str  # its wall time


_SKILL_LIMITS = ("runtime.limits", "runtime.timeout_seconds")
READ_ONLY = Capabilities("READ_ONLY", False, False, True, *_SKILL_LIMITS)
FILE_WRITE = Capabilities("FILE_WRITE", False, True, True, *_SKILL_LIMITS)
NETWORKED = Capabilities("NETWORK / MONEY / MESSAGING", True, False, True, *_SKILL_LIMITS)
GENERATED_TEST = Capabilities(
    "generated test (verify)", False, False, False, "verify.limits", "verify.pytest_timeout_seconds"
)
COLUMNS = (READ_ONLY, FILE_WRITE, NETWORKED, GENERATED_TEST)


def for_class(effect: SideEffect) -> Capabilities:
    if effect is SideEffect.READ_ONLY:
        return READ_ONLY
    if effect is SideEffect.FILE_WRITE:
        return FILE_WRITE
    return NETWORKED


def needs_network(effect: SideEffect) -> bool:
    return for_class(effect).network


@dataclass(frozen=True)
class ToolHints:
    """The MCP tool annotations a side-effect class implies (``serve mcp``).

    ``read_only`` and ``open_world`` follow from what the operating system gives the class
    (no write roots; no network), so for READ_ONLY and FILE_WRITE they are enforced, not
    merely declared. ``destructive`` and ``idempotent`` are what the signed class declares
    about effects the boundary cannot see (a request to a payment API).
    """

    read_only: bool
    destructive: bool
    idempotent: bool
    open_world: bool

    def as_annotations(self) -> dict[str, bool]:
        """The hints under their MCP names (``ToolAnnotations``)."""
        return {
            "readOnlyHint": self.read_only,
            "destructiveHint": self.destructive,
            "idempotentHint": self.idempotent,
            "openWorldHint": self.open_world,
        }


# MONEY and MESSAGING act on the world in ways nobody can take back (a payment, a sent
# message); a NETWORK skill is declared to fetch or look up, and a repeat of either may
# act twice — no networked class is idempotent.
_IRREVERSIBLE = frozenset({SideEffect.MONEY, SideEffect.MESSAGING})


def tool_hints(effect: SideEffect) -> ToolHints:
    """The one mapping from a verified side-effect class to MCP tool annotations.

    READ_ONLY: read-only, closed world (and so neither destructive nor effectful when
    repeated). FILE_WRITE: not read-only (it may overwrite a file below its write roots,
    so destructive), closed world, not idempotent (nothing makes a skill's writes
    repeatable). NETWORK / MONEY / MESSAGING: open world, never idempotent; MONEY and
    MESSAGING destructive.
    """
    caps = for_class(effect)
    read_only = not caps.writes and not caps.network
    return ToolHints(
        read_only=read_only,
        destructive=caps.writes or effect in _IRREVERSIBLE,
        idempotent=read_only,
        open_world=caps.network,
    )


def _read(c: Capabilities) -> str:
    if c is GENERATED_TEST:
        return "its two files, the Python runtime"
    return (
        "its own code, the Python runtime, the read roots (`runtime.allowed_read_paths`, default the vault)"
    )


def _write(c: Capabilities) -> str:
    if c is GENERATED_TEST:
        return "a private scratch directory (pytest's `tmp_path`)"
    if c.writes:
        return "below `runtime.allowed_write_paths`, never `<vault>/kavi/` or `.git`; a private `/tmp`"
    return "a private `/tmp` only"


def _network(c: Capabilities) -> str:
    return "the host's network" if c.network else "none (a network namespace of its own: no loopback)"


def _environment(c: Capabilities) -> str:
    return "the declared secrets the policy grants, locale, `TZ`" if c.secrets else "locale, `TZ`"


def _limits(c: Capabilities) -> str:
    return f"`{c.limits_key}`, `{c.wall_key}`"


def _elsewhere(c: Capabilities) -> str:
    return "absent: no `$HOME`, repository, other checkouts, sockets"


def _guard(c: Capabilities) -> str:
    return "no processes or dynamic code" if c.network else "no processes, sockets or dynamic code"


def _fallback(c: Capabilities) -> str:
    if c.network:
        return "refused unless its `runtime.rules` entry says `confine: off`"
    return "the guard also confines reads"


ROWS = (
    ("reads", _read),
    ("writes", _write),
    ("network", _network),
    ("environment", _environment),
    ("limits (CPU, memory, processes, file and `/tmp` size; wall time)", _limits),
    ("the rest of the machine", _elsewhere),
    ("runtime guard inside (second layer)", _guard),
    ("no namespaces (macOS, locked-down CI)", _fallback),
)


def table_markdown() -> str:
    """The capability table, as the README and every build packet show it."""
    lines = [
        "| capability | " + " | ".join(c.label for c in COLUMNS) + " |",
        "|---" * (len(COLUMNS) + 1) + "|",
    ]
    for name, describe in ROWS:
        lines.append(f"| {name} | " + " | ".join(describe(c) for c in COLUMNS) + " |")
    return "\n".join(lines)
