"""The numpy side of the data checks (`model.dataschema`): rows already parsed checked against `[data.checks]` in
one vectorized pass (batch inputs), and a starting schema inferred from sample data (`mlops model init`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from model.dataschema import ColumnRule, DataSchema, number_text, replace_checks, schema_toml

_CATEGORIES = 10  # a whole-number column with at most this many values is inferred as `allowed` values


# ---- the cheap check of parsed rows (batch inputs) ----


class RowLimits:
    """The schema's per-column limits as arrays, for a vectorized check of rows already parsed into float64.

    Missing values are left to the scoring script (it names them as it always has); types, ranges and allowed values
    are checked here."""

    def __init__(self, schema: DataSchema, features: tuple[str, ...]) -> None:
        rules = [schema.limits.get(name, ColumnRule(name)) for name in features]
        self.features = features
        self.low = np.array([-np.inf if r.min is None else r.min for r in rules])
        self.high = np.array([np.inf if r.max is None else r.max for r in rules])
        self.whole = np.array([r.type == "int" for r in rules])
        self.allowed = [(j, np.array(r.allowed)) for j, r in enumerate(rules) if r.allowed is not None]
        self.rules = rules
        self.active = schema.declared

    def violations(self, rows: np.ndarray) -> np.ndarray:
        """A boolean array of `rows`' shape: True where a value breaks its column's rule (NaN never does)."""
        bad = (rows < self.low) | (rows > self.high)
        if self.whole.any():
            bad |= self.whole & (rows != np.floor(rows)) & np.isfinite(rows)
        for j, values in self.allowed:
            bad[:, j] |= ~np.isin(rows[:, j], values) & ~np.isnan(rows[:, j])
        return bad

    def explain(self, rows: np.ndarray, bad: np.ndarray, *, most: int = 5) -> str:
        """One clause per failing column: its name, how many rows, the first rows (1-based) and their values."""
        clauses = []
        for j in np.flatnonzero(bad.any(axis=0)):
            where = np.flatnonzero(bad[:, j])
            rule = self.rules[j]
            shown = ", ".join(f"row {i + 1}: {number_text(rows[i, j])}" for i in where[:most])
            more = f", and {len(where) - most} more" if len(where) > most else ""
            expected = rule.describe() + (", whole numbers" if rule.type == "int" else "")
            clauses.append(f"column {rule.name!r}: {len(where)} row(s) outside {expected} ({shown}{more})")
        return "; ".join(clauses)


# ---- a starting schema, inferred from sample data ----


def infer_schema(frame: Any, columns: tuple[str, ...], *, features: int) -> DataSchema:
    """A starting schema for `columns` of a pandas DataFrame of sample data.

    Whole-number columns with at most 10 values get `allowed`; the others a range: the sample's, widened by its span
    on each side (kept at or above 0 when the sample is), wide enough for drift, far too narrow for a change of unit.
    Missing values are allowed up to twice the sample's fraction; `min_rows` is twice (features + 1), at most the
    sample's rows."""
    import pandas as pd  # the scoring path imports this module without pandas

    rules = []
    for name in columns:
        values = pd.to_numeric(frame[name], errors="coerce")
        present = values.dropna().to_numpy(dtype=np.float64)
        missing = float(values.isna().mean())
        limit = 0.0 if missing == 0 else min(1.0, math.ceil(200 * missing) / 100)
        whole = bool(len(present)) and bool(np.all(present == np.floor(present)))
        kind = "int" if whole else "float"
        distinct = np.unique(present)
        if whole and len(distinct) <= _CATEGORIES:
            rules.append(ColumnRule(name, kind, allowed=tuple(float(v) for v in distinct), max_missing=limit))
            continue
        low, high = (float(distinct[0]), float(distinct[-1])) if len(distinct) else (0.0, 0.0)
        span = (high - low) or abs(high) or 1.0
        lower = low - span if low < 0 or low - span >= 0 else 0.0
        rules.append(
            ColumnRule(name, kind, min=_round(lower, down=True), max=_round(high + span, down=False), max_missing=limit)
        )
    return DataSchema(columns=tuple(rules), min_rows=max(1, min(len(frame), 2 * (features + 1))))


def _round(value: float, *, down: bool) -> float:
    """`value` to 4 significant digits, outward (the limit never tightens)."""
    if value == 0:
        return 0.0
    scale = 10 ** (math.floor(math.log10(abs(value))) - 3)
    rounded = (math.floor if down else math.ceil)(value / scale) * scale
    return float(f"{rounded:.4g}") if abs(rounded) >= 1e-4 else float(f"{rounded:.6g}")


def write_checks(
    manifest: Path, sample: Path, features: tuple[str, ...], target: str, *, online: bool = True
) -> DataSchema:
    """Infer a starting schema from the sample CSV and write it into the manifest's `[data.checks]` (replacing it)."""
    import pandas as pd  # the scoring path imports this module without pandas

    schema = infer_schema(pd.read_csv(sample), (*features, target), features=len(features))
    schema = DataSchema(columns=schema.columns, min_rows=schema.min_rows, online=online)
    comment = "Data checks inferred from the sample data by `mlops model init`: edit them (README: Data checks)."
    manifest.write_text(replace_checks(manifest.read_text(), schema_toml(schema, comment=comment)))
    return schema
