"""Online endpoints, blue/green and batch endpoints on the azureml backend, against the emulator: issue 11's acceptance.

One story, through the `mlops` CLI (real SDK, real emulator, real endpoint servers): `mlops run` on
azureml and on the local backend give the same predictions at their printed URLs, and the same batch
scores; `mlops batch-score` scores the 442 rows again; a second version whose bundle answers wrong
values is rolled back (the first keeps 100 %, the new deployment is gone, the run names the check).
"""

from __future__ import annotations

import csv
import re
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.ai.ml.entities import MonitorSchedule
from azure.ai.ml.entities._load_functions import load_schedule

from infra.azureml import AzureMLBackend
from infra.factory import open_backend
from infra.settings import load_settings
from infra.telemetry import read_spans
from tests.helpers import free_port
from tests.support.cli import run_mlops
from tests.support.emulator import Emulated, start_emulated

MODEL = "diabetes_regression_model.pkl"
SMOKE = {"data": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [10, 9, 8, 7, 6, 5, 4, 3, 2, 1]]}
_CURL = re.compile(r"curl -s (?:--cacert (?P<ca>\S+) )?(?P<url>\S+) -H 'Authorization: Bearer (?P<key>[^']+)'")


def _mlops(*args: str, env: dict[str, str], api_url: str) -> subprocess.CompletedProcess[str]:
    return run_mlops(*args, env=env, api_url=api_url)


def _score(stdout: str) -> list[float]:
    """POST the smoke request to the URL the run printed, with the printed key (and CA), as a user would."""
    found = _CURL.search(stdout)
    assert found, stdout
    verify: Any = ssl.create_default_context(cafile=found["ca"]) if found["ca"] else False
    with httpx.Client(verify=verify, trust_env=False, timeout=30) as client:
        answer = client.post(found["url"], json=SMOKE, headers={"Authorization": f"Bearer {found['key']}"})
    assert answer.status_code == 200, answer.text
    result: list[float] = answer.json()["result"]
    return result


def _scores(home: Path) -> list[float]:
    files = sorted((home / "batch-output").rglob("*.csv"))
    assert files, f"no batch output under {home}"
    with files[-1].open() as handle:
        return [float(row["score"]) for row in csv.DictReader(handle)]


