"""The deploy flow on a real Prefect server against the real endpoint process, under load.

One workspace (three trained versions) goes through, in order: first deploy (v1 to blue), the same
again (no-op), v2 under load (blue/green), a bundle answering wrong values under load (rolled
back), a bundle built for other library versions (refused before any traffic), and a training run
whose gate compares against the version that serves; in between, a triggered deploy of an older
version than the one serving (skipped).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sklearn

from flows.deploy import deploy
from flows.train_register import train_register
from infra.local import LocalBackend
from infra.local.registry import LocalRegistry
from tests.support.helpers import MODEL, LoadGenerator, flow_workspace
from tests.support.prefect_api import artifacts_of, wait_for_events


def _tamper(bundle: Path) -> None:
    """Make the bundle's score.py answer one more than the model predicts."""
    script = bundle / "code" / "score.py"
    text = script.read_text()
    assert 'return {"result": result}' in text
    script.write_text(text.replace('return {"result": result}', 'return {"result": [r + 1.0 for r in result]}'))


def _register_with_foreign_environment(backend: LocalBackend) -> int:
    """A new version whose environment lock says it was trained with scikit-learn 0.22.2."""
    source = Path(backend.registry.get(MODEL, 1).path)
    copy = source.parent.parent / "foreign-env"
    shutil.copytree(source, copy)
    lock = json.loads((copy / "environment.json").read_text())
    lock["libraries"]["scikit-learn"] = "0.22.2"
    (copy / "environment.json").write_text(json.dumps(lock))
    return backend.registry.register(MODEL, copy, tags={}, properties={}).model.version


