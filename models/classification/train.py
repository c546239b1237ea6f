"""Train the LightGBM classifier: the model contract's training command.

    python train.py --data train.csv --params parameters.json --out outputs/

writes `model.joblib` (the fitted `LGBMClassifier`), `metrics.json` (`auc`, the gate's metric, and
`accuracy`, `log_loss`, `f1` on a stratified 20 % test split) and `reference.csv` (the training
features and predicted probabilities: the drift monitor's baseline) into `--out`. Exit code 2
means bad input, with one `error: ...` line saying what is wrong.
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from lightgbm import LGBMClassifier
from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score
from sklearn.model_selection import train_test_split

MANIFEST = Path(__file__).resolve().parent / "mlops-model.toml"
REFERENCE_ROWS = 10_000


class InputError(Exception):
    """The data or the parameters are not usable; the message says which and why."""


def schema() -> tuple[list[str], str]:
    """The feature columns and the target, from the package's manifest (one place for both)."""
    data = tomllib.loads(MANIFEST.read_text())["data"]
    return list(data["features"]), str(data["target"])


def read_data(path: Path, features: list[str], target: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        frame = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a readable CSV ({exc})") from None
    missing = [name for name in [*features, target] if name not in frame.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}")
    x = frame[features].apply(pd.to_numeric, errors="coerce")
    if x.isna().any().any():
        column = x.columns[x.isna().any()][0]
        row = int(np.argmax(x[column].isna().to_numpy())) + 1
        raise InputError(f"{path}: column {column!r}, row {row}: not a number")
    y = frame[target]
    if not y.isin([0, 1]).all():
        raise InputError(f"{path}: the target {target!r} must be 0 or 1 in every row")
    if y.nunique() < 2:
        raise InputError(f"{path}: the target {target!r} has one class only; a classifier needs both")
    return x.to_numpy(dtype=np.float64), y.to_numpy(dtype=np.int64)


def read_parameters(path: Path) -> dict[str, Any]:
    try:
        training = json.loads(path.read_text()).get("training", {})
    except (OSError, json.JSONDecodeError, AttributeError) as exc:
        raise InputError(f"{path}: not a parameters file with a training object ({exc})") from None
    if not isinstance(training, dict):
        raise InputError(f"{path}: training must be an object of LGBMClassifier parameters")
    return training


def run(data: Path, params: Path, out: Path) -> dict[str, float]:
    features, target = schema()
    x, y = read_data(data, features, target)
    parameters = read_parameters(params)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    try:
        model = LGBMClassifier(**parameters)
        model.fit(x_train, y_train)
    except (TypeError, ValueError) as exc:
        raise InputError(f"training parameters {parameters}: {exc}") from None
    probabilities = model.predict_proba(x_test)[:, 1]
    metrics = {
        "auc": float(roc_auc_score(y_test, probabilities)),
        "accuracy": float(accuracy_score(y_test, probabilities >= 0.5)),
        "log_loss": float(log_loss(y_test, probabilities, labels=[0, 1])),
        "f1": float(f1_score(y_test, probabilities >= 0.5)),
    }
    out.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, out / "model.joblib")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    sample = (
        x if len(x) <= REFERENCE_ROWS else x[np.random.default_rng(0).choice(len(x), REFERENCE_ROWS, replace=False)]
    )
    reference = pd.DataFrame(sample, columns=features)
    reference["prediction"] = model.predict_proba(sample)[:, 1]
    reference.to_csv(out / "reference.csv", index=False, float_format="%.17g")
    return metrics


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="training CSV: the features and the 0/1 target")
    parser.add_argument("--params", type=Path, required=True, help="parameters JSON with a training section")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    args = parser.parse_args(argv)
    try:
        metrics = run(args.data, args.params, args.out)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)  # noqa: T201 - this is the command line
        return 2
    print(json.dumps({"metrics": metrics, "out": str(args.out)}))  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
