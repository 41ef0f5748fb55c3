"""Rule ids and the compiled form of a :class:`ScannerPolicy` for the AST scanner.

:class:`CompiledPolicy` combines the policy's lists with the fixed tables of
:mod:`kavi.policy.scan_tables` into O(1) look-ups with per-name caches, over the
canonical names of :mod:`kavi.policy.scan_canon`. The engine asks it: is this
qualified name dangerous, and under which rule? Is it sensitive (a module through
which a computed attribute could reach danger)? Could ``getattr(<name>, prefix + x)``
be dangerous? Is this import refused?
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from kavi.policy.scan_canon import ROOT_ALIASES, STDLIB_HINT, STRONG_MODULE_ATTRS, canon
from kavi.policy.scan_tables import (
    ATTR_ALWAYS,
    ATTR_DYNEXEC,
    ATTR_NETWORK,
    ATTR_PROCESS,
    CODE_OBJECT,
    DYN_EXEC,
    DYN_IMPORT,
    ENV_READ,
    ESCAPE,
    GENERIC_LEAVES,
    GUARD,
    NAMESPACE,
    SECRET_STORES,
    SENSITIVE_ROOTS,
    UNSAFE_DESER,
    Danger,
)

if TYPE_CHECKING:
    from kavi.policy.model import ScannerPolicy

#: Rule id -> short stable slug. The module docstring of :mod:`kavi.policy.scanner`
#: documents each of them.
RULES: dict[str, str] = {
    "KS001": "file-too-large",
    "KS002": "null-byte",
    "KS003": "undecodable",
    "KS004": "syntax-error",
    "KS005": "suspicious-encoding",
    "KS006": "bidi-control",
    "KS007": "analysis-limit",
    "KS008": "unreadable",
    "KS101": "forbidden-import",
    "KS102": "forbidden-call",
    "KS201": "dynamic-exec",
    "KS202": "dynamic-import",
    "KS203": "code-object",
    "KS204": "unsafe-deserialization",
    "KS301": "dynamic-attribute",
    "KS302": "namespace-access",
    "KS303": "builtins-access",
    "KS304": "introspection-escape",
    "KS305": "guard-tamper",
    "KS401": "network",
    "KS501": "write-outside-allowed",
    "KS502": "unsanctioned-write-path",
    "KS503": "temp-outside-allowed",
    "KS504": "working-directory",
    "KS601": "environment-read",
    "KS602": "secret-file-read",
    "KS603": "unresolved-read-path",
}

__all__ = ["RULES", "CompiledPolicy", "Danger", "compile_policy"]

_PRIORITY: tuple[str, ...] = (
    "KS102",
    "KS305",
    "KS304",
    "KS302",
    "KS201",
    "KS202",
    "KS203",
    "KS204",
    "KS101",
    "KS401",
    "KS601",
    "KS602",
)


def _prefixes(qual: str) -> list[str]:
    parts = qual.split(".")
    return [".".join(parts[:i]) for i in range(len(parts), 0, -1)]


def _matches(name: str, entries: Iterable[str]) -> str | None:
    for prefix in _prefixes(name):
        if prefix in entries:
            return prefix
    return None


class CompiledPolicy:
    """A :class:`ScannerPolicy` turned into cached look-up tables."""

    def __init__(self, policy: ScannerPolicy) -> None:
        self.forbidden_imports: frozenset[str] = frozenset(policy.forbidden_imports)
        self.network_modules: frozenset[str] = frozenset(() if policy.network else policy.network_modules)
        self.policy_network = policy.network
        self.dynamic = bool(policy.forbid_dynamic_exec)
        allowed: list[tuple[str, bool]] = []
        for raw in policy.allowed_write_paths:
            text = raw.replace("\\", "/").strip()
            while text.startswith("./"):
                text = text[2:]
            text = text.rstrip("/")
            if text:
                allowed.append((text, text.startswith("/")))
        self.allowed_writes: tuple[tuple[str, bool], ...] = tuple(allowed)

        tables: dict[str, dict[str, str]] = {rule: {} for rule in _PRIORITY}
        for entry in policy.forbidden_calls:
            tables["KS102"][canon(entry)] = f"{entry} is forbidden (scanner.forbidden_calls)"
        tables["KS305"].update(GUARD)
        tables["KS304"].update(ESCAPE)
        tables["KS302"].update(NAMESPACE)
        tables["KS601"].update(ENV_READ)
        tables["KS602"].update(SECRET_STORES)
        if self.dynamic:
            tables["KS201"].update(DYN_EXEC)
            tables["KS202"].update(DYN_IMPORT)
            tables["KS203"].update(CODE_OBJECT)
            tables["KS204"].update(UNSAFE_DESER)
        # Module entries are matched as spelled (``posix`` must not forbid ``os``); only
        # re-exports (``asyncio.open_connection``) are added in canonical form.
        for entry in policy.forbidden_imports:
            msg = f"{entry} is forbidden (scanner.forbidden_imports)"
            tables["KS101"][entry] = msg
            if "." in entry and entry.split(".", 1)[0] not in ROOT_ALIASES:
                tables["KS101"].setdefault(canon(entry), msg)
        for entry in self.network_modules:
            msg = f"{entry} is network access (scanner.network is off)"
            tables["KS401"][entry] = msg
            if "." in entry and entry.split(".", 1)[0] not in ROOT_ALIASES:
                tables["KS401"].setdefault(canon(entry), msg)
        self._tables = [(rule, tables[rule]) for rule in _PRIORITY if tables[rule]]

        attr_rules: dict[str, Danger] = dict(ATTR_ALWAYS)
        for name in ATTR_PROCESS:
            attr_rules[name] = Danger("KS102", f"{name!r} starts a process")
        if self.dynamic:
            attr_rules.update(ATTR_DYNEXEC)
        if not policy.network:
            for name in ATTR_NETWORK:
                attr_rules[name] = Danger("KS401", f"{name!r} opens a network connection")
        self.attr_rules = attr_rules

        roots = set(SENSITIVE_ROOTS)
        for entry in (*policy.forbidden_imports, *policy.forbidden_calls, *self.network_modules):
            if entry.count(".") <= 1:  # ``logging.config.listen`` does not make ``logging`` sensitive
                roots.add(canon(entry).split(".", 1)[0])
        self.sensitive_roots: frozenset[str] = frozenset(roots)
        self.dangerous_quals: tuple[str, ...] = tuple(sorted({q for _, table in self._tables for q in table}))
        prefixes: set[str] = set()
        for name in self.dangerous_quals:
            parts = name.split(".")
            prefixes.update(".".join(parts[:i]) for i in range(1, len(parts)))
        self._dangerous_prefixes: frozenset[str] = frozenset(prefixes)
        self._danger: dict[str, Danger | None] = {}
        self._sensitive: dict[str, bool] = {}
        self._reach: dict[tuple[str, str], bool] = {}
        #: Last components of dangerous names: suspicious when read from an object that
        #: was itself fetched with a computed attribute name.
        self.danger_leaves: frozenset[str] = (
            frozenset(name.rsplit(".", 1)[-1] for name in self.dangerous_quals) - GENERIC_LEAVES
        ) | frozenset(STRONG_MODULE_ATTRS)

    # -- queries ---------------------------------------------------------------

    def danger_qual(self, qual: str) -> Danger | None:
        """Is the canonical dotted name ``qual`` dangerous under this policy?"""
        try:
            return self._danger[qual]
        except KeyError:
            pass
        found: Danger | None = None
        prefixes = _prefixes(qual)
        for rule, table in self._tables:
            for prefix in prefixes:
                msg = table.get(prefix)
                if msg is not None:
                    what = msg if msg.startswith(qual + " ") else f"{qual}: {msg}"
                    found = Danger(rule, what, rule == "KS203")
                    break
            if found is not None:
                break
        self._danger[qual] = found
        return found

    def import_danger(self, module: str) -> Danger | None:
        """Is importing ``module`` (raw spelling, e.g. ``posix``) refused?"""
        hit = _matches(module, self.forbidden_imports)
        if hit is not None:
            under = "" if hit == module else f" ({hit})"
            return Danger("KS101", f"import of {module}{under} is forbidden (scanner.forbidden_imports)")
        hit = _matches(module, self.network_modules)
        if hit is not None:
            under = "" if hit == module else f" ({hit})"
            return Danger("KS401", f"import of {module}{under} is network access (scanner.network is off)")
        found = self.danger_qual(canon(module))
        if found is not None and not found.call_only:
            return found
        return None

    def sensitive_qual(self, qual: str) -> bool:
        """Could a computed attribute of ``qual`` reach something dangerous?"""
        try:
            return self._sensitive[qual]
        except KeyError:
            pass
        result = qual.split(".", 1)[0] in self.sensitive_roots or self.danger_qual(qual) is not None
        self._sensitive[qual] = result
        return result

    def leads_to_danger(self, qual: str) -> bool:
        """Can attributes of ``qual`` be dangerous (it is, or contains, a dangerous name, or
        is a top-level module that may re-export one)?"""
        if qual in self._dangerous_prefixes or self.danger_qual(qual) is not None:
            return True
        return "." not in qual and (qual in self.sensitive_roots or qual in STDLIB_HINT)

    def prefix_can_reach(self, qual: str, prefix: str) -> bool:
        """Could ``getattr(<qual>, prefix + <unknown>)`` be dangerous *directly*?

        Deeper routes (``getattr(logging, x).system``) go through the ``#anyattr``
        marker the engine returns for such look-ups."""
        key = (qual, prefix)
        cached = self._reach.get(key)
        if cached is not None:
            return cached
        result = self.danger_qual(qual) is not None or qual in ("builtins.object", "builtins.type")
        if not result:
            if prefix.startswith("_") and qual.split(".", 1)[0] in self.sensitive_roots:
                result = True
            else:
                want = f"{qual}.{prefix}"
                cut = len(qual) + 1
                result = any(name.startswith(want) and "." not in name[cut:] for name in self.dangerous_quals)
        self._reach[key] = result
        return result


_CACHE: dict[tuple[object, ...], CompiledPolicy] = {}


def compile_policy(policy: ScannerPolicy) -> CompiledPolicy:
    key = (
        tuple(policy.forbidden_imports),
        tuple(policy.forbidden_calls),
        policy.forbid_dynamic_exec,
        policy.network,
        tuple(policy.network_modules),
        tuple(policy.allowed_write_paths),
    )
    compiled = _CACHE.get(key)
    if compiled is None:
        if len(_CACHE) > 32:
            _CACHE.clear()
        compiled = _CACHE[key] = CompiledPolicy(policy)
    return compiled
