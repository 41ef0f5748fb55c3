"""Pydantic models built from a proposal's declared I/O schema, in Kavi's own process.

``run-skill`` validates a skill's input before it is handed to the confined child, and
the child's output after, against these models — never against classes from the skill's
code, which Kavi's process does not load. The schema vocabulary is the proposal's
(:mod:`kavi.forge.spec`): ``str``, ``int``, ``float``, ``bool``, ``list[T]``,
``dict[str, T]`` and ``X | None`` (optional fields default to ``None``). Unknown fields
are rejected, as the skill's own models do.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, create_model

from kavi.errors import TrustError

_SCALARS: dict[str, type] = {"str": str, "int": int, "float": float, "bool": bool}


class _Declared(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _type_of(text: str) -> tuple[Any, bool]:
    """(annotation, optional) for one normalised type of the vocabulary."""
    optional = text.endswith("| None")
    core = text.rsplit("|", 1)[0].strip() if optional else text.strip()
    if core in _SCALARS:
        found: Any = _SCALARS[core]
    elif core.startswith("list[") and core[5:-1] in _SCALARS:
        found = list[_SCALARS[core[5:-1]]]  # type: ignore[misc]
    elif core.startswith("dict[str, ") and core[10:-1] in _SCALARS:
        found = dict[str, _SCALARS[core[10:-1]]]  # type: ignore[misc]
    else:
        raise TrustError(f"the recorded I/O schema has an unknown type {text!r}")
    return (Optional[found] if optional else found), optional  # noqa: UP045


def model_for(name: str, fields: tuple[tuple[str, str], ...]) -> type[BaseModel]:
    return _model_for(name, fields)


@lru_cache(maxsize=64)
def _model_for(name: str, fields: tuple[tuple[str, str], ...]) -> type[BaseModel]:
    spec: dict[str, Any] = {}
    for field_name, type_text in fields:
        annotation, optional = _type_of(type_text)
        spec[field_name] = (annotation, None) if optional else (annotation, ...)
    model: type[BaseModel] = create_model(name, __base__=_Declared, **spec)
    return model


def io_models(io_schema: dict[str, dict[str, str]]) -> tuple[type[BaseModel], type[BaseModel]]:
    """(input model, output model) of a proposal's I/O schema."""
    return (
        model_for("DeclaredInput", tuple(io_schema.get("input", {}).items())),
        model_for("DeclaredOutput", tuple(io_schema.get("output", {}).items())),
    )
