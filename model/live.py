"""Live performance: the gate's metric computed on scored rows whose ground truth arrived later, and whether it is
worse than the version's training metric by more than a margin. Pure functions of numbers."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from sklearn import metrics as sk

from model.errors import ModelError


def _accuracy(truth: np.ndarray, score: np.ndarray) -> float:
    return float(np.mean((score >= 0.5).astype(float) == truth))  # a score is the probability of class 1


_METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "mse": lambda t, s: float(np.mean((t - s) ** 2)),
    "rmse": lambda t, s: math.sqrt(float(np.mean((t - s) ** 2))),
    "mae": lambda t, s: float(np.mean(np.abs(t - s))),
    "r2": lambda t, s: float(sk.r2_score(t, s)),
    "auc": lambda t, s: float(sk.roc_auc_score(t, s)),
    "accuracy": _accuracy,
}
LIVE_METRICS = tuple(_METRICS)


def live_metric(name: str, truth: Sequence[float] | np.ndarray, score: Sequence[float] | np.ndarray) -> float:
    """`name` (the gate's metric: mse, rmse, mae, r2, auc or accuracy) of the predictions `score` against `truth`.

    Raises:
        ModelError: an unknown metric, no rows, or (auc) labels of one class only.
    """
    if name not in _METRICS:
        raise ModelError(f"no live metric {name!r}: the labels flow computes {', '.join(LIVE_METRICS)}")
    t, s = np.asarray(truth, dtype=float), np.asarray(score, dtype=float)
    if len(t) == 0:
        raise ModelError("no labelled rows to compute a live metric on")
    if name == "auc" and len(np.unique(t)) < 2:
        raise ModelError("auc needs labels of both classes; these labels have one only")
    return _METRICS[name](t, s)


def degraded(live: float, training: float, direction: str, margin: float) -> bool:
    """Worse than `training` by more than `margin` times its size, in the gate's `direction`."""
    allowance = margin * abs(training)
    return live > training + allowance if direction == "minimize" else live < training - allowance
