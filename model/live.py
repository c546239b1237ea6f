"""Live performance: the gate's metric computed on scored rows whose ground truth arrived later, and whether it is
worse than the version's training metric by more than a margin. Pure functions of numbers."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from model.errors import ModelError


def _r2(truth: np.ndarray, score: np.ndarray) -> float:
    # scikit-learn is imported where it is used: importing this module (as `prefect deploy` and every flow run that
    # loads the labels flow do) would otherwise cost ~2.5 s of scikit-learn's import
    from sklearn.metrics import r2_score

    return float(r2_score(truth, score))


def _auc(truth: np.ndarray, score: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(truth, score))


def _accuracy(truth: np.ndarray, score: np.ndarray) -> float:
    return float(np.mean((score >= 0.5).astype(float) == truth))  # a score is the probability of class 1


_METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "mse": lambda t, s: float(np.mean((t - s) ** 2)),
    "rmse": lambda t, s: math.sqrt(float(np.mean((t - s) ** 2))),
    "mae": lambda t, s: float(np.mean(np.abs(t - s))),
    "r2": _r2,
    "auc": _auc,
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
