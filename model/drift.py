"""Data drift: recent scoring inputs against the training data a model version was fitted on, per feature.

Two statistics for each feature, and for the predictions:

- **PSI** (population stability index) over ten bins cut at the training data's deciles (a feature
  with ten values or fewer, like `sex`, gets one bin per value). 0 means the same shares; 0.1 is a
  small shift; 0.2 and above the usual "act on it".
- **KS**: the two-sample Kolmogorov-Smirnov test (scipy): the largest gap between the two empirical
  distributions, and how likely a gap that large is if both samples came from one distribution.

A feature has drifted when both agree: PSI at or over its threshold *and* the KS p-value under its
own. PSI alone flags small samples (its noise grows as 1/rows); the p-value alone flags tiny shifts
in large ones. Fewer rows than `min_rows` decide nothing.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

BINS = 10
_FLOOR = 1e-4  # an empty bin's share, so its log stays finite


@dataclass(frozen=True)
class DriftThresholds:
    psi: float = 0.2
    ks_p_value: float = 0.01
    min_rows: int = 50


@dataclass(frozen=True)
class ColumnDrift:
    name: str
    psi: float
    ks_statistic: float
    ks_p_value: float
    reference_mean: float
    current_mean: float
    reference_std: float
    current_std: float
    drifted: bool

    @property
    def shift_in_std(self) -> float:
        """How far the mean moved, in the training data's standard deviations."""
        if self.reference_std == 0:
            return 0.0 if self.current_mean == self.reference_mean else math.inf
        return (self.current_mean - self.reference_mean) / self.reference_std


@dataclass(frozen=True)
class DriftReport:
    reference_rows: int
    current_rows: int
    thresholds: DriftThresholds
    features: list[ColumnDrift]
    prediction: ColumnDrift | None = None
    enough_rows: bool = True
    drifted: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        document = asdict(self)
        for entry, column in zip(document["features"], self.features, strict=True):
            entry["shift_in_std"] = _finite(column.shift_in_std)
        return document


def psi(reference: np.ndarray, current: np.ndarray, bins: int = BINS) -> float:
    """The population stability index of `current` against `reference`."""
    edges = _inner_edges(reference, bins)
    expected = _shares(reference, edges)
    actual = _shares(current, edges)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def _inner_edges(reference: np.ndarray, bins: int) -> np.ndarray:
    values = np.unique(reference)
    if len(values) <= bins:  # a categorical-like feature: one bin per value
        edges: np.ndarray = (values[:-1] + values[1:]) / 2
        return edges
    quantiles: np.ndarray = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1))[1:-1])
    return quantiles


def _shares(sample: np.ndarray, edges: np.ndarray) -> np.ndarray:
    counts = np.bincount(np.searchsorted(edges, sample, side="right"), minlength=len(edges) + 1)
    return np.maximum(counts / max(len(sample), 1), _FLOOR)


def compare_column(name: str, reference: np.ndarray, current: np.ndarray, thresholds: DriftThresholds) -> ColumnDrift:
    # scipy.stats costs ~0.9 s of CPU to import: paid by the monitor, not by every process that imports the flows
    from scipy import stats

    with warnings.catch_warnings():  # scipy falls back from the exact p-value on large samples, and says so
        warnings.simplefilter("ignore", RuntimeWarning)
        test = stats.ks_2samp(reference, current)
    index = psi(reference, current)
    enough = len(current) >= thresholds.min_rows
    return ColumnDrift(
        name=name,
        psi=index,
        ks_statistic=float(test.statistic),
        ks_p_value=float(test.pvalue),
        reference_mean=float(np.mean(reference)),
        current_mean=float(np.mean(current)),
        reference_std=float(np.std(reference)),
        current_std=float(np.std(current)),
        drifted=enough and index >= thresholds.psi and float(test.pvalue) < thresholds.ks_p_value,
    )


def compare(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: list[str],
    thresholds: DriftThresholds,
    prediction: tuple[str, str] | None = None,
) -> DriftReport:
    """Drift of each feature of `current` against `reference`; `prediction` = (reference column, current
    column) also compares the predictions (reported, never a drifted *feature*)."""
    missing = [f for f in features if f not in reference.columns or f not in current.columns]
    if missing:
        raise ValueError(f"feature(s) {', '.join(missing)} missing from the reference or the current data")
    if current.empty:
        raise ValueError("there are no current rows to compare")
    columns = [compare_column(f, _values(reference[f]), _values(current[f]), thresholds) for f in features]
    predicted = None
    if prediction and prediction[0] in reference.columns and prediction[1] in current.columns:
        predicted = compare_column(
            "prediction", _values(reference[prediction[0]]), _values(current[prediction[1]]), thresholds
        )
    return DriftReport(
        reference_rows=len(reference),
        current_rows=len(current),
        thresholds=thresholds,
        features=columns,
        prediction=predicted,
        enough_rows=len(current) >= thresholds.min_rows,
        drifted=[c.name for c in columns if c.drifted],
    )


def _values(column: pd.Series) -> np.ndarray:
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
    finite: np.ndarray = values[np.isfinite(values)]
    return finite


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def plot_column(name: str, reference: np.ndarray, current: np.ndarray, path: Path, *, title: str = "") -> Path:
    """A small PNG: the two distributions as overlaid histograms on the same bins."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    both = np.concatenate([reference, current])
    edges = [float(e) for e in np.histogram_bin_edges(both, bins=30)]
    figure, axes = pyplot.subplots(figsize=(4.8, 3.0), dpi=80)
    try:
        axes.hist(reference, bins=edges, density=True, alpha=0.55, label=f"training ({len(reference)})")
        axes.hist(current, bins=edges, density=True, alpha=0.55, label=f"scoring ({len(current)})")
        axes.set_title(title or name, fontsize=10)
        axes.tick_params(labelsize=8)
        axes.legend(fontsize=8)
        figure.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, format="png")
    finally:
        pyplot.close(figure)
    return path
