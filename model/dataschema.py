"""The data checks a model package declares in its manifest (`[data.checks]`): read, described and written as TOML.

    [data.checks]
    min_rows = 22                      # the training data has at least this many rows
    online = true                      # also check online requests (false: training and batch inputs only)

    [data.checks.columns]              # one inline table per feature and the target
    age = { type = "float", min = -0.32, max = 0.33 }
    sex = { type = "int", allowed = [1, 2], max_missing = 0.05 }

Per column: `type` ("float", any finite number, or "int", whole numbers), `min`/`max` (inclusive) or `allowed`
(the values it may take), `max_missing` (the fraction of rows that may be empty, default 0). The training data is
checked with pandera (`model.validation`); batch inputs with `model.datarows.RowLimits`, plain numpy on rows already
parsed (no validation library on the hot path); `model.datarows` also infers a starting schema from sample data.

This module imports the standard library only: `model.package` reads it, and the Azure ML batch entry script imports
that with no numpy installed.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model.errors import ModelError

TYPES = ("float", "int")
_COLUMN_KEYS = {"type", "min", "max", "allowed", "max_missing"}


class SchemaError(ModelError):
    """`[data.checks]` is malformed; the message names the manifest and the key."""


@dataclass(frozen=True)
class ColumnRule:
    """What one column of the data must hold."""

    name: str
    type: str = "float"
    min: float | None = None
    max: float | None = None
    allowed: tuple[float, ...] | None = None
    max_missing: float = 0.0

    def describe(self) -> str:
        """`[-0.3, 0.3]`, `one of 0, 1`: the values this column may take."""
        if self.allowed is not None:
            return "one of " + ", ".join(number_text(v) for v in self.allowed)
        low = "-inf" if self.min is None else number_text(self.min)
        high = "inf" if self.max is None else number_text(self.max)
        return f"[{low}, {high}]"

    def describe_missing(self) -> str:
        return f"empty (at most {self.max_missing:.0%} of rows may be)"


@dataclass(frozen=True)
class DataSchema:
    """The manifest's `[data.checks]`: a rule per column, the fewest training rows, and whether requests are checked."""

    columns: tuple[ColumnRule, ...] = ()
    min_rows: int = 1
    online: bool = True
    limits: dict[str, ColumnRule] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self.limits.update({rule.name: rule for rule in self.columns})

    @property
    def declared(self) -> bool:
        return bool(self.columns)


def read_schema(checks: Any, manifest: Path, declared_columns: tuple[str, ...]) -> DataSchema:
    """`[data.checks]` of a manifest (absent: no checks).

    Raises:
        SchemaError: a key of the wrong type, an unknown type, `min` above `max`, both a range and `allowed`, or a
            column that is neither a feature nor the target.
    """
    if checks is None:
        return DataSchema()
    if not isinstance(checks, dict):
        raise SchemaError(f"{manifest}: [data.checks] must be a table")
    min_rows, online = checks.get("min_rows", 1), checks.get("online", True)
    if not isinstance(min_rows, int) or isinstance(min_rows, bool) or min_rows < 1:
        raise SchemaError(f"{manifest}: [data.checks] min_rows must be a whole number of at least 1, got {min_rows!r}")
    if not isinstance(online, bool):
        raise SchemaError(f"{manifest}: [data.checks] online must be true or false, got {online!r}")
    columns = checks.get("columns", {})
    if not isinstance(columns, dict):
        raise SchemaError(f"{manifest}: [data.checks.columns] must be a table of one inline table per column")
    rules = []
    for name, spec in columns.items():
        if name not in declared_columns:
            known = ", ".join(declared_columns)
            raise SchemaError(f"{manifest}: [data.checks.columns] {name}: not a feature or the target ({known})")
        rules.append(_rule(manifest, name, spec))
    return DataSchema(columns=tuple(rules), min_rows=min_rows, online=online)


def _rule(manifest: Path, name: str, spec: Any) -> ColumnRule:
    where = f"{manifest}: [data.checks.columns] {name}"
    if not isinstance(spec, dict):
        raise SchemaError(f'{where}: expected an inline table like {{ type = "float", min = 0, max = 1 }}')
    unknown = sorted(set(spec) - _COLUMN_KEYS)
    if unknown:
        raise SchemaError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(_COLUMN_KEYS))}")
    kind = spec.get("type", "float")
    if kind not in TYPES:
        raise SchemaError(f'{where}: type must be "float" or "int", got {kind!r}')
    low, high = (_optional_number(where, spec, key) for key in ("min", "max"))
    if low is not None and high is not None and low > high:
        raise SchemaError(f"{where}: min {low} is above max {high}")
    allowed = spec.get("allowed")
    if allowed is not None:
        if low is not None or high is not None:
            raise SchemaError(f"{where}: give either min/max or allowed, not both")
        if not isinstance(allowed, list) or not allowed or not all(_finite(v) for v in allowed):
            raise SchemaError(f"{where}: allowed must be a non-empty list of numbers")
    missing = spec.get("max_missing", 0.0)
    if not _finite(missing) or not 0 <= missing <= 1:
        raise SchemaError(f"{where}: max_missing must be a fraction from 0 to 1, got {missing!r}")
    return ColumnRule(
        name=name,
        type=kind,
        min=low,
        max=high,
        allowed=tuple(float(v) for v in allowed) if allowed is not None else None,
        max_missing=float(missing),
    )


def _optional_number(where: str, spec: dict[str, Any], key: str) -> float | None:
    value = spec.get(key)
    if value is None:
        return None
    if not _finite(value):
        raise SchemaError(f"{where}: {key} must be a finite number, got {value!r}")
    return float(value)


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(float(value))


def schema_toml(schema: DataSchema, *, comment: str) -> str:
    """The `[data.checks]` tables of a manifest, one inline table per column."""
    lines = [f"# {comment}", "[data.checks]", f"min_rows = {schema.min_rows}"]
    if not schema.online:
        lines.append("online = false  # online requests are not checked")
    lines += ["", "[data.checks.columns]"]
    for rule in schema.columns:
        parts = [f'type = "{rule.type}"']
        if rule.allowed is not None:
            parts.append("allowed = [" + ", ".join(number_text(v) for v in rule.allowed) + "]")
        if rule.min is not None:
            parts.append(f"min = {number_text(rule.min)}")
        if rule.max is not None:
            parts.append(f"max = {number_text(rule.max)}")
        if rule.max_missing:
            parts.append(f"max_missing = {number_text(rule.max_missing)}")
        key = rule.name if re.fullmatch(r"[A-Za-z0-9_-]+", rule.name) else f'"{rule.name}"'
        lines.append(f"{key} = {{ {', '.join(parts)} }}")
    return "\n".join(lines) + "\n"


def replace_checks(text: str, tables: str) -> str:
    """A manifest's text with its `[data.checks...]` tables (and the comment lines just above them) replaced by
    `tables`, appended at the end when it had none."""
    lines = text.splitlines()
    kept: list[str] = []
    inside = False
    for line in lines:
        header = line.strip()
        if header.startswith("["):
            inside = header.startswith("[data.checks")
            while inside and kept and kept[-1].lstrip().startswith("#"):
                kept.pop()
        if not inside:
            kept.append(line)
    while kept and not kept[-1].strip():
        kept.pop()
    return "\n".join(kept) + "\n\n" + tables
