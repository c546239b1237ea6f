"""Batch scoring of the LightGBM classifier, with Azure ML's batch contract: `init()`, then `run(mini_batch)`.

`run` takes a DataFrame (a tabular mini-batch) or a list of CSV paths (a file mini-batch) and returns
its rows with a `score` column appended: P(target = 1). File mini-batches also get a leading `file`
column naming each row's file. Bad input raises `ValueError` naming the file, column and row; a
mini-batch is never dropped silently.
"""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
SCORE_COLUMN, FILE_COLUMN = "score", "file"
model: Any = None
features: list[str] = []


def init() -> None:
    """Load the model as `score.py` does (same environment check); the feature columns from the manifest."""
    global model, features
    spec = importlib.util.spec_from_file_location(f"{__name__}_online", HERE / "score.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {HERE / 'score.py'}")
    online = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(online)
    online.init()
    model = online.model
    features = list(tomllib.loads((HERE / "mlops-model.toml").read_text())["data"]["features"])


def run(mini_batch: pd.DataFrame | list[str]) -> pd.DataFrame:
    if isinstance(mini_batch, list):
        frames = []
        for path in mini_batch:
            scored = score_frame(pd.read_csv(path), source=Path(path).name)
            scored.insert(0, FILE_COLUMN, Path(path).name)
            frames.append(scored)
        if not frames:
            raise ValueError("the mini-batch holds no files")
        return pd.concat(frames, ignore_index=True)
    return score_frame(mini_batch, source="mini-batch")


def score_frame(frame: pd.DataFrame, *, source: str) -> pd.DataFrame:
    if model is None:
        raise RuntimeError("no model loaded: call init() first")
    missing = [name for name in features if name not in frame.columns]
    if missing:
        raise ValueError(f"{source}: missing column(s) {', '.join(missing)}")
    if SCORE_COLUMN in frame.columns:
        raise ValueError(f"{source}: the input already has a {SCORE_COLUMN!r} column")
    values = frame[features].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        row, column = (int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{source}: column {features[column]!r}, row {row + 1}: not a finite number")
    scored = frame.copy(deep=False)
    scored[SCORE_COLUMN] = model.predict_proba(values)[:, 1]
    return scored
