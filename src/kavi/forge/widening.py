"""Does advice try to widen the proposal? One deterministic check, in one place.

A rebuild can only change the two allowed files. Advice that needs more — a wider
side-effect class, a secret the proposal did not declare, another file, a different I/O
schema — would widen what a human proposed; that is never applied, and the forge loop
escalates it to a human. Both what the advisor states in its structured fields and
what its prose asks for are checked; a narrower class is not widening.
"""

from __future__ import annotations

import re

from kavi.config import ForgeConfig
from kavi.forge.spec import SkillPaths
from kavi.ledger.models import Advice, Proposal
from kavi.policy.model import SideEffect

#: How much a class may do; classes of equal rank are different capabilities.
RANK = {
    SideEffect.READ_ONLY: 0,
    SideEffect.FILE_WRITE: 1,
    SideEffect.NETWORK: 2,
    SideEffect.MONEY: 2,
    SideEffect.MESSAGING: 2,
}

_CLASS_IN_TEXT = re.compile(
    r"SideEffect\.(?P<a>[A-Z_]+)|"
    r"side[-_ ]effect(?:[-_ ]class)?\W{0,3}(?:to|=|:|as|be|of|is)?\W{0,3}"
    r"(?:SideEffect\.)?(?P<b>[A-Z][A-Z_]+)",
    re.IGNORECASE,
)
_SECRET_IN_TEXT = re.compile(
    r"KAVI_SECRET_(?P<a>\w+)|secrets\s*(?:\.get\(|\[)\s*['\"](?P<b>\w+)|required_secrets\s*=\s*[(\[](?P<c>[^)\]]*)"
)
_PATH_IN_TEXT = re.compile(
    r"(?<![\w/.-])(?P<p>\.?[\w.-]+(?:/[\w.-]+)*\.(?:py|pth|ya?ml|toml|cfg|ini)|\.[\w-]+/[\w./-]*)"
)
_NAME = re.compile(r"['\"]?(\w+)['\"]?")
_ROOT_FILES = (
    "conftest.py",
    "sitecustomize.py",
    "usercustomize.py",
    "setup.py",
    "pyproject.toml",
    "setup.cfg",
)


def _wider(wanted: str, proposal: Proposal) -> bool:
    try:
        effect = SideEffect(wanted.strip().upper())
    except ValueError:
        return bool(wanted.strip())  # a class Kavi does not know: not the proposal's
    current = proposal.side_effect_class
    return effect is not current and RANK[effect] >= RANK[current]


def _governed(path: str, paths: SkillPaths, config: ForgeConfig) -> bool:
    """A repository path a rebuild may not touch: anything governed, in the skills or
    tests directories, or run by Python or pytest by itself — except the two allowed files."""
    clean = path.strip("`'\",;:()")
    clean = clean[2:] if clean.startswith("./") else clean
    if clean in paths.allowed or not clean:
        return False
    head = clean.split("/", 1)[0]
    if head in (".kavi", ".git", ".github", "hooks") or clean.endswith(".pth"):
        return True
    if clean.rsplit("/", 1)[-1] in _ROOT_FILES or clean.rsplit("/", 1)[-1] == "registry.yaml":
        return True
    return any(clean.startswith(d.rstrip("/") + "/") for d in (config.skills_dir, config.tests_dir))


def widening(advice: Advice, proposal: Proposal, paths: SkillPaths, config: ForgeConfig) -> list[str]:
    """Every way ``advice`` would widen ``proposal`` (empty: it stays within it)."""
    found: list[str] = []
    declared = proposal.side_effect_class.value
    if advice.side_effect_class and _wider(advice.side_effect_class, proposal):
        found.append(f"side-effect class {advice.side_effect_class} (the proposal declares {declared})")
    extra = sorted({s for s in advice.secrets if s and s not in proposal.required_secrets})
    if extra:
        found.append(
            f"secret(s) {', '.join(extra)} (the proposal declares {proposal.required_secrets or 'none'})"
        )
    outside = sorted({f for f in advice.files if f.strip().lstrip("./") not in paths.allowed})
    if outside:
        found.append(f"file(s) {', '.join(outside)} outside {' and '.join(paths.allowed)}")
    if advice.io_schema_changes:
        found.append(f"I/O schema change(s): {'; '.join(advice.io_schema_changes)}")

    text = "\n".join([advice.diagnosis, *advice.steps])
    for m in _CLASS_IN_TEXT.finditer(text):
        wanted = m.group("a") or m.group("b") or ""
        if wanted.upper() in SideEffect.__members__ and _wider(wanted, proposal):
            found.append(
                f"the advice text asks for side-effect class {wanted.upper()} (declared: {declared})"
            )
    for m in _SECRET_IN_TEXT.finditer(text):
        names = [m.group("a") or m.group("b") or ""] if m.group("c") is None else _NAME.findall(m.group("c"))
        for name in names:
            if name and name not in proposal.required_secrets:
                found.append(f"the advice text uses secret {name} (not declared by the proposal)")
    for m in _PATH_IN_TEXT.finditer(text):
        if _governed(m.group("p"), paths, config):
            found.append(f"the advice text changes {m.group('p')} (outside the two allowed files)")
    return list(dict.fromkeys(found))
