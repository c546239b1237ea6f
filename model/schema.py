"""The schema checks every reader of a model package's data applies: named columns, finite numbers, rows.

A package names its columns (its manifest's `[data] features` and `target`); these functions check a CSV
or a DataFrame against them and say which file, column and row is wrong.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from model.errors import DataValidationError

__all__ = ["read_csv", "validate_frame"]


def read_csv(path: Path, columns: tuple[str, ...], *, allow_extra: bool = False) -> pd.DataFrame:
    """Read a CSV and check it against the schema `columns`; return the columns in schema order.

    Raises:
        DataValidationError: the file is missing or empty, a column is missing (or extra, unless
            `allow_extra`), there are no rows, or a cell is not a finite number. The message names
            the file, the column and the row (1-based data row; the header is line 1).
    """
    if not path.is_file():
        raise DataValidationError(f"{path}: no such file")
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise DataValidationError(f"{path}: the file is empty (expected a header line: {','.join(columns)})") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataValidationError(f"{path}: not a readable CSV file: {exc}") from None
    return validate_frame(frame, columns, source=str(path), allow_extra=allow_extra)


def validate_frame(
    frame: pd.DataFrame, columns: tuple[str, ...], *, source: str, allow_extra: bool = False
) -> pd.DataFrame:
    """Check a frame against the schema (see `read_csv`) and return it as float64 in schema order."""
    present = [str(name) for name in frame.columns]
    missing = [name for name in columns if name not in present]
    if missing:
        raise DataValidationError(
            f"{source}: missing column(s) {', '.join(map(repr, missing))}; expected {','.join(columns)}"
        )
    extra = [name for name in present if name not in columns]
    if extra and not allow_extra:
        raise DataValidationError(
            f"{source}: unexpected column(s) {', '.join(map(repr, extra))}; expected exactly {','.join(columns)}"
        )
    if len(frame) == 0:
        raise DataValidationError(f"{source}: no data rows (only a header)")
    ordered = frame[list(columns)]
    for name in columns:
        _check_numeric(ordered[name], name, source)
    values = ordered.to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        what = "is missing (empty or NaN)" if np.isnan(values[row, col]) else f"is not finite ({values[row, col]})"
        raise DataValidationError(f"{source}: column {columns[col]!r}, row {row + 1}: the value {what}")
    return pd.DataFrame(values, columns=list(columns), index=frame.index)


def _check_numeric(column: pd.Series, name: str, source: str) -> None:
    if pd.api.types.is_bool_dtype(column):
        raise DataValidationError(f"{source}: column {name!r}, row 1: {column.iloc[0]!r} is not a number")
    if pd.api.types.is_numeric_dtype(column):
        return
    converted = pd.to_numeric(column, errors="coerce")
    # A cell is bad when it held something that did not convert (empty cells are reported as missing later).
    bad = converted.isna() & column.notna()
    if bad.any():
        position = int(np.argmax(bad.to_numpy()))
        raise DataValidationError(
            f"{source}: column {name!r}, row {position + 1}: {column.iloc[position]!r} is not a number"
        )
