"""The train-register flow on a real Prefect server, a real registry and real training jobs.

One workspace lives through the four scenarios in order: first run (registered), unchanged re-run
(cache hit, nothing registered), a much worse alpha (not promoted, Completed), and the same with
`force` (registered).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from prefect.client.schemas.objects import State

from flows.train_register import TrainRegisterResult, train_register
from infra.local.registry import LocalRegistry
from tests.support.cli import run_mlops
from tests.support.prefect_api import artifacts_of, task_run_states, wait_for_events

MODEL = "diabetes_regression_model.pkl"
WORSE_ALPHA = 1000.0


class Scenario:
    def __init__(self, state: State[Any]) -> None:
        self.state = state
        self.result: TrainRegisterResult = state.result()
        self.flow_run_id = state.state_details.flow_run_id


@pytest.fixture(scope="module")
def history(prefect_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("workspace") / "mlops"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLOPS_HOME", str(home))
        runs = {
            "first": Scenario(train_register(return_state=True)),
            "rerun": Scenario(train_register(return_state=True)),
            "worse": Scenario(train_register(alpha=WORSE_ALPHA, return_state=True)),
            "forced": Scenario(train_register(alpha=WORSE_ALPHA, force=True, return_state=True)),
        }
        status = run_mlops("status", "--json")
        assert status.returncode == 0, status.stderr
    return {"home": home, "runs": runs, "status": json.loads(status.stdout)}


class TestFirstRun:
    def test_registers_version_1_as_champion(self, history: dict[str, Any]) -> None:
        first = history["runs"]["first"]
        assert first.state.is_completed()
        assert first.result.promoted
        assert first.result.created
        assert first.result.registered.version == 1
        assert "first model" in first.result.reason

    def test_version_carries_lineage_tags(self, history: dict[str, Any]) -> None:
        model = LocalRegistry(history["home"] / "registry.db").get(MODEL, 1)
        tags = model.tags
        assert float(tags["mse"]) == pytest.approx(3295.714938563238, rel=1e-12)
        assert tags["parameters"] == '{"alpha": 0.4}'
        assert tags["prefect_flow_run_id"] == str(history["runs"]["first"].flow_run_id)
        assert len(tags["data_sha256"]) == 64
        assert len(tags["code_sha256"]) == 64
        assert tags["experiment_name"] == "mlopspython"
        assert {"python", "lib.scikit-learn", "lib.numpy", "lib.joblib"} <= set(tags)

    def test_artifacts_model_card_model_json_and_evaluation(self, history: dict[str, Any]) -> None:
        artifacts = artifacts_of(history["runs"]["first"].flow_run_id)
        assert {"evaluation", "model-card", "model-json"} <= set(artifacts)
        card = artifacts["model-card"].data
        assert f"# Model card: {MODEL} version 1" in card
        assert "3295.71" in card
        assert '"alpha": 0.4' in card
        document = json.loads(artifacts["model-json"].data.split("```json\n")[1].split("```")[0])
        assert set(document) == {"createdTime", "framework", "frameworkVersion", "id", "name", "version"}
        assert (document["id"], document["version"]) == (f"{MODEL}:1", 1)

    def test_model_json_file_in_home_follows_the_champion(self, history: dict[str, Any]) -> None:
        document = json.loads((history["home"] / "model.json").read_text())
        assert (document["name"], document["version"]) == (MODEL, 2)  # the latest promoted: the forced run

    def test_registered_event_carries_name_and_version(self, history: dict[str, Any]) -> None:
        events = wait_for_events(
            "mlops.model.registered", 1, {"name": MODEL, "version": 1}, history["runs"]["first"].flow_run_id
        )
        assert len(events) == 1
        assert events[0].resource.id == f"mlops.model.{MODEL}"


class TestUnchangedRerun:
    def test_served_from_cache_and_registers_nothing(self, history: dict[str, Any]) -> None:
        rerun = history["runs"]["rerun"]
        assert rerun.state.is_completed()
        assert rerun.result.cache_hit
        assert not rerun.result.promoted
        assert rerun.result.registered is None
        assert task_run_states(rerun.flow_run_id)["train-model"] == "Cached"
        assert "register-model" not in task_run_states(rerun.flow_run_id)

    def test_evaluation_artifact_reports_the_cache_hit(self, history: dict[str, Any]) -> None:
        artifacts = artifacts_of(history["runs"]["rerun"].flow_run_id)
        assert "served from the Prefect cache" in artifacts["evaluation"].data
        assert "model-card" not in artifacts


class TestWorseModel:
    def test_not_promoted_yet_completed_with_the_reason(self, history: dict[str, Any]) -> None:
        worse = history["runs"]["worse"]
        assert worse.state.is_completed()
        assert worse.state.name == "Completed"
        assert not worse.result.promoted
        assert not worse.result.cache_hit
        assert worse.result.champion.version == 1
        evaluation = artifacts_of(worse.flow_run_id)["evaluation"].data
        assert "**Not promoted**" in evaluation
        assert "candidate mse" in evaluation
        assert "vs champion (version 1) 3295.71" in evaluation
        assert "lower is better" in evaluation

    def test_forced_registers_and_promotes(self, history: dict[str, Any]) -> None:
        forced = history["runs"]["forced"]
        assert forced.state.is_completed()
        assert forced.result.promoted
        assert forced.result.created
        assert forced.result.registered.version == 2
        assert forced.result.reason.startswith("forced:")
        assert task_run_states(forced.flow_run_id)["train-model"] == "Cached"  # same alpha as the previous run


class TestRegistryAfterwards:
    def test_two_versions_and_the_champion_moved(self, history: dict[str, Any]) -> None:
        registry = LocalRegistry(history["home"] / "registry.db")
        assert [m.version for m in registry.list(MODEL)] == [1, 2]
        assert registry.aliases(MODEL) == {"champion": 2}

    def test_status_json(self, history: dict[str, Any]) -> None:
        status = history["status"]
        assert status["backend"] == "local"
        assert status["home"] == str(history["home"])
        assert status["endpoint"] is None
        assert [(m["name"], m["version"], m["champion"]) for m in status["models"]] == [
            (MODEL, 1, False),
            (MODEL, 2, True),
        ]
        assert float(status["models"][1]["tags"]["mse"]) > float(status["models"][0]["tags"]["mse"])
        for model in status["models"]:  # what each version's training job logged (local: its metrics.json)
            assert model["logged_metrics"]["mse"] == pytest.approx(float(model["tags"]["mse"]))
