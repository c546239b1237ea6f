"""Batch scoring of the R model, with Azure ML's batch contract: `init()`, then `run(mini_batch)`.

`run` takes a DataFrame or a list of CSV paths and returns the rows with a `score` column appended
(file mini-batches also get a leading `file` column). Bad input raises `ValueError` naming the
file, column and row.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
SCORE_COLUMN, FILE_COLUMN = "score", "file"
online: ModuleType | None = None


def init() -> None:
    global online
    spec = importlib.util.spec_from_file_location(f"{__name__}_online", HERE / "score.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {HERE / 'score.py'}")
    online = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(online)
    online.init()


def run(mini_batch: pd.DataFrame | list[str]) -> pd.DataFrame:
    if isinstance(mini_batch, list):
        if not mini_batch:
            raise ValueError("the mini-batch holds no files")
        frames = []
        for path in mini_batch:
            scored = score_frame(pd.read_csv(path), source=Path(path).name)
            scored.insert(0, FILE_COLUMN, Path(path).name)
            frames.append(scored)
        return pd.concat(frames, ignore_index=True)
    return score_frame(mini_batch, source="mini-batch")


def score_frame(frame: pd.DataFrame, *, source: str) -> pd.DataFrame:
    if online is None:
        raise RuntimeError("no model loaded: call init() first")
    features = list(online.model["features"])
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
    scored[SCORE_COLUMN] = online.predict(values)
    return scored
