"""The training data's check against the package's `[data.checks]`, with pandera: before any training job starts.

pandera (pandas-native schemas, lazy validation that collects every failing column and row at once, maintained,
MIT) is imported here only, when a check runs: nothing on the endpoint's or a flow's import path loads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from model.dataschema import ColumnRule, DataSchema
from model.errors import DataValidationError

_SHOWN = 5  # rows named per failing check


@dataclass(frozen=True)
class Failure:
    """One failing check: its column (empty for the whole table), what was expected, and the rows that break it."""

    column: str
    check: str
    rows: tuple[int, ...]  # 1-based data rows (the header is line 1), empty for a table-level check
    values: tuple[str, ...]
    count: int

    def sentence(self) -> str:
        where = f"column {self.column!r}" if self.column else "the table"
        if not self.rows:
            return f"{where}: {self.check}"
        shown = ", ".join(f"row {r}: {v}" for r, v in zip(self.rows, self.values, strict=True))
        more = f", and {self.count - len(self.rows)} more" if self.count > len(self.rows) else ""
        return f"{where}: {self.count} row(s) {self.check} ({shown}{more})"


@dataclass(frozen=True)
class DataReport:
    """What the check found in one data file."""

    source: str
    rows: int
    failures: tuple[Failure, ...]

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def columns(self) -> list[str]:
        return sorted({f.column for f in self.failures if f.column})

    def message(self) -> str:
        if self.passed:
            return f"{self.source}: {self.rows} rows pass the data checks"
        names = ", ".join(map(repr, self.columns)) or "the table"
        return f"{self.source} fails the data checks ({names}): " + "; ".join(f.sentence() for f in self.failures)

    def markdown(self) -> str:
        lines = [
            f"# Data checks: {'passed' if self.passed else 'FAILED'}",
            "",
            f"`{self.source}`, {self.rows} rows",
            "",
        ]
        if self.failures:
            lines += ["| column | check | rows failing | first rows (value) |", "|---|---|---|---|"]
            for f in self.failures:
                shown = ", ".join(f"{r} ({v})" for r, v in zip(f.rows, f.values, strict=True)) or "-"
                lines.append(f"| {f.column or '(table)'} | {f.check} | {f.count or '-'} | {shown} |")
        return "\n".join(lines) + "\n"


def check_file(path: Path, schema: DataSchema, columns: tuple[str, ...]) -> DataReport:
    """Check a training CSV against `schema` (its declared columns; `columns`, the features and the target, must be
    present). An unreadable file raises DataValidationError, as reading it for training would."""
    try:
        frame = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataValidationError(f"{path}: not a readable CSV file: {exc}") from None
    return check_frame(frame, schema, columns, source=path.name)


def check_frame(frame: pd.DataFrame, schema: DataSchema, columns: tuple[str, ...], *, source: str) -> DataReport:
    """Every failure of `frame` against `schema`, at once (pandera's lazy validation)."""
    import pandera.errors  # slow to import (about 1 s): only where a check runs
    import pandera.pandas as pa

    failures: list[Failure] = []
    numeric = frame.copy()
    for name in columns:
        if name in frame.columns:
            numeric[name], bad = _as_numbers(frame[name])
            if bad.any():
                failures.append(_rows(name, "not a number", frame[name], bad))
    declared = {name: schema.limits.get(name, ColumnRule(name)) for name in columns}
    table = pa.DataFrameSchema(
        {name: pa.Column(float, nullable=True, checks=_checks(pa, rule)) for name, rule in declared.items()},
        checks=[pa.Check(lambda df: len(df) >= schema.min_rows, name=f"at least {schema.min_rows} rows")],
    )
    try:
        table.validate(numeric, lazy=True)
    except pandera.errors.SchemaErrors as exc:
        failures += _failures(exc.failure_cases, frame, declared)
    return DataReport(source=source, rows=len(frame), failures=tuple(failures))


def _as_numbers(column: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """The column as float64 (non-numbers as NaN) and where a cell held something that is not a number."""
    if pd.api.types.is_bool_dtype(column):
        return column.astype(np.float64), np.ones(len(column), dtype=bool)
    if pd.api.types.is_numeric_dtype(column):
        return column.astype(np.float64), np.zeros(len(column), dtype=bool)
    converted = pd.to_numeric(column, errors="coerce").astype(np.float64)
    return converted, (converted.isna() & column.notna()).to_numpy()


def _checks(pa: Any, rule: ColumnRule) -> list[Any]:
    checks = []
    if rule.allowed is not None:
        checks.append(pa.Check.isin(list(rule.allowed)))
    elif rule.min is not None or rule.max is not None:
        low = -np.inf if rule.min is None else rule.min
        high = np.inf if rule.max is None else rule.max
        checks.append(pa.Check.in_range(low, high))
    if rule.type == "int":
        checks.append(pa.Check(lambda s: s == np.floor(s), name="int"))
    checks.append(pa.Check(lambda s: bool(s.isna().mean() <= rule.max_missing), name="max_missing", ignore_na=False))
    return checks


def _failures(cases: pd.DataFrame, frame: pd.DataFrame, declared: dict[str, ColumnRule]) -> list[Failure]:
    found: list[Failure] = []
    for (column, check), group in cases.groupby(["column", "check"], dropna=False, sort=False):
        name = "" if pd.isna(column) else str(column)
        text = str(check)
        if text == "column_in_dataframe":
            for missing in group["failure_case"]:
                found.append(Failure(str(missing), "is missing from the file", (), (), 0))
        elif not name:
            found.append(
                Failure("", f"has {len(frame)} rows; the checks ask for {text.removeprefix('at least ')}", (), (), 0)
            )
        elif text == "max_missing":  # counted on the file's own empty cells (a non-number is reported above)
            empty = frame[name].isna().to_numpy()
            if empty.mean() > declared[name].max_missing:
                found.append(_rows(name, declared[name].describe_missing(), frame[name], empty))
        elif not text.startswith("dtype("):
            index = group["index"].dropna().astype(int).to_numpy()
            mask = np.zeros(len(frame), dtype=bool)
            mask[index] = True
            found.append(_rows(name, _explain(declared[name], text), frame[name], mask))
    return found


def _explain(rule: ColumnRule, check: str) -> str:
    if check == "int":
        return "not whole numbers"
    return f"outside {rule.describe()}" if rule.allowed is None else f"not {rule.describe()}"


def _rows(name: str, check: str, column: pd.Series, bad: np.ndarray) -> Failure:
    where = np.flatnonzero(bad)
    shown = where[:_SHOWN]
    return Failure(
        column=name,
        check=check,
        rows=tuple(int(i) + 1 for i in shown),
        values=tuple(_text(column.iloc[i]) for i in shown),
        count=len(where),
    )


def _text(value: Any) -> str:
    if isinstance(value, float) and np.isnan(value):
        return "empty"
    return repr(value) if isinstance(value, str) else f"{value:g}" if isinstance(value, float) else str(value)
