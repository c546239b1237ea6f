"""model/drift.ks_two_sample: the two-sample KS test without scipy, checked against scipy's `ks_2samp`."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from model.drift import EXACT_CELLS, ks_two_sample


@pytest.mark.parametrize(
    ("m", "n", "shift"),
    [(442, 442, 0.0), (442, 442, 0.4), (100, 37, 0.3), (5, 7, 0.0), (442, 300, 0.05), (50, 50, 1.0), (1, 1, 1.0)],
)
def test_exact_p_values_equal_scipy_s(m: int, n: int, shift: float) -> None:
    rng = np.random.default_rng(m * 1000 + n)
    first, second = rng.normal(size=m), rng.normal(shift, size=n)
    statistic, p_value = ks_two_sample(first, second)
    expected = stats.ks_2samp(first, second)
    assert statistic == pytest.approx(expected.statistic, abs=1e-12)
    assert p_value == pytest.approx(expected.pvalue, rel=1e-6, abs=1e-11)  # counted as 1 - share: ~1e-12 absolute


def test_tied_values_as_a_categorical_feature_has_them() -> None:
    rng = np.random.default_rng(7)
    first, second = rng.integers(1, 3, size=300).astype(float), rng.integers(1, 3, size=200).astype(float)
    statistic, p_value = ks_two_sample(first, second)
    expected = stats.ks_2samp(first, second)
    assert (statistic, p_value) == pytest.approx((expected.statistic, expected.pvalue), rel=1e-9)


def test_large_samples_take_the_asymptotic_distribution_close_to_scipy_s() -> None:
    rng = np.random.default_rng(3)
    first, second = rng.normal(size=5000), rng.normal(0.05, size=3000)
    assert len(first) * len(second) > EXACT_CELLS
    _, p_value = ks_two_sample(first, second)
    assert p_value == pytest.approx(stats.ks_2samp(first, second).pvalue, rel=0.01)
    assert ks_two_sample(first, first) == (0.0, 1.0)


def test_an_empty_sample_is_an_error() -> None:
    with pytest.raises(ValueError, match="needs rows in both samples"):
        ks_two_sample(np.array([]), np.array([1.0]))


def test_the_drift_comparison_imports_no_scipy() -> None:
    code = (
        "import sys\n"
        "import numpy as np, pandas as pd\n"
        "from model.drift import DriftThresholds, compare\n"
        "frame = pd.DataFrame({'x': np.arange(100.0)})\n"
        "compare(frame, frame + 1, ['x'], DriftThresholds(psi=0.2, ks_p_value=0.01, min_rows=50))\n"
        "print('scipy' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert (result.returncode, result.stdout.strip()) == (0, "False"), result.stderr[-2000:]
