"""Batch scoring with Azure ML's batch contract: `init()` loads the model, `run(mini_batch)` scores one mini-batch.

`run` takes a DataFrame (a tabular mini-batch) or a list of CSV paths (a file mini-batch) and
returns its rows with a `score` column appended, as MLOpsPython's `append_row` output did. It
raises on bad input, naming the problem; it never prints an error and returns nothing (the
MLOpsPython script did, and its users lost mini-batches without a word: its issues 328 and 358).

On Azure ML the code folder is the repository root, so `model.*` imports resolve there as here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

from model.errors import DataValidationError
from model.schema import read_csv, validate_frame
from models.diabetes.data import FEATURES
from models.diabetes.score import EnvironmentMismatchError, environment_problems, find_model

SCORE_COLUMN = "score"
FILE_COLUMN = "file"

model: Any = None


def init() -> None:
    """Load the model from `AZUREML_MODEL_DIR` (refusing one trained with other library versions)."""
    global model
    model = load(Path(os.environ.get("AZUREML_MODEL_DIR", ".")))


def run(mini_batch: pd.DataFrame | list[str]) -> pd.DataFrame:
    """Score a mini-batch: its rows with a `score` column appended.

    A file mini-batch's rows also start with a `file` column, the name of the file each came from:
    Azure ML's `append_row` output mixes mini-batches in whatever order they finish, and this is how
    each row is traced back to its input (and a file with no rows to a failed mini-batch).
    """
    if isinstance(mini_batch, list):
        if not mini_batch:
            raise DataValidationError("the mini-batch holds no files")
        frames = []
        for path in mini_batch:
            scored = score_frame(read_csv(Path(path), FEATURES, allow_extra=True), model, source=Path(path).name)
            scored.insert(0, FILE_COLUMN, Path(path).name)
            frames.append(scored)
        return pd.concat(frames, ignore_index=True)
    return score_frame(mini_batch, model, source="mini-batch")


def load(model_dir: Path) -> Any:
    """The model in `model_dir`, after checking its environment lock against this process."""
    path = find_model(model_dir)
    problems = environment_problems(path.parent)
    if problems:
        raise EnvironmentMismatchError(f"refusing model {path}: " + "; ".join(problems))
    return joblib.load(path)


def score_frame(frame: pd.DataFrame, estimator: Any, *, source: str) -> pd.DataFrame:
    """`frame` with the predictions of `estimator` appended as `score`; extra columns pass through.

    Raises:
        DataValidationError: a feature column is missing, a cell is not a finite number, or the
            frame is empty; the message names `source`, the column and the row.
    """
    if estimator is None:
        raise RuntimeError("no model loaded: call init() first")
    if SCORE_COLUMN in frame.columns:
        raise DataValidationError(f"{source}: the input already has a {SCORE_COLUMN!r} column")
    features = validate_frame(frame, FEATURES, source=source, allow_extra=True)
    scored = frame.copy(deep=False)
    # Row-major, as a request's rows are: the same layout gives the same floating-point sums as online scoring.
    scored[SCORE_COLUMN] = estimator.predict(np.ascontiguousarray(features.to_numpy()))
    return scored
