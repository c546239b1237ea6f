"""Train the diabetes Ridge regression exactly as MLOpsPython did, and its command line.

    python -m models.diabetes.train --data diabetes.csv --params parameters.json --out outputs/

writes `model.joblib`, `metrics.json`, `environment.json` (the environment lock) and
`training.json` (parameters, data hash, split sizes) into `--out`. The same command runs locally
and as an Azure ML command job. Where MLflow tracking is configured (`MLFLOW_TRACKING_URI`, which
Azure ML sets in every job), the parameters and metrics are also logged to the run with MLflow, so
they show on the job's page in Azure ML studio. Exit code 2 means bad input (the message says
which); anything else non-zero is a bug or a crash.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
from sklearn.model_selection import train_test_split

from model import environment
from model.errors import ModelError, ParametersError
from model.layout import ENVIRONMENT_FILE, METRICS_FILE, MODEL_FILE, PREDICTION_COLUMN, REFERENCE_FILE, TRAINING_FILE
from model.package import read_parameters
from models.diabetes.data import FEATURES, TARGET, file_sha256, read_csv

Split = tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series]
REFERENCE_ROWS = 10_000  # at most this many training rows are kept as the drift baseline


def load_parameters(path: Path) -> dict[str, Any]:
    """Read the `training` section of a parameters file (MLOpsPython's `parameters.json` layout).

    Raises:
        ParametersError: the file is missing, is not a JSON object, or `training.alpha` is not a
            non-negative number.
    """
    training = read_parameters(path)
    alpha = training.get("alpha", 1.0)
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not math.isfinite(alpha) or alpha < 0:
        raise ParametersError(f"{path}: training.alpha must be a non-negative number, got {alpha!r}")
    return training


def split_data(frame: pd.DataFrame) -> Split:
    """MLOpsPython's split: every column but `Y` is a feature; 80/20 with `random_state=0`."""
    features = frame.drop(TARGET, axis=1)
    target = frame[TARGET]
    x_train, x_test, y_train, y_test = train_test_split(features, target, test_size=0.2, random_state=0)
    return x_train, x_test, y_train, y_test


def train_model(x_train: pd.DataFrame | np.ndarray, y_train: pd.Series | np.ndarray, **train_args: Any) -> Ridge:
    """Fit `Ridge(**train_args)`.

    Raises:
        ParametersError: a training argument is not a Ridge parameter or has a bad value.
    """
    try:
        model = Ridge(**train_args)
        model.fit(x_train, y_train)
    except (TypeError, ValueError) as exc:
        raise ParametersError(f"training parameters {train_args}: {exc}") from None
    return model


def get_model_metrics(
    model: Ridge, x_test: pd.DataFrame | np.ndarray, y_test: pd.Series | np.ndarray
) -> dict[str, float]:
    """Metrics on the test split; `mse` is MLOpsPython's, the others come along for other gates."""
    predictions = model.predict(x_test)
    mse = float(mean_squared_error(y_test, predictions))
    return {
        "mse": mse,
        "rmse": math.sqrt(mse),
        "mae": float(mean_absolute_error(y_test, predictions)),
        "r2": float(r2_score(y_test, predictions)),
    }


def run(data: Path, params: Path, out: Path) -> dict[str, float]:
    """Train on `data` with `params` and write the outputs into `out`; return the metrics."""
    training = load_parameters(params)
    frame = read_csv(data)
    x_train, x_test, y_train, y_test = split_data(frame)
    # Fitted on plain arrays, so scoring plain arrays raises no feature-name warnings.
    model = train_model(x_train.to_numpy(), y_train.to_numpy(), **training)
    metrics = get_model_metrics(model, x_test.to_numpy(), y_test.to_numpy())
    out.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, out / MODEL_FILE)
    _write_json(out / METRICS_FILE, metrics)
    _write_json(out / ENVIRONMENT_FILE, environment.capture())
    _write_json(
        out / TRAINING_FILE,
        {
            "parameters": training,
            "data": {"sha256": file_sha256(data), "rows": len(frame), "features": list(FEATURES)},
            "split": {"train": len(x_train), "test": len(x_test), "test_size": 0.2, "random_state": 0},
        },
    )
    write_reference(model, frame, out / REFERENCE_FILE)
    return metrics


def write_reference(model: Ridge, frame: pd.DataFrame, path: Path) -> None:
    """The drift baseline: the training features (a fixed sample of at most REFERENCE_ROWS rows) and what the
    model predicts for them, so a monitor compares scoring inputs and predictions without the training data."""
    features = frame[list(FEATURES)]
    if len(features) > REFERENCE_ROWS:
        features = features.sample(n=REFERENCE_ROWS, random_state=0).sort_index()
    reference = features.assign(**{PREDICTION_COLUMN: model.predict(features.to_numpy())})
    reference.to_csv(path, index=False, float_format="%.17g")


def log_to_tracking(parameters: dict[str, Any], metrics: dict[str, float]) -> str | None:
    """Log the training parameters and the metrics to the MLflow run, when MLflow tracking is configured.

    In an Azure ML job the service sets `MLFLOW_TRACKING_URI` and `MLFLOW_RUN_ID`, so MLflow logs to the job's
    own run and azureml-mlflow (in the job's environment) authenticates. Elsewhere nothing is logged unless the
    user sets `MLFLOW_TRACKING_URI` (and MLflow is not even imported: it takes about 1.6 s). The model's own
    files are already written when this runs: a tracking server that fails is reported on stderr and the
    training still succeeds (the gate reads `metrics.json`, not the tracking server). Returns the run id, or None.
    """
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        return None
    try:
        import mlflow  # only where tracking is configured

        with mlflow.start_run() as run:
            mlflow.log_params(
                {key: json.dumps(value) if not isinstance(value, str) else value for key, value in parameters.items()}
            )
            mlflow.log_metrics(metrics)
            return str(run.info.run_id)
    except Exception as exc:  # noqa: BLE001 - the model is trained and written; tracking is a report of it
        where = os.environ["MLFLOW_TRACKING_URI"]
        print(f"warning: the metrics were not logged to MLflow ({where}): {exc}", file=sys.stderr)  # noqa: T201
        return None


def _write_json(path: Path, value: object) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.diabetes.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="training CSV (columns age,sex,bmi,bp,s1..s6,Y)")
    parser.add_argument("--params", type=Path, required=True, help="parameters JSON with a training section")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    args = parser.parse_args(argv)
    try:
        metrics = run(args.data, args.params, args.out)
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)  # noqa: T201 - this is the command line
        return 2
    tracked = log_to_tracking(load_parameters(args.params), metrics)
    print(json.dumps({"metrics": metrics, "out": str(args.out), "mlflow_run": tracked}))  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
