"""find-champion and evaluate-model: where the champion comes from, and the gate's decision."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.backend import TrainOutput, TrainSpec
from infra.errors import GateError
from model.gate import GatePolicy
from tasks.evaluate import evaluate_model, find_champion, recorded_metrics, serving_version
from tests.support.fakes import FakeBackend

MODEL, ENDPOINT = "diabetes_regression_model.pkl", "diabetes-endpoint"
MSE = GatePolicy("mse", "minimize", 0.0, False)


def _register(fake: FakeBackend, tmp_path: Path, alpha: float) -> int:
    data = tmp_path / "data.csv"
    data.write_text("age\n1\n")
    output = fake.jobs.train(TrainSpec(job_name=f"job-{alpha}", data=data, parameters={"alpha": alpha}))
    properties = {"metrics": json.dumps(output.metrics)}
    return fake.registry.register(MODEL, output.outputs, tags={}, properties=properties).model.version


def _candidate(mse: float) -> TrainOutput:
    return TrainOutput(
        job_name="candidate",
        outputs=Path("/nowhere"),
        metrics={"mse": mse},
        environment={},
        training={},
        log=Path("/x"),
    )


def test_no_champion_yet_is_none(fake: FakeBackend) -> None:
    assert find_champion.fn(fake, MODEL, ENDPOINT) is None


def test_the_champion_alias_is_the_champion_with_its_recorded_metrics(fake: FakeBackend, tmp_path: Path) -> None:
    version = _register(fake, tmp_path, 0.4)
    fake.registry.set_alias(MODEL, "champion", version)
    champion = find_champion.fn(fake, MODEL, ENDPOINT)
    assert champion is not None
    assert champion.model.version == version
    assert champion.metrics == {"mse": 3400.0}
    assert champion.source == "registry alias 'champion'"


def test_the_version_serving_all_traffic_wins_over_the_alias(fake: FakeBackend, tmp_path: Path) -> None:
    first, second = _register(fake, tmp_path, 0.4), _register(fake, tmp_path, 0.1)
    fake.registry.set_alias(MODEL, "champion", second)
    fake.endpoints.ensure(ENDPOINT)
    fake.endpoints.add_deployment(ENDPOINT, "blue", fake.bundles.build(fake.registry.get(MODEL, first)))
    fake.endpoints.set_traffic(ENDPOINT, {"blue": 100})
    champion = find_champion.fn(fake, MODEL, ENDPOINT)
    assert champion is not None
    assert champion.model.version == first
    assert champion.source == f"endpoint '{ENDPOINT}' (100 % of traffic)"


def test_a_version_serving_part_of_the_traffic_is_not_the_serving_version(fake: FakeBackend, tmp_path: Path) -> None:
    first, second = _register(fake, tmp_path, 0.4), _register(fake, tmp_path, 0.1)
    fake.endpoints.ensure(ENDPOINT)
    for slot, version in (("blue", first), ("green", second)):
        fake.endpoints.add_deployment(ENDPOINT, slot, fake.bundles.build(fake.registry.get(MODEL, version)))
    fake.endpoints.set_traffic(ENDPOINT, {"blue": 50, "green": 50})
    assert serving_version(fake, MODEL, ENDPOINT) is None
    fake.endpoints.set_traffic(ENDPOINT, {"blue": 100, "green": 0})
    assert serving_version(fake, MODEL, ENDPOINT) == fake.registry.get(MODEL, first)
    fake.endpoints.stop(ENDPOINT)
    assert serving_version(fake, MODEL, ENDPOINT) is None  # a stopped endpoint serves nothing


def test_a_better_candidate_is_promoted_and_a_worse_one_is_not(fake: FakeBackend, tmp_path: Path) -> None:
    fake.registry.set_alias(MODEL, "champion", _register(fake, tmp_path, 0.4))  # mse 3400
    champion = find_champion.fn(fake, MODEL, ENDPOINT)
    better = evaluate_model.fn(_candidate(3100.0), champion, MSE, False)
    worse = evaluate_model.fn(_candidate(3500.0), champion, MSE, False)
    assert better.promoted
    assert "promoted" in better.reason
    assert not worse.promoted
    assert worse.champion == 3400.0


def test_force_registers_a_worse_candidate_and_says_so(fake: FakeBackend, tmp_path: Path) -> None:
    fake.registry.set_alias(MODEL, "champion", _register(fake, tmp_path, 0.4))
    decision = evaluate_model.fn(_candidate(3500.0), find_champion.fn(fake, MODEL, ENDPOINT), MSE, True)
    assert decision.promoted
    assert decision.forced
    assert decision.reason.startswith("forced: registered although the gate said no")


def test_a_champion_without_the_gate_metric_is_a_gate_error_naming_it(fake: FakeBackend, tmp_path: Path) -> None:
    fake.registry.set_alias(MODEL, "champion", _register(fake, tmp_path, 0.4))
    champion = find_champion.fn(fake, MODEL, ENDPOINT)
    with pytest.raises(GateError, match="'r2'"):
        evaluate_model.fn(_candidate(3100.0), champion, GatePolicy("r2", "maximize", 0.0, False), False)


def test_recorded_metrics_of_a_version_without_any_are_empty(fake: FakeBackend, tmp_path: Path) -> None:
    folder = tmp_path / "bare"
    folder.mkdir()
    (folder / "model.bin").write_bytes(b"x")
    model = fake.registry.register(MODEL, folder, tags={}, properties={}).model
    assert recorded_metrics(model) == {}
