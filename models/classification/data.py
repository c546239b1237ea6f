"""The sample data: scikit-learn's breast cancer set as a CSV (30 features, `target` 1 = benign, 0 = malignant).

    python data.py --out sample.csv [--for-scoring]

Replace this with where your own data comes from; the pipeline runs it only when no MLOPS_DATA_FILE is set.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
from sklearn.datasets import load_breast_cancer

TARGET = "target"


def write_sample_csv(path: Path, *, for_scoring: bool = False) -> Path:
    sample = load_breast_cancer()
    frame = pd.DataFrame(sample.data, columns=[name.replace(" ", "_") for name in sample.feature_names])
    if not for_scoring:
        frame[TARGET] = sample.target
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--for-scoring", action="store_true", help="leave out the target column")
    args = parser.parse_args()
    write_sample_csv(args.out, for_scoring=args.for_scoring)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
