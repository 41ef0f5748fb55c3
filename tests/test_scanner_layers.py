"""The scanner's modules form layers: each imports only the ones below it.

Read top-down, :mod:`kavi.policy.scanner` uses the engine, the engine the call and
expression evaluators, those the name resolver, and so on down to the fixed tables. No
module may import one above it — not at run time, not under ``TYPE_CHECKING``, not
inside a function — so there is no import circle to untangle when reading or changing
one of them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import kavi.policy

POLICY_DIR = Path(kavi.policy.__file__).parent

#: Bottom to top. A module may import only modules listed before it.
LAYERS = (
    "scan_tables",
    "scan_canon",
    "scan_scope",
    "scan_places",
    "scan_sinks",
    "scan_fold",
    "scan_origin",
    "scan_pathfold",
    "scan_rules",
    "scan_env",
    "scan_writes",
    "scan_names",
    "scan_exprs",
    "scan_calls",
    "scan_engine",
    "scanner",
)


def _scanner_imports(module: str, source: str | None = None) -> set[str]:
    if source is None:
        source = (POLICY_DIR / f"{module}.py").read_text(encoding="utf-8")
    tree = ast.parse(source)
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            if name.startswith("kavi.policy."):
                leaf = name.split(".")[2]
                if leaf.startswith("scan"):
                    found.add(leaf)
    found.discard(module)
    return found


def test_every_scanner_module_has_a_layer() -> None:
    modules = {p.stem for p in POLICY_DIR.glob("scan*.py")}
    assert modules == set(LAYERS)


def test_scanner_modules_import_only_lower_layers() -> None:
    wrong = []
    for rank, module in enumerate(LAYERS):
        below = set(LAYERS[:rank])
        for imported in sorted(_scanner_imports(module)):
            if imported not in below:
                wrong.append(f"{module} imports {imported}")
    assert not wrong, "scanner layering broken:\n" + "\n".join(wrong)


def test_the_layering_check_sees_every_kind_of_import() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "from kavi.policy import scan_scope\n"
        "if TYPE_CHECKING:\n"
        "    from kavi.policy.scan_engine import Analyzer\n"
        "def f():\n"
        "    import kavi.policy.scan_calls\n"
    )
    assert _scanner_imports("scan_writes", source) == {"scan_scope", "scan_engine", "scan_calls"}
