"""Next-step hints: ``Label: command`` lines, each a command that works exactly as printed.

A hint is built from its argv and quoted for a POSIX shell, so copying it is running it;
the tests parse every hint a command prints and run it literally.
"""

from __future__ import annotations

import shlex
from typing import Any

#: The labels a hint line may start with (``Label: git …``).
LABELS = (
    "Next",
    "Retry",
    "Research",
    "Inspect",
    "Review",
    "Then",
    "Or",
    "Audit",
    "Run",
    "Full diff",
    "Continue",
    "Verify",
)


def hint(label: str, *argv: str) -> str:
    return f"{label}: {shlex.join(argv)}"


def kavi(label: str, *args: str) -> str:
    return hint(label, "git", "kavi", *args)


def example_input(io_schema: dict[str, dict[str, str]]) -> dict[str, Any]:
    """An input that matches the schema's types, for a ``run-skill`` example."""
    samples: dict[str, Any] = {"str": "example", "int": 0, "float": 0.0, "bool": False}
    out: dict[str, Any] = {}
    for name, type_text in io_schema.get("input", {}).items():
        if type_text.endswith("| None"):
            out[name] = None
        elif type_text.startswith("list["):
            out[name] = []
        elif type_text.startswith("dict["):
            out[name] = {}
        else:
            out[name] = samples.get(type_text, "example")
    return out
