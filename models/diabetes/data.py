"""The diabetes data: the sample CSV as MLOpsPython wrote it, and its schema (the checks are `model.schema`'s)."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import TYPE_CHECKING

from model.package import file_sha256

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["COLUMNS", "FEATURES", "TARGET", "file_sha256", "read_csv", "validate_frame", "write_sample_csv"]

# ---- REPLACE WITH YOUR OWN schema ----
FEATURES: tuple[str, ...] = ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")
TARGET = "Y"
# ---- end ----

COLUMNS: tuple[str, ...] = (*FEATURES, TARGET)
SAMPLE_FILE = Path(__file__).with_name("diabetes.csv.gz")


def write_sample_csv(path: Path, *, for_scoring: bool = False) -> Path:
    """Write scikit-learn's bundled diabetes data as a CSV, exactly as MLOpsPython's bootstrap did.

    `for_scoring=True` leaves out the target column `Y` (MLOpsPython's batch-scoring fallback input).
    The rows are `load_diabetes()`'s as pandas writes them, kept in `diabetes.csv.gz` beside this file
    (tests/model/test_data.py checks they still equal scikit-learn's): the sample-data command imports
    no scikit-learn, which was 0.6 s of a new workspace's `mlops run`.
    """
    text = gzip.decompress(SAMPLE_FILE.read_bytes())
    if for_scoring:  # the target is the last column, and no field holds a comma
        text = b"".join(line.rpartition(b",")[0] + b"\n" for line in text.splitlines())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text)
    return path


def read_csv(path: Path, columns: tuple[str, ...] = COLUMNS, *, allow_extra: bool = False) -> pd.DataFrame:
    """Read a CSV and check it against the diabetes schema (or `columns`); see `model.schema.read_csv`."""
    from model import schema  # here: the sample-data command (this module's `main`) needs no pandas

    return schema.read_csv(path, columns, allow_extra=allow_extra)


def validate_frame(
    frame: pd.DataFrame, columns: tuple[str, ...] = COLUMNS, *, source: str, allow_extra: bool = False
) -> pd.DataFrame:
    """Check a frame against the diabetes schema (or `columns`); see `model.schema.validate_frame`."""
    from model import schema

    return schema.validate_frame(frame, columns, source=source, allow_extra=allow_extra)


def main(argv: list[str] | None = None) -> int:
    """`python -m models.diabetes.data --out PATH [--for-scoring]`: the package's sample-data command."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m models.diabetes.data", description="Write the diabetes sample CSV."
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--for-scoring", action="store_true", help="leave out the target column")
    args = parser.parse_args(argv)
    write_sample_csv(args.out, for_scoring=args.for_scoring)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