@pytest.fixture(scope="module")
def story(
    prefect_server: str, own_emulator: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("online")
    with pytest.MonkeyPatch.context() as patch:
        # an emulator of the story's own, started with its MLOPS_HOME: the endpoints' spans land in its telemetry
        emulated = start_emulated(root / "azure", patch)
        try:
            runs: dict[str, Any] = {"azure": _mlops("run", env=emulated.env, api_url=prefect_server)}
            local_env = {
                "MLOPS_HOME": str(root / "local"),
                "MLOPS_BACKEND": "local",
                "MLOPS_ENDPOINT_PORT": str(free_port()),
            }
            runs["local"] = _mlops("run", env=local_env, api_url=prefect_server)
            runs["local_answer"] = _score(runs["local"].stdout) if runs["local"].returncode == 0 else None
            runs["batch"] = _mlops("batch-score", env=emulated.env, api_url=prefect_server)
            runs["answer"] = _score(runs["azure"].stdout) if runs["azure"].returncode == 0 else None
            # a second version whose bundle answers one more than its model predicts
            runs["train"] = _mlops("train", "--force", "--alpha", "0.3", env=emulated.env, api_url=prefect_server)
            backend = open_backend(load_settings())
            assert isinstance(backend, AzureMLBackend)
            _tamper(backend.packages.build(backend.registry.get(MODEL, 2)).path)
            runs["wrong"] = _mlops("deploy", "--version", "2", env=emulated.env, api_url=prefect_server)
            runs["endpoint"] = backend.endpoints.get(backend.settings.endpoint_name)
            runs["monitor"] = _read(lambda: backend.client.schedules.get(f"{backend.settings.endpoint_name}-drift"))
            runs["reference"] = _read(
                lambda: backend.client.data.get("diabetes_regression_model-reference", version="1")
            )
            runs["deployments"] = [
                d.name for d in backend.client.online_deployments.list(backend.settings.endpoint_name)
            ]
            yield {"runs": runs, "emulated": emulated, "root": root}
        finally:
            emulated.process.stop()
            run_mlops("endpoint", "stop", env=local_env)  # the local run's endpoint server


def _read(call: Any) -> Any:
    """What `call()` returns, or the exception it raised (a test names it, instead of the fixture failing)."""
    try:
        return call()
    except Exception as exc:  # noqa: BLE001
        return exc


def _tamper(bundle: Path) -> None:
    script = bundle / "code" / "score.py"
    text = script.read_text()
    assert 'return {"result": result}' in text
    script.write_text(text.replace('return {"result": result}', 'return {"result": [r + 1.0 for r in result]}'))


class TestRun:
    def test_mlops_run_on_azureml_completes_and_prints_the_scoring_url(self, story: dict[str, Any]) -> None:
        run = story["runs"]["azure"]
        assert run.returncode == 0, run.stderr[-3000:]
        assert re.search(r"^scoring URL: https://127\.0\.0\.1:\d+/score$", run.stdout, re.MULTILINE), run.stdout

    def test_the_printed_url_and_key_answer_the_local_backends_predictions(self, story: dict[str, Any]) -> None:
        runs = story["runs"]
        assert runs["local"].returncode == 0, runs["local"].stderr[-3000:]
        assert runs["answer"] == pytest.approx(runs["local_answer"], abs=1e-6)

    def test_the_deployment_went_through_the_sdk_with_its_lro(self, story: dict[str, Any]) -> None:
        emulated: Emulated = story["emulated"]
        sdk = [r for r in emulated.requests() if "azure-ai-ml" in r["user_agent"]]
        puts = [r["path"] for r in sdk if r["method"] == "PUT"]
        endpoint = emulated.endpoint_name
        assert endpoint.startswith("diabetes-endpoint-")  # the default, with a suffix of this workspace's own
        assert any(p.endswith(f"/onlineEndpoints/{endpoint}") for p in puts)
        assert any(p.endswith(f"/onlineEndpoints/{endpoint}/deployments/blue") for p in puts)
        assert any("/mfeOperationsStatus/" in r["path"] for r in emulated.requests())
        assert any(r["method"] == "POST" and r["path"].endswith("/listKeys") for r in sdk)

    def test_batch_scores_match_the_local_backend(self, story: dict[str, Any]) -> None:
        azure, local = _scores(story["root"] / "azure"), _scores(story["root"] / "local")
        assert len(azure) == len(local) == 442
        assert azure == pytest.approx(local, abs=1e-6)

    def test_mlops_batch_score_scores_all_rows_in_a_batch_job(self, story: dict[str, Any]) -> None:
        batch = story["runs"]["batch"]
        assert batch.returncode == 0, batch.stderr[-3000:]
        assert "442 of 442 rows scored, 0 failed" in batch.stdout
        emulated: Emulated = story["emulated"]
        invokes = emulated.requests("POST", "/inference/batch/")
        assert len(invokes) == 2  # the run's batch scoring and this one
        assert all(status == "Completed" for name, status in emulated.jobs().items() if name.startswith("batch-"))


class TestTrace:
    def test_the_smoke_request_to_the_managed_endpoint_is_in_the_deploy_runs_trace(self, story: dict[str, Any]) -> None:
        spans = read_spans(story["root"] / "azure" / "telemetry")
        [deploy_run] = [s for s in spans if s.attributes.get("mlops.flow") == "deploy" and s.status == "OK"]
        smoke = [s for s in spans if s.name.startswith("smoke-test") and s.parent_id == deploy_run.span_id]
        requests = [s for s in spans if s.parent_id in {t.span_id for t in smoke} and s.name == "POST /score"]
        assert requests, [s.name for s in spans]
        assert {s.trace_id for s in requests} == {deploy_run.trace_id}
        assert requests[-1].attributes["mlops.model"] == f"{MODEL}:1"
        assert requests[-1].attributes["http.response.status_code"] == 200


class TestMonitor:
    """`mlops run`'s monitor step keeps Azure ML's own drift monitor of the serving deployment."""

    def test_a_monitor_schedule_watches_the_serving_deployment(self, story: dict[str, Any]) -> None:
        schedule = story["runs"]["monitor"]
        assert isinstance(schedule, MonitorSchedule), schedule
        definition = schedule.create_monitor
        assert definition.monitoring_target.endpoint_deployment_id.endswith(
            f"/onlineEndpoints/{story['emulated'].endpoint_name}/deployments/blue"
        )
        [signal] = definition.monitoring_signals.values()
        assert signal.type == "data_drift"
        assert signal.features == ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
        assert signal.metric_thresholds.numerical.population_stability_index == 0.2
        assert "diabetes_regression_model-reference" in signal.reference_data.input_data.path
        assert "diabetes_scoring_ds" in signal.production_data.input_data.path

    def test_its_baseline_is_version_1s_training_data_as_an_mltable(self, story: dict[str, Any]) -> None:
        reference = story["runs"]["reference"]
        assert not isinstance(reference, Exception), reference
        assert reference.type == "mltable"
        assert reference.tags["mlops.model"] == f"{MODEL}:1"

    def test_it_went_through_the_sdk(self, story: dict[str, Any]) -> None:
        emulated: Emulated = story["emulated"]
        assert emulated.requests("PUT", f"/schedules/{emulated.endpoint_name}-drift")


class TestRollback:
    def test_the_wrong_bundle_fails_the_run_naming_the_smoke_test(self, story: dict[str, Any]) -> None:
        runs = story["runs"]
        assert runs["train"].returncode == 0, runs["train"].stderr[-3000:]
        wrong = runs["wrong"]
        assert wrong.returncode != 0
        assert f"smoke test of {MODEL}:2" in wrong.stderr
        assert "the bundle predicts" in wrong.stderr

    def test_the_old_deployment_keeps_all_traffic_and_the_new_one_is_gone(self, story: dict[str, Any]) -> None:
        endpoint = story["runs"]["endpoint"]
        assert {n: (d.model, d.traffic) for n, d in endpoint.deployments.items()} == {"blue": (f"{MODEL}:1", 100)}
        assert story["runs"]["deployments"] == ["blue"]

    def test_the_endpoint_still_answers_with_version_1(self, story: dict[str, Any]) -> None:
        assert _score(story["runs"]["azure"].stdout) == pytest.approx(story["runs"]["local_answer"], abs=1e-6)


def test_every_entity_yaml_was_written_and_loads(story: dict[str, Any]) -> None:
    import azure.ai.ml as ml

    folder = story["root"] / "azure" / "azureml" / "yaml"
    loaders = {
        "online-endpoint-": ml.load_online_endpoint,
        "online-deployment-": ml.load_online_deployment,
        "batch-endpoint-": ml.load_batch_endpoint,
        "batch-deployment-": ml.load_batch_deployment,
        "compute-": ml.load_compute,
        "environment-": ml.load_environment,
        "monitor-": load_schedule,
    }
    written = sorted(p.name for p in folder.glob("*.yml"))
    for prefix, loader in loaders.items():
        files = [folder / name for name in written if name.startswith(prefix)]
        assert files, f"no {prefix}*.yml in {written}"
        for file in files:
            assert loader(file).name, file
