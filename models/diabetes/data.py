"""The diabetes data: the sample CSV as MLOpsPython wrote it, and its schema (the checks are `model.schema`'s)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from model import schema
from model.package import file_sha256
from model.schema import validate_frame

__all__ = ["COLUMNS", "FEATURES", "TARGET", "file_sha256", "read_csv", "validate_frame", "write_sample_csv"]

# ---- REPLACE WITH YOUR OWN schema ----
FEATURES: tuple[str, ...] = ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")
TARGET = "Y"
# ---- end ----

COLUMNS: tuple[str, ...] = (*FEATURES, TARGET)


def write_sample_csv(path: Path, *, for_scoring: bool = False) -> Path:
    """Write scikit-learn's bundled diabetes data as a CSV, exactly as MLOpsPython's bootstrap did.

    `for_scoring=True` leaves out the target column `Y` (MLOpsPython's batch-scoring fallback input).
    """
    from sklearn.datasets import load_diabetes  # here, not at the top: reading and checking data needs no scikit-learn

    sample = load_diabetes()
    frame = pd.DataFrame(data=sample.data, columns=sample.feature_names)
    if not for_scoring:
        frame[TARGET] = sample.target
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


def read_csv(path: Path, columns: tuple[str, ...] = COLUMNS, *, allow_extra: bool = False) -> pd.DataFrame:
    """Read a CSV and check it against the diabetes schema (or `columns`); see `model.schema.read_csv`."""
    return schema.read_csv(path, columns, allow_extra=allow_extra)


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
