"""Data drift: recent scoring inputs against the training data a model version was fitted on, per feature.

Two statistics for each feature, and for the predictions:

- **PSI** (population stability index) over ten bins cut at the training data's deciles (a feature
  with ten values or fewer, like `sex`, gets one bin per value). 0 means the same shares; 0.1 is a
  small shift; 0.2 and above the usual "act on it".
- **KS**: the two-sample Kolmogorov-Smirnov test (`ks_two_sample`, numpy): the largest gap between the two
  empirical distributions, and how likely a gap that large is if both samples came from one distribution.

A feature has drifted when both agree: PSI at or over its threshold *and* the KS p-value under its
own. PSI alone flags small samples (its noise grows as 1/rows); the p-value alone flags tiny shifts
in large ones. Fewer rows than `min_rows` decide nothing.
"""

from __future__ import annotations

import math
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
    statistic, p_value = ks_two_sample(reference, current)
    index = psi(reference, current)
    enough = len(current) >= thresholds.min_rows
    return ColumnDrift(
        name=name,
        psi=index,
        ks_statistic=statistic,
        ks_p_value=p_value,
        reference_mean=float(np.mean(reference)),
        current_mean=float(np.mean(current)),
        reference_std=float(np.std(reference)),
        current_std=float(np.std(current)),
        drifted=enough and index >= thresholds.psi and p_value < thresholds.ks_p_value,
    )


EXACT_CELLS = 1_000_000  # m * n up to which the p-value is exact (about 20 ms a feature at 1,000 x 1,000 rows)


def ks_two_sample(first: np.ndarray, second: np.ndarray) -> tuple[float, float]:
    """The two-sided two-sample Kolmogorov-Smirnov test: the statistic D, the largest gap between the samples'
    empirical distribution functions, and P(D >= the observed D) if both came from one continuous distribution.

    Exact while m * n <= EXACT_CELLS: every interleaving of the two sorted samples is equally likely, one lattice
    path from (0, 0) to (m, n), and the p-value is the share of paths that reach the observed gap, counted row by
    row in integers of 1/(m n) (p-values under ~1e-15 come out as 0). Larger samples take the Kolmogorov
    distribution's limit with Stephens' small-sample correction. scipy's `ks_2samp` gives the same exact values;
    its import (~0.9 s of CPU) was most of the drift monitor's time in an unchanged `mlops run` (issue 27)."""
    a, b = np.sort(np.asarray(first, dtype=np.float64)), np.sort(np.asarray(second, dtype=np.float64))
    m, n = len(a), len(b)
    if m == 0 or n == 0:
        raise ValueError("the KS test needs rows in both samples")
    values = np.concatenate([a, b])
    gaps = np.abs(np.searchsorted(a, values, side="right") * n - np.searchsorted(b, values, side="right") * m)
    gap = int(gaps.max())  # D = gap / (m n)
    statistic = gap / (m * n)
    if gap == 0:
        return 0.0, 1.0
    if m * n <= EXACT_CELLS:
        return statistic, _exact_p(m, n, gap)
    effective = math.sqrt(m * n / (m + n))
    return statistic, _kolmogorov_sf((effective + 0.12 + 0.11 / effective) * statistic)


def _exact_p(m: int, n: int, gap: int) -> float:
    """P(D >= gap / (m n)): one minus the share of lattice paths with |i n - j m| < gap at every point."""
    row = np.zeros(n + 1)
    log_scale = 0.0
    for i in range(m + 1):
        low = max(0, (i * n - gap) // m + 1)  # j m > i n - gap
        high = min(n, -((-(i * n + gap)) // m) - 1)  # j m < i n + gap
        inside = np.zeros(n + 1)
        if low <= high:
            inside[low : high + 1] = np.cumsum(row[low : high + 1]) if i else 1.0
        row = inside
        peak = float(row.max())
        if peak == 0.0:
            return 1.0
        row /= peak
        log_scale += math.log(peak)
    log_share = math.log(row[n]) + log_scale - (math.lgamma(m + n + 1) - math.lgamma(m + 1) - math.lgamma(n + 1))
    return float(min(1.0, max(0.0, -math.expm1(log_share))))


def _kolmogorov_sf(x: float) -> float:
    """P(K > x) for the Kolmogorov distribution: 2 * sum((-1)^(k-1) exp(-2 k^2 x^2))."""
    if x < 0.2:
        return 1.0
    total = sum((-1) ** (k - 1) * math.exp(-2 * k * k * x * x) for k in range(1, 101))
    return float(min(1.0, max(0.0, 2 * total)))


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
