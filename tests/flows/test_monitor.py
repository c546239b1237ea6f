"""The drift monitor on a real Prefect server: batch-scored files drawn from the training distribution and
shifted away from it, the endpoint's collected online requests, and what each run publishes; and the labels flow
(ground truth for batch-scored rows: the live metric, and degradation)."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import httpx
import joblib
import numpy as np
import pandas as pd
import pytest

from flows.batch_score import batch_score
from flows.deploy import deploy
from flows.labels import labels
from flows.monitor import monitor
from infra.common.segments import SegmentedLog
from infra.local import LocalBackend
from model.layout import REFERENCE_FILE
from models.diabetes.data import FEATURES, write_sample_csv
from models.diabetes.score import find_model
from tasks.labels import DEGRADED_EVENT
from tasks.monitor import DRIFT_EVENT, DriftSummary
from tests.support.helpers import MODEL, flow_workspace
from tests.support.prefect_api import artifacts_of, wait_for_events

SHIFTED = ["bmi", "s5"]


def _features(folder: Path) -> pd.DataFrame:
    return pd.read_csv(write_sample_csv(folder / "features.csv", for_scoring=True))


def _drawn(folder: Path, name: str, rows: int = 442, seed: int = 7) -> Path:
    """Rows drawn (with replacement) from the training features: the same distribution."""
    frame = _features(folder).sample(n=rows, replace=True, random_state=seed)
    frame.to_csv(folder / name, index=False)
    return folder / name


def _shifted(folder: Path, name: str, columns: list[str]) -> Path:
    """The training features with `columns` moved up by one of their standard deviations."""
    frame = _features(folder)
    for column in columns:
        frame[column] += frame[column].std()
    frame.to_csv(folder / name, index=False)
    return folder / name


@pytest.fixture(scope="module")
def workspace(
    prefect_server: str,
    seeded_template: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[LocalBackend, Path]]:
    root = tmp_path_factory.mktemp("monitor")
    with flow_workspace(seeded_template, root / "home") as backend:
        yield backend, root


def _score_and_monitor(backend: LocalBackend, source: Path) -> tuple[DriftSummary, Any]:
    batch = batch_score(input=str(source), model_version=1)
    state = monitor(scored=batch.scored, output=batch.output, inputs=batch.inputs, model_version=1, return_state=True)
    assert state.is_completed(), state.message
    return state.result(), state


class TestBatchDrift:
    def test_a_file_from_the_training_distribution_does_not_drift(self, workspace: tuple[LocalBackend, Path]) -> None:
        backend, root = workspace
        summary, state = _score_and_monitor(backend, _drawn(root, "same.csv"))
        assert summary.rows == 442
        assert summary.drifted == []
        assert summary.event is False
        assert not summary.prediction_drifted
        assert {f["name"]: f["drifted"] for f in summary.report["features"]} == dict.fromkeys(FEATURES, False)
        artifacts = artifacts_of(state.state_details.flow_run_id)
        assert "no feature drifted" in artifacts["drift-report"].data
        assert wait_for_events(DRIFT_EVENT, 1, {}, state.state_details.flow_run_id, timeout=5) == []

    def test_two_shifted_features_drift_and_are_announced(self, workspace: tuple[LocalBackend, Path]) -> None:
        backend, root = workspace
        summary, state = _score_and_monitor(backend, _shifted(root, "shifted.csv", SHIFTED))
        assert summary.drifted == SHIFTED
        assert summary.event is True
        features = {f["name"]: f for f in summary.report["features"]}
        for name in SHIFTED:
            assert features[name]["psi"] >= backend.settings.drift_psi_threshold
            assert features[name]["ks_p_value"] < backend.settings.drift_ks_p_value
            assert features[name]["shift_in_std"] == pytest.approx(1.0, abs=0.01)
        [event] = wait_for_events(DRIFT_EVENT, 1, {"features": SHIFTED}, state.state_details.flow_run_id)
        assert event.resource.id == f"mlops.dataset.{backend.settings.scoring_dataset_name}"
        assert set(event.payload["statistics"]) == set(SHIFTED)
        assert event.payload["model"] == f"{MODEL}:1"
        assert event.payload["training_data"] == ""  # unlabelled input: retrain on the configured data

    def test_drift_json_lies_beside_the_batch_output(self, workspace: tuple[LocalBackend, Path]) -> None:
        _, root = workspace
        batch = batch_score(input=str(_shifted(root, "again.csv", ["age"])), model_version=1)
        summary = monitor(scored=batch.scored, output=batch.output, inputs=batch.inputs, model_version=1)
        assert batch.output is not None
        output = Path(batch.output)
        beside = output.with_name(f"{output.stem}.drift.json")
        assert summary.published == str(beside)
        document = json.loads(beside.read_text())
        assert document["drifted"] == ["age"]
        assert document == json.loads(Path(summary.drift_json or "").read_text())
        assert Path(summary.drift_json or "").parent == Path(batch.scored or "").parent  # beside the scored rows

    def test_the_artifact_tables_every_feature_and_links_a_plot_per_drifted_one(
        self, workspace: tuple[LocalBackend, Path]
    ) -> None:
        backend, root = workspace
        summary, state = _score_and_monitor(backend, _shifted(root, "plotted.csv", SHIFTED))
        artifacts = artifacts_of(state.state_details.flow_run_id)
        table = json.loads(artifacts["drift"].data)
        assert [row["feature"] for row in table] == [*FEATURES, "prediction"]
        assert {row["feature"] for row in table if row["drifted"] == "yes"} == set(SHIFTED)
        report = artifacts["drift-report"].data
        folder = Path(summary.drift_json or "").parent / "plots"
        for name in SHIFTED:
            plot = folder / f"{name}.png"
            assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            assert f"[{name}]({plot.resolve().as_uri()})" in report
        assert sorted(p.stem for p in folder.glob("*.png")) == sorted(SHIFTED)

    def test_too_few_rows_decide_nothing(self, workspace: tuple[LocalBackend, Path]) -> None:
        backend, root = workspace
        few = pd.read_csv(_shifted(root, "few-shifted.csv", SHIFTED)).head(backend.settings.drift_min_rows - 1)
        few.to_csv(root / "few.csv", index=False)
        summary, _ = _score_and_monitor(backend, root / "few.csv")
        assert summary.enough_rows is False
        assert summary.drifted == []
        assert summary.event is False

    def test_a_version_without_a_baseline_is_named_and_checks_nothing(
        self, workspace: tuple[LocalBackend, Path]
    ) -> None:
        backend, root = workspace
        copy = root / "no-baseline"
        shutil.copytree(backend.registry.get(MODEL, 1).path, copy)
        (copy / REFERENCE_FILE).unlink()
        version = backend.registry.register(MODEL, copy, tags={}, properties={}).model.version
        batch = batch_score(input=str(_drawn(root, "for-old.csv")), model_version=version)
        state = monitor(scored=batch.scored, model_version=version, return_state=True)
        # a package whose training writes no baseline still runs the pipeline: the run says drift is not checked
        assert state.is_completed()
        summary = state.result()
        assert summary.note == f"{MODEL}:{version} has no drift baseline ({REFERENCE_FILE}): drift not checked"
        assert (summary.drifted, summary.event) == ([], False)


@pytest.fixture(scope="class")
def served(
    prefect_server: str,
    seeded_template: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[LocalBackend, Path]]:
    """A workspace of its own whose endpoint serves version 1 (the deploy's checks are its only requests)."""
    root = tmp_path_factory.mktemp("online-monitor")
    with flow_workspace(seeded_template, root / "home") as backend:
        assert deploy(return_state=True).is_completed()
        yield backend, root


class TestOnlineDrift:
    def _send(self, backend: LocalBackend, frame: pd.DataFrame, rows_per_request: int = 10) -> None:
        settings = backend.settings
        url = f"http://127.0.0.1:{settings.endpoint_port}/score"
        key = backend.endpoints.key(settings.endpoint_name)
        rows = frame[list(FEATURES)].to_numpy().tolist()
        with httpx.Client(headers={"authorization": f"Bearer {key}"}, timeout=10) as client:
            for start in range(0, len(rows), rows_per_request):
                body = json.dumps({"data": rows[start : start + rows_per_request]})
                assert client.post(url, content=body).status_code == 200

    def test_the_smoke_and_rollout_checks_are_not_scoring_data(self, served: tuple[LocalBackend, Path]) -> None:
        summary = monitor(model_version=1)
        assert summary.rows == 0
        assert "no scoring data" in summary.note

    def test_online_requests_with_a_shifted_feature_drift(self, served: tuple[LocalBackend, Path]) -> None:
        backend, root = served
        frame = pd.read_csv(_shifted(root, "online.csv", ["s1"]))
        self._send(backend, frame)
        collected = backend.settings.home / "endpoints" / backend.settings.endpoint_name / "collected"
        deadline = time.monotonic() + 10  # the endpoint writes what it collected five times a second
        while time.monotonic() < deadline:
            requests = sum(len(f.read_text().splitlines()) for f in collected.glob("*.jsonl"))
            if requests * 10 >= len(frame):
                break
            time.sleep(0.05)
        summary = monitor(model_version=1)
        assert summary.rows == len(frame)
        assert summary.drifted == ["s1"]
        assert any("collected" in source for source in summary.sources)
        predictions = summary.report["prediction"]
        assert predictions["current_mean"] != pytest.approx(predictions["reference_mean"], rel=1e-6)
        assert np.isfinite(predictions["psi"])

    def test_a_window_cut_short_by_retention_is_said(self, served: tuple[LocalBackend, Path]) -> None:
        backend, root = served
        self._send(backend, pd.read_csv(_shifted(root, "cut.csv", ["s2"])).head(60))  # this run has rows to report
        collected = backend.settings.home / "endpoints" / backend.settings.endpoint_name / "collected"
        old = collected / "2000-01-01T000000-000001.jsonl"  # a segment last written two hours ago
        old.write_text(json.dumps({"time": time.time() - 7200, "request": {"data": []}, "response": {}}) + "\n")
        two_hours_ago = time.time() - 7200
        os.utime(old, (two_hours_ago, two_hours_ago))
        SegmentedLog(collected, "", max_bytes=1 << 30, max_age_seconds=3600).expire()  # retention's age rule
        assert not old.exists()
        summary = monitor(model_version=1)
        assert "the online window was cut short" in summary.window_cut_short
        assert time.strftime("%Y-%m-%d %H:%M", time.gmtime(two_hours_ago)) in summary.window_cut_short
        assert summary.window_cut_short in json.loads(Path(summary.drift_json or "").read_text())["window_cut_short"]


class TestLabels:
    """Ground truth for rows version 1 scored: the live metric beside the training one, and degradation."""

    scored: ClassVar[dict[Path, Any]] = {}  # the one batch-score run both tests label, by workspace

    def _labelled(self, root: Path, name: str, shift: float) -> tuple[Path, np.ndarray, Any]:
        """Labels (`row_id`, `Y` + shift) for the 442 rows of a batch scored by version 1."""
        if root not in self.scored:
            features = write_sample_csv(root / "labels-features.csv", for_scoring=True)
            self.scored[root] = batch_score(input=str(features), model_version=1)
        batch = self.scored[root]
        truth = pd.read_csv(write_sample_csv(root / "labels-truth.csv"))["Y"].to_numpy(dtype=float) + shift
        run = Path(batch.scored or "").parent.name
        labels = pd.DataFrame({"row_id": [f"{run}:{n}" for n in range(1, len(truth) + 1)], "Y": truth})
        labels.to_csv(root / name, index=False)
        return root / name, truth, batch

    def test_labels_of_batch_rows_give_the_version_s_mse_as_an_artifact(
        self, workspace: tuple[LocalBackend, Path]
    ) -> None:
        backend, root = workspace
        path, truth, _ = self._labelled(root, "labels.csv", 0.0)
        state = labels(path=str(path), return_state=True)
        assert state.is_completed(), state.message
        summary = state.result()
        # version 1's mse on those rows, computed here from its own model file
        features = pd.read_csv(root / "labels-features.csv")[list(FEATURES)].to_numpy(dtype=float)
        model = joblib.load(find_model(Path(backend.registry.get(MODEL, 1).path)))
        expected = float(np.mean((truth - model.predict(features)) ** 2))
        [metric] = summary.metrics
        assert (metric.model, metric.metric, metric.rows) == (f"{MODEL}:1", "mse", 442)
        assert metric.live == pytest.approx(expected, abs=1e-6)
        training = json.loads(backend.registry.get(MODEL, 1).properties["metrics"])["mse"]
        assert metric.training == pytest.approx(training)
        assert metric.degraded is False
        [row] = json.loads(artifacts_of(state.state_details.flow_run_id)["live-metric"].data)
        assert row["live"] == pytest.approx(expected, abs=1e-6)
        assert row["training"] == pytest.approx(training)
        assert wait_for_events(DEGRADED_EVENT, 1, {}, state.state_details.flow_run_id, timeout=3) == []

    def test_labels_from_a_degraded_world_emit_mlops_model_degraded(self, workspace: tuple[LocalBackend, Path]) -> None:
        backend, root = workspace
        path, _, _ = self._labelled(root, "shifted-labels.csv", 150.0)  # the targets moved: the model is now wrong
        state = labels(path=str(path), return_state=True)
        assert state.is_completed(), state.message
        [metric] = state.result().metrics
        assert metric.degraded is True
        assert metric.live > metric.training * (1 + backend.settings.degraded_margin)
        [event] = wait_for_events(DEGRADED_EVENT, 1, {"model": f"{MODEL}:1"}, state.state_details.flow_run_id)
        assert event.resource.id == f"mlops.model.{MODEL}"
        assert event.payload["live"] == pytest.approx(metric.live)
