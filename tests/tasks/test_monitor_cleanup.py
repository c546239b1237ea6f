"""The drift monitor's statistics task and the janitor's tasks, on the fake backend."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from infra.settings import Settings
from model.drift import DriftThresholds
from tasks.cleanup import archive_old_versions, remove_idle_deployments, stop_endpoint
from tasks.monitor import ScoringData, compute_drift, thresholds_of
from tests.support.fakes import FakeBackend, write_fake_model

MODEL, ENDPOINT = "diabetes_regression_model.pkl", "diabetes-endpoint"
THRESHOLDS = DriftThresholds(psi=0.2, ks_p_value=0.01, min_rows=50)


def _frame(rows: int, shift: float = 0.0, seed: int = 0) -> pd.DataFrame:
    generator = np.random.default_rng(seed)
    return pd.DataFrame({"age": generator.normal(50 + shift, 10, rows), "bmi": generator.normal(25, 4, rows)})


def _current(frame: pd.DataFrame) -> ScoringData:
    scored = frame.assign(score=frame["age"] * 2)
    return ScoringData(frame=scored, sources=["test"], batch_rows=len(frame), online_rows=0)


def _baseline(rows: int = 400) -> pd.DataFrame:
    frame = _frame(rows, seed=1)
    return frame.assign(prediction=frame["age"] * 2)


def test_a_shifted_feature_drifts_and_a_steady_one_does_not() -> None:
    report = compute_drift.fn(_baseline(), _current(_frame(300, shift=15, seed=2)), THRESHOLDS)
    assert report.enough_rows
    assert report.drifted == ["age"]
    assert report.prediction is not None
    assert report.prediction.drifted  # the predictions follow age


def test_the_same_distribution_does_not_drift() -> None:
    report = compute_drift.fn(_baseline(), _current(_frame(300, seed=3)), THRESHOLDS)
    assert report.drifted == []


def test_too_few_rows_call_nothing_drifted_however_far_they_moved() -> None:
    report = compute_drift.fn(_baseline(), _current(_frame(20, shift=40, seed=4)), THRESHOLDS)
    assert not report.enough_rows
    assert report.drifted == []


def test_a_stricter_psi_threshold_calls_a_smaller_shift_drifted() -> None:
    current = _current(_frame(300, shift=2.5, seed=5))
    loose = compute_drift.fn(_baseline(), current, DriftThresholds(psi=5.0, ks_p_value=1e-12, min_rows=50))
    strict = compute_drift.fn(_baseline(), current, DriftThresholds(psi=0.01, ks_p_value=0.5, min_rows=50))
    assert loose.drifted == []
    assert "age" in strict.drifted


def test_the_thresholds_come_from_the_settings(settings: Settings) -> None:
    thresholds = thresholds_of(settings.model_copy(update={"drift_psi_threshold": 0.3, "drift_min_rows": 7}))
    assert (thresholds.psi, thresholds.min_rows) == (0.3, 7)


def _versions(fake: FakeBackend, tmp_path: Path, count: int) -> None:
    for number in range(1, count + 1):
        folder = write_fake_model(tmp_path / f"v{number}", float(number))
        fake.registry.register(MODEL, folder, tags={}, properties={})


def test_old_versions_are_archived_but_never_an_aliased_or_deployed_one(fake: FakeBackend, tmp_path: Path) -> None:
    _versions(fake, tmp_path, 6)
    fake.registry.set_alias(MODEL, "champion", 1)
    fake.endpoints.ensure(ENDPOINT)
    fake.endpoints.add_deployment(ENDPOINT, "blue", fake.bundles.build(fake.registry.get(MODEL, 2)))
    changes = archive_old_versions.fn(fake, MODEL, ENDPOINT, keep=2)
    assert changes == [f"archived {MODEL}:3", f"archived {MODEL}:4"]
    assert [m.version for m in fake.registry.list(MODEL)] == [1, 2, 5, 6]
    assert archive_old_versions.fn(fake, MODEL, ENDPOINT, keep=2) == []  # the second time: nothing to do


def test_idle_deployments_are_removed_and_the_live_one_stays(fake: FakeBackend, tmp_path: Path) -> None:
    _versions(fake, tmp_path, 2)
    fake.endpoints.ensure(ENDPOINT)
    for slot, version in (("blue", 1), ("green", 2)):
        fake.endpoints.add_deployment(ENDPOINT, slot, fake.bundles.build(fake.registry.get(MODEL, version)))
    fake.endpoints.set_traffic(ENDPOINT, {"blue": 100})
    assert remove_idle_deployments.fn(fake, ENDPOINT) == [f"removed deployment green (0 % traffic) from {ENDPOINT}"]
    state = fake.endpoints.get(ENDPOINT)
    assert state is not None
    assert state.traffic() == {"blue": 100}
    assert stop_endpoint.fn(fake, ENDPOINT) != []
    assert remove_idle_deployments.fn(fake, ENDPOINT) == []  # a stopped endpoint is left alone
    assert remove_idle_deployments.fn(fake, "no-such-endpoint") == []