@pytest.fixture(scope="module")
def story(
    prefect_server: str, seeded_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("deploy") / "home"
    with flow_workspace(seeded_template, home) as backend:
        settings = backend.settings
        _tamper(backend.bundles.build(backend.registry.get(MODEL, 3)).path)
        foreign = _register_with_foreign_environment(backend)
        runs: dict[str, Any] = {}
        runs["first"] = deploy(return_state=True)
        runs["noop"] = deploy(return_state=True)
        key, url = backend.endpoints.key(settings.endpoint_name), f"http://127.0.0.1:{settings.endpoint_port}/score"
        with LoadGenerator(url, key) as load_v2:
            runs["v2"] = deploy(version=2, return_state=True)
        with LoadGenerator(url, key) as load_wrong:
            runs["wrong"] = deploy(version=3, return_state=True)
        runs["foreign"] = deploy(version=foreign, return_state=True)
        runs["older"] = deploy(version=1, skip_older=True, return_state=True)  # v2 serves: a queued, stale deploy
        endpoint_after = backend.endpoints.get(settings.endpoint_name)
        runs["retrain"] = train_register(alpha=0.4, return_state=True)
        yield {
            "home": home,
            "runs": runs,
            "load_v2": load_v2,
            "load_wrong": load_wrong,
            "endpoint": endpoint_after,
            "foreign": foreign,
        }


def _flow_run_id(state: Any) -> Any:
    return state.state_details.flow_run_id


class TestFirstDeploy:
    def test_blue_serves_version_1(self, story: dict[str, Any]) -> None:
        first = story["runs"]["first"]
        assert first.is_completed()
        result = first.result()
        assert (result.deployment, result.changed, result.model.version) == ("blue", True, 1)

    def test_artifacts(self, story: dict[str, Any]) -> None:
        artifacts = artifacts_of(_flow_run_id(story["runs"]["first"]))
        assert "# Smoke test: passed" in artifacts["smoke-test"].data
        assert "traceparent: 00-" in artifacts["smoke-test"].data
        steps = json.loads(artifacts["traffic-steps"].data)
        assert [row["step"] for row in steps] == ["blue 100 %"]
        assert all(row["verdict"] == "pass" for row in steps)

    def test_an_older_version_than_the_serving_one_is_skipped_when_asked(self, story: dict[str, Any]) -> None:
        older = story["runs"]["older"]
        assert older.is_completed()
        result = older.result()
        assert (result.changed, result.model.version) == (False, 1)
        assert result.note == f"superseded: {MODEL}:2 already serves 100 %"
        artifacts = artifacts_of(_flow_run_id(older))
        assert "traffic-steps" not in artifacts
        assert f"# Not deployed: {MODEL}:1" in artifacts["deploy-superseded"].data

    def test_deploying_the_serving_version_again_is_a_no_op(self, story: dict[str, Any]) -> None:
        noop = story["runs"]["noop"]
        assert noop.is_completed()
        assert noop.result().changed is False
        assert "traffic-steps" not in artifacts_of(_flow_run_id(noop))


class TestBlueGreenUnderLoad:
    def test_green_takes_all_traffic_and_blue_is_removed(self, story: dict[str, Any]) -> None:
        result = story["runs"]["v2"].result()
        assert (result.deployment, result.model.version) == ("green", 2)

    def test_no_request_failed_during_the_switch(self, story: dict[str, Any]) -> None:
        load = story["load_v2"]
        assert load.total > 100
        assert set(load.statuses) == {200}, load.statuses
        assert load.failures == []
        assert load.deployments["blue"] > 0
        assert load.deployments["green"] > 0

    def test_traffic_moved_in_steps_with_checks(self, story: dict[str, Any]) -> None:
        steps = json.loads(artifacts_of(_flow_run_id(story["runs"]["v2"]))["traffic-steps"].data)
        assert [row["step"] for row in steps] == ["green 10 %", "green 50 %", "green 100 %"]
        assert [row["traffic"] for row in steps] == ["blue 90, green 10", "blue 50, green 50", "blue 0, green 100"]
        assert all(row["verdict"] == "pass" and row["errors"] == 0 for row in steps)

    def test_deployed_events_and_serving_alias(self, story: dict[str, Any]) -> None:
        for run, version in (("first", 1), ("v2", 2)):
            flow_run = _flow_run_id(story["runs"][run])
            events = wait_for_events("mlops.model.deployed", 1, {"name": MODEL, "version": version}, flow_run)
            assert len(events) == 1
            assert events[0].payload["scoring_url"].endswith("/score")
        assert LocalRegistry(story["home"] / "registry.db").aliases(MODEL)["serving"] == 2


class TestRollback:
    def test_wrong_values_fail_the_flow_with_the_reason(self, story: dict[str, Any]) -> None:
        wrong = story["runs"]["wrong"]
        assert wrong.is_failed()
        assert "smoke test of diabetes_regression_model.pkl:3" in wrong.message
        assert "the bundle predicts" in wrong.message

    def test_old_version_still_serves_everything(self, story: dict[str, Any]) -> None:
        endpoint = story["endpoint"]
        assert {n: (d.model, d.traffic) for n, d in endpoint.deployments.items()} == {"green": (f"{MODEL}:2", 100)}

    def test_no_request_failed_during_the_attempt(self, story: dict[str, Any]) -> None:
        load = story["load_wrong"]
        assert load.total > 20
        assert set(load.statuses) == {200}, load.statuses
        assert set(load.deployments) == {"green"}

    def test_smoke_artifact_records_the_failure(self, story: dict[str, Any]) -> None:
        smoke = artifacts_of(_flow_run_id(story["runs"]["wrong"]))["smoke-test"].data
        assert "# Smoke test: failed" in smoke
        assert "problem:" in smoke

    def test_no_deployed_event_for_rejected_versions(self, story: dict[str, Any]) -> None:
        flow_run = _flow_run_id(story["runs"]["wrong"])
        assert wait_for_events("mlops.model.deployed", 1, {"name": MODEL}, flow_run, timeout=3) == []

    def test_foreign_environment_is_refused_before_traffic_moves(self, story: dict[str, Any]) -> None:
        foreign = story["runs"]["foreign"]
        assert foreign.is_failed()
        assert f"scikit-learn: model trained with 0.22.2, running {sklearn.__version__}" in foreign.message
        assert "traffic-steps" not in artifacts_of(_flow_run_id(foreign))


class TestGateAgainstTheServingVersion:
    def test_champion_is_the_version_serving_all_traffic(self, story: dict[str, Any]) -> None:
        """The registry's champion alias says version 1; the endpoint serves version 2, and that is what the gate uses."""
        result = story["runs"]["retrain"].result()
        assert result.promoted
        assert "vs champion (version 2)" in result.reason
        evaluation = artifacts_of(_flow_run_id(story["runs"]["retrain"]))["evaluation"].data
        assert "from the endpoint 'diabetes-endpoint' (100 % of traffic)" in evaluation
