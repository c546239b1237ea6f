"""The deploy stage's tasks on the fake backend: traffic steps with checks, the rollback, retiring, recording."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prefect.events import Event

from infra.backend import Bundle, ModelVersion
from infra.errors import RolloutCheckError, SmokeTestError
from tasks.deploy import (
    DEPLOYED_EVENT,
    SERVING_ALIAS,
    record_serving,
    retire_previous,
    roll_back,
    serves_fully,
    serves_newer,
    shift_traffic,
    stage_deployment,
)
from tasks.rollout import RolloutPlan, RolloutPolicy
from tasks.smoke import smoke_test_deployment
from tests.support.fakes import FakeBackend, broken_scoring, model_coefficient, score_rows, write_fake_model

MODEL, ENDPOINT = "diabetes_regression_model.pkl", "diabetes-endpoint"
REQUEST = {"data": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [10, 9, 8, 7, 6, 5, 4, 3, 2, 1]]}
QUICK = RolloutPolicy(steps=[10, 50, 100], requests_per_step=10)


def _version(fake: FakeBackend, tmp_path: Path, coef: float) -> ModelVersion:
    folder = write_fake_model(tmp_path / f"model-{coef}", coef)
    return fake.registry.register(MODEL, folder, tags={}, properties={}).model


def _expected(fake: FakeBackend, model: ModelVersion) -> list[float]:
    """What a correct deployment of `model` answers to the request (the fake's rule, from the registered files)."""
    return score_rows(model_coefficient(Path(model.path)), REQUEST["data"])


def _blue_live_green_staged(fake: FakeBackend, tmp_path: Path, *, broken: bool = False) -> RolloutPlan:
    """Version 1 serving 100 % as blue, version 2 staged as green at 0 %: what stage-deployment leaves."""
    first, second = _version(fake, tmp_path, 0.5), _version(fake, tmp_path, 0.25)
    fake.endpoints.ensure(ENDPOINT)
    fake.endpoints.add_deployment(ENDPOINT, "blue", fake.bundles.build(first))
    fake.endpoints.set_traffic(ENDPOINT, {"blue": 100})
    bundle = fake.bundles.build(second)
    if broken:
        broken_scoring(bundle)
    fake.endpoints.add_deployment(ENDPOINT, "green", bundle)
    return RolloutPlan(
        endpoint=ENDPOINT,
        new="green",
        live="blue",
        model=second.id,
        previous_traffic={"blue": 100},
        expected={"green": _expected(fake, second), "blue": _expected(fake, first)},
        request=json.dumps(REQUEST),
    )


def test_traffic_moves_step_by_step_and_every_step_is_checked(fake: FakeBackend, tmp_path: Path, artifacts) -> None:
    plan = _blue_live_green_staged(fake, tmp_path)
    rows = shift_traffic.fn(fake, plan, QUICK)
    assert [row["step"] for row in rows] == ["green 10 %", "green 50 %", "green 100 %"]
    assert all(row["verdict"] == "pass" and row["requests"] == 10 for row in rows)
    assert rows[0]["traffic"] == "blue 90, green 10"
    state = fake.endpoints.get(ENDPOINT)
    assert state is not None
    assert state.traffic() == {"blue": 0, "green": 100}
    assert {d for _, d in fake.endpoints.invocations} == {"blue", "green"}  # both answered along the way
    [table] = [a for a in artifacts if a["kind"] == "table"]
    assert table["key"] == "traffic-steps"
    assert "rollout completed" in table["description"]


def test_a_wrong_answer_stops_the_rollout_and_the_rollback_restores_the_live_deployment(
    fake: FakeBackend, tmp_path: Path, artifacts
) -> None:
    plan = _blue_live_green_staged(fake, tmp_path, broken=True)
    with pytest.raises(RolloutCheckError, match="traffic step 10 % to 'green' failed its check"):
        shift_traffic.fn(fake, plan, QUICK)
    [table] = [a for a in artifacts if a["kind"] == "table"]
    assert "rolled back" in table["description"]
    assert "the bundle predicts" in table["table"][-1]["verdict"]
    restored = roll_back(fake.endpoints, plan)
    assert restored == {"blue": 100}
    state = fake.endpoints.get(ENDPOINT)
    assert state is not None
    assert state.traffic() == {"blue": 100}
    assert list(state.deployments) == ["blue"]  # the new deployment is gone
    answer = fake.endpoints.invoke(ENDPOINT, json.dumps(REQUEST).encode())
    assert answer.headers["azureml-model-deployment"] == "blue"
    assert answer.payload()["result"] == plan.expected["blue"]


def test_the_mirror_step_mirrors_then_stops_mirroring(fake: FakeBackend, tmp_path: Path) -> None:
    plan = _blue_live_green_staged(fake, tmp_path)
    rows = shift_traffic.fn(fake, plan, QUICK.model_copy(update={"mirror_percent": 20}))
    assert rows[0]["step"] == "green mirror 20 %"
    assert rows[0]["traffic"] == "blue 100"
    assert fake.endpoints.set_mirror(ENDPOINT, {}) == {}  # nothing left mirrored


def test_rolling_back_a_first_deployment_leaves_an_endpoint_without_deployments(
    fake: FakeBackend, tmp_path: Path
) -> None:
    model = _version(fake, tmp_path, 0.5)
    fake.endpoints.ensure(ENDPOINT)
    fake.endpoints.add_deployment(ENDPOINT, "blue", fake.bundles.build(model))
    plan = RolloutPlan(
        endpoint=ENDPOINT, new="blue", live=None, model=model.id, previous_traffic={}, expected={"blue": []}
    )
    fake.endpoints.set_traffic(ENDPOINT, {"blue": 100})
    assert roll_back(fake.endpoints, plan) == {"blue": 0}
    state = fake.endpoints.get(ENDPOINT)
    assert state is not None
    assert state.deployments == {}


def test_the_smoke_test_sends_to_the_new_deployment_and_names_a_wrong_answer(
    fake: FakeBackend, tmp_path: Path, artifacts
) -> None:
    plan = _blue_live_green_staged(fake, tmp_path)
    assert smoke_test_deployment.fn(fake, plan, attempts=1, delay_seconds=0) > 0
    assert fake.endpoints.invocations[-1] == (ENDPOINT, "green")  # pinned, while blue takes all live traffic
    other = FakeBackend(tmp_path / "other")
    wrong = _blue_live_green_staged(other, tmp_path / "other", broken=True)
    with pytest.raises(SmokeTestError, match="the bundle predicts"):
        smoke_test_deployment.fn(other, wrong, attempts=1, delay_seconds=0)
    assert [a["description"] for a in artifacts if a["kind"] == "markdown"][:1] == ["passed"]


def test_retire_previous_removes_every_other_deployment(fake: FakeBackend, tmp_path: Path) -> None:
    plan = _blue_live_green_staged(fake, tmp_path)
    fake.endpoints.set_traffic(ENDPOINT, {"blue": 0, "green": 100})
    state = retire_previous.fn(fake, plan)
    assert list(state.deployments) == ["green"]


def test_which_deployment_serves_a_version_fully_or_a_newer_one(fake: FakeBackend, tmp_path: Path) -> None:
    plan = _blue_live_green_staged(fake, tmp_path)
    first, second = fake.registry.get(MODEL, 1), fake.registry.get(MODEL, 2)
    state = fake.endpoints.get(ENDPOINT)
    assert state is not None
    assert serves_fully(state, first) == "blue"
    assert serves_fully(state, second) is None  # staged at 0 %
    assert serves_newer(state, first) is None
    state = fake.endpoints.set_traffic(ENDPOINT, {"blue": 0, plan.new: 100})
    assert serves_newer(state, first) == "green"
    assert serves_fully(state, second) == "green"


def test_record_serving_points_the_alias_and_announces_the_deployment(
    fake: FakeBackend, tmp_path: Path, events: list[Event]
) -> None:
    plan = _blue_live_green_staged(fake, tmp_path)
    state = fake.endpoints.set_traffic(ENDPOINT, {"blue": 0, "green": 100})
    second = fake.registry.get(MODEL, 2)
    record_serving.fn(fake, second, state, plan.new)
    assert fake.registry.aliases(MODEL) == {SERVING_ALIAS: 2}
    [event] = [e for e in events if e.event == DEPLOYED_EVENT]
    assert event.resource.id == f"mlops.endpoint.{ENDPOINT}"
    assert event.payload["version"] == 2
    assert event.payload["deployment"] == "green"
    assert [r.id for r in event.related] == [f"mlops.model.{MODEL}"]


_SCORE_PY = """
import json, os
from pathlib import Path

def init():
    global COEF
    COEF = json.loads((Path(os.environ["AZUREML_MODEL_DIR"]) / "fake-model.json").read_text())["coef"]

def run(raw):
    {failure}
    return {{"result": [round(COEF * sum(row), 6) for row in json.loads(raw)["data"]]}}
"""


def _with_score_py(bundle: Bundle, *, failing: bool = False) -> Bundle:
    """The fake bundle with a `score.py` of the fake model's rule (or one that fails on every request)."""
    failure = "raise ValueError('this score.py fails here')" if failing else "pass"
    (bundle.path / "code" / "score.py").write_text(_SCORE_PY.format(failure=failure))
    return bundle


def test_staging_adds_the_new_deployment_at_0_with_both_bundles_expected_answers(
    fake: FakeBackend, tmp_path: Path
) -> None:
    first, second = _version(fake, tmp_path, 0.5), _version(fake, tmp_path, 0.25)
    fake.endpoints.ensure(ENDPOINT)
    fake.endpoints.add_deployment(ENDPOINT, "blue", _with_score_py(fake.bundles.build(first)))
    fake.endpoints.set_traffic(ENDPOINT, {"blue": 100})
    endpoint = fake.endpoints.get(ENDPOINT)
    assert endpoint is not None
    plan = stage_deployment.fn(fake, endpoint, _with_score_py(fake.bundles.build(second)))
    assert (plan.new, plan.live) == ("green", "blue")
    assert plan.expected == {"green": _expected(fake, second), "blue": _expected(fake, first)}
    assert fake.endpoints.get(ENDPOINT).traffic() == {"blue": 100, "green": 0}


def test_a_score_py_that_fails_here_leaves_no_new_deployment_and_the_live_one_serving(
    fake: FakeBackend, tmp_path: Path
) -> None:
    first, second = _version(fake, tmp_path, 0.5), _version(fake, tmp_path, 0.25)
    fake.endpoints.ensure(ENDPOINT)
    fake.endpoints.add_deployment(ENDPOINT, "blue", _with_score_py(fake.bundles.build(first)))
    fake.endpoints.set_traffic(ENDPOINT, {"blue": 100})
    endpoint = fake.endpoints.get(ENDPOINT)
    assert endpoint is not None
    with pytest.raises(SmokeTestError, match=r"this score\.py fails here"):
        stage_deployment.fn(fake, endpoint, _with_score_py(fake.bundles.build(second), failing=True))
    assert fake.endpoints.get(ENDPOINT).traffic() == {"blue": 100}  # green staged beside it, then removed
