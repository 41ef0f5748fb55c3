"""Mapping between ledger records (pydantic) and SQLite rows.

A field holding a list or dict is stored as JSON in a column named ``<field>_json``;
scalars keep their names. One generic mapping serves every table.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, TypeVar

from kavi.ledger.models import (
    Artifact,
    Build,
    ForgeRun,
    Promotion,
    Proposal,
    Record,
    Research,
    Revocation,
    Run,
    Verification,
)

R = TypeVar("R", bound=Record)

TABLES: dict[type[Record], str] = {
    Proposal: "skill_proposals",
    Artifact: "artifacts",
    Build: "builds",
    Verification: "verifications",
    Promotion: "promotions",
    Revocation: "revocations",
    Run: "runs",
    Research: "researches",
    ForgeRun: "forge_runs",
}

_JSON_FIELDS: dict[type[Record], frozenset[str]] = {
    Proposal: frozenset({"io_schema", "required_secrets"}),
    Build: frozenset({"violations", "usage", "tool_attempts", "options"}),
    Verification: frozenset({"gates"}),
    Run: frozenset({"input", "output", "sealed"}),
    Research: frozenset({"security_reasons", "facts", "advice", "widening"}),
    ForgeRun: frozenset({"attempts", "researches"}),
}


def _column(model: type[Record], field: str) -> str:
    return f"{field}_json" if field in _JSON_FIELDS.get(model, ()) else field


def to_row(record: Record) -> dict[str, Any]:
    model = type(record)
    data = record.model_dump(mode="json")
    row: dict[str, Any] = {}
    for field, value in data.items():
        column = _column(model, field)
        if column != field:
            row[column] = None if value is None else json.dumps(value, sort_keys=True)
        elif isinstance(value, bool):
            row[column] = int(value)
        else:
            row[column] = value
    if isinstance(record, Verification):
        for gate in ("ruff", "mypy", "pytest", "policy", "invariants", "scope"):
            row[f"{gate}_ok"] = int(record.gate_ok(gate))
    return row


def from_row(model: type[R], row: sqlite3.Row) -> R:
    keys = set(row.keys())
    data: dict[str, Any] = {}
    for field in model.model_fields:
        column = _column(model, field)
        if column not in keys:
            continue
        value = row[column]
        if column != field and value is not None:
            value = json.loads(value)
        data[field] = value
    return model.model_validate(data)


def insert(conn: sqlite3.Connection, record: Record) -> None:
    row = to_row(record)
    table = TABLES[type(record)]
    cols = ", ".join(row)
    marks = ", ".join("?" for _ in row)
    conn.execute(f"INSERT INTO {table} ({cols}) VALUES ({marks})", tuple(row.values()))


def update(conn: sqlite3.Connection, record: Record) -> None:
    row = to_row(record)
    table = TABLES[type(record)]
    ident = row.pop("id")
    sets = ", ".join(f"{c} = ?" for c in row)
    cur = conn.execute(f"UPDATE {table} SET {sets} WHERE id = ?", (*row.values(), ident))
    if cur.rowcount != 1:
        from kavi.errors import LedgerError

        raise LedgerError(f"no {table} row {ident} to update")
