"""The retraining policy (decide, the cooldown ledger under concurrent runs, what each policy emits) and the labels
tasks (reading labels, joining them to batch rows and collected requests, the live metric), on the fake backend."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from prefect.events import Event

from infra.settings import Settings, load_settings
from model.errors import DataValidationError, ModelError
from model.live import degraded, live_metric
from tasks.batch import OUTPUT_FILE, RECORD_FILE
from tasks.labels import compute_live_metrics, join_predictions, read_labels
from tasks.retrain import REQUESTED_EVENT, SUGGESTED_EVENT, Ledger, Signal, decide, decide_retrain, loop_status
from tests.support.fakes import FakeBackend, write_fake_model

MODEL, ENDPOINT = "diabetes_regression_model.pkl", "diabetes-endpoint"
HOUR = 3600.0
DRIFT = Signal(model=f"{MODEL}:1", cause="drift", reason="bmi, s5 drifted")


def _entry(signal: Signal, action: str, at: float, until: float) -> dict[str, Any]:
    return {"key": signal.key, "action": action, "at": at, "until": until}


class TestDecide:
    def test_retrain_requests_once_per_version_and_cause_within_the_cooldown(self) -> None:
        first = decide([], DRIFT, "retrain", 1000.0, HOUR)
        assert (first.action, first.cooldown_ends) == ("requested", 1000.0 + HOUR)
        entries = [_entry(DRIFT, "requested", 1000.0, 1000.0 + HOUR)]
        again = decide(entries, DRIFT, "retrain", 1000.0 + HOUR - 1, HOUR)
        assert again.action == "suppressed"
        assert "already requested" in again.reason
        assert decide(entries, DRIFT, "retrain", 1000.0 + HOUR, HOUR).action == "requested"  # the cooldown ended
        other_cause = Signal(model=DRIFT.model, cause="degraded", reason="mse up")
        assert decide(entries, other_cause, "retrain", 1001.0, HOUR).action == "requested"
        other_version = Signal(model=f"{MODEL}:2", cause="drift", reason="x")
        assert decide(entries, other_version, "retrain", 1001.0, HOUR).action == "requested"

    def test_suggest_suggests_once_and_not_after_a_request(self) -> None:
        assert decide([], DRIFT, "suggest", 0.0, HOUR).action == "suggested"
        suggested = [_entry(DRIFT, "suggested", 0.0, HOUR)]
        assert decide(suggested, DRIFT, "suggest", 10.0, HOUR).action == "suppressed"
        # a person who switches to retrain gets the retrain the suggestion did not start
        assert decide(suggested, DRIFT, "retrain", 10.0, HOUR).action == "requested"
        requested = [_entry(DRIFT, "requested", 0.0, HOUR)]
        assert decide(requested, DRIFT, "suggest", 10.0, HOUR).action == "suppressed"

    def test_off_does_nothing(self) -> None:
        assert decide([], DRIFT, "off", 0.0, HOUR).action == "off"


def _consider(home: str, queue: Any) -> None:
    queue.put(Ledger(Path(home)).consider(DRIFT, "retrain", HOUR).action)


def test_runs_deciding_at_once_request_one_retrain(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    workers = [context.Process(target=_consider, args=(str(tmp_path), queue)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    actions = sorted(queue.get(timeout=5) for _ in workers)
    assert actions == ["requested", "suppressed", "suppressed", "suppressed"]
    assert [e["action"] for e in Ledger(tmp_path).read()["entries"]].count("requested") == 1


def _policy(tmp_path: Path, policy: str) -> Settings:
    return load_settings(home=tmp_path / "mlops", retrain_policy=policy, retrain_cooldown_hours=2)


def test_three_drift_signals_under_retrain_emit_one_request(
    tmp_path: Path, events: list[Event], artifacts: list[dict[str, Any]]
) -> None:
    settings = _policy(tmp_path, "retrain")
    verdicts = [decide_retrain.fn(settings, DRIFT).action for _ in range(3)]
    assert verdicts == ["requested", "suppressed", "suppressed"]
    [event] = events
    assert event.event == REQUESTED_EVENT
    assert event.resource.id == f"mlops.model.{MODEL}"
    assert event.resource["mlops.chain"] == "true"
    assert (event.payload["cause"], event.payload["version"], event.payload["training_data"]) == ("drift", "1", "")
    assert artifacts == []
    status = loop_status(settings)
    assert status["policy"] == "retrain"
    assert status["cooldown_ends"] == event.payload["cooldown_ends"]


def test_suggest_emits_one_suggestion_with_an_artifact_and_off_nothing(
    tmp_path: Path, events: list[Event], artifacts: list[dict[str, Any]]
) -> None:
    settings = _policy(tmp_path, "suggest")
    assert [decide_retrain.fn(settings, DRIFT).action for _ in range(3)] == ["suggested", "suppressed", "suppressed"]
    assert [e.event for e in events] == [SUGGESTED_EVENT]
    [artifact] = artifacts
    assert artifact["key"] == "retrain-suggested"
    assert "bmi, s5 drifted" in artifact["markdown"]
    assert "`mlops train`" in artifact["markdown"]
    off = _policy(tmp_path / "off", "off")
    assert decide_retrain.fn(off, DRIFT).action == "off"
    assert len(events) == 1
    assert loop_status(off)["cooldown_ends"] is None


class TestLiveMetric:
    def test_metrics_of_the_gate(self) -> None:
        truth, score = np.array([1.0, 2.0, 4.0]), np.array([1.5, 2.0, 3.0])
        assert live_metric("mse", truth, score) == pytest.approx((0.25 + 0 + 1) / 3)
        assert live_metric("auc", [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
        assert live_metric("accuracy", [0, 1, 1], [0.2, 0.7, 0.4]) == pytest.approx(2 / 3)

    def test_bad_requests_are_named(self) -> None:
        with pytest.raises(ModelError, match="no live metric 'f1'"):
            live_metric("f1", [1], [1])
        with pytest.raises(ModelError, match="both classes"):
            live_metric("auc", [1, 1], [0.2, 0.9])

    def test_degraded_beyond_the_margin_in_the_gate_s_direction(self) -> None:
        assert not degraded(1100.0, 1000.0, "minimize", 0.1)
        assert degraded(1100.1, 1000.0, "minimize", 0.1)
        assert not degraded(0.9, 0.95, "maximize", 0.1)
        assert degraded(0.85, 0.95, "maximize", 0.1)


def _scored_batch(home: Path, run: str, scores: list[float], model: str) -> None:
    folder = home / "batch" / run
    folder.mkdir(parents=True)
    frame = pd.DataFrame({"age": range(len(scores)), "score": scores})
    frame.to_csv(folder / OUTPUT_FILE, index=False)
    (folder / RECORD_FILE).write_text(json.dumps({"model": model}))


def test_labels_join_batch_rows_and_requests_and_give_each_version_its_metric(
    fake: FakeBackend, settings: Settings, tmp_path: Path
) -> None:
    folder = write_fake_model(tmp_path / "m1", 0.5, {"mse": 2.0})
    first = fake.registry.register(MODEL, folder, tags={"mse": "2.0"}, properties={}).model  # as register-model tags
    _scored_batch(settings.home, "20261206T190000-aaaa", [10.0, 20.0, 30.0], first.id)
    fake.endpoints.ensure(ENDPOINT)
    fake.endpoints.add_deployment(ENDPOINT, "blue", fake.bundles.build(first))
    fake.endpoints.set_traffic(ENDPOINT, {"blue": 100})
    body = json.dumps({"data": [[1.0] * 10, [2.0] * 10]}).encode()
    fake.endpoints.invoke(ENDPOINT, body, headers={"x-ms-request-id": "req-1"})  # answers 5.0 and 10.0
    labels = tmp_path / "labels.csv"
    labels.write_text(
        "row_id,request_id,row,Y\n"
        "20261206T190000-aaaa:1,,,11\n"
        "20261206T190000-aaaa:3,,,30\n"
        ",req-1,1,12\n"
        "20261206T190000-aaaa:9,,,1\n"
        ",req-unknown,,1\n"
    )
    frame = read_labels.fn(str(labels), "Y")
    joined, unmatched = join_predictions.fn(fake, settings, frame)
    assert sorted(joined["score"]) == [10.0, 10.0, 30.0]
    assert unmatched == ["20261206T190000-aaaa:9", "req-unknown"]
    [metric] = compute_live_metrics.fn(fake, settings, joined)
    assert metric.model == first.id
    assert metric.live == pytest.approx((1 + 0 + 4) / 3)
    assert metric.training == 2.0
    assert metric.degraded is False


def test_bad_labels_are_named(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("row_id,target\nb:1,3\n")
    with pytest.raises(DataValidationError, match="no 'Y' column"):
        read_labels.fn(str(path), "Y")
    path.write_text("id,Y\nb:1,3\n")
    with pytest.raises(DataValidationError, match="no 'row_id'"):
        read_labels.fn(str(path), "Y")
    path.write_text("row_id,Y\nb:1,3\nb:2,abc\nb:3,\n")
    with pytest.raises(DataValidationError, match=r"column 'Y', line\(s\) 3, 4: not a finite number"):
        read_labels.fn(str(path), "Y")


def test_labels_arrived_names_a_missing_file_and_emits_nothing(tmp_path: Path, events: list[Event]) -> None:
    from tests.support.cli import run_mlops

    missing = tmp_path / "no-labels.csv"
    result = run_mlops("labels-arrived", str(missing), env={"MLOPS_HOME": str(tmp_path / "mlops")})
    assert result.returncode == 2
    assert f"{missing} does not exist" in result.stderr
    assert events == []
