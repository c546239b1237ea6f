"""Online endpoints, blue/green and batch endpoints on the azureml backend, against the emulator: issue 11's acceptance.

One story, through the `mlops` CLI (real SDK, real emulator, real endpoint servers): `mlops run` on
azureml and on the local backend give the same predictions at their printed URLs, and the same batch
scores; `mlops batch-score` scores the 442 rows again; a second version whose bundle answers wrong
values is rolled back (the first keeps 100 %, the new deployment is gone, the run names the check).
"""

from __future__ import annotations

import csv
import os
import re
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from infra.azureml import AzureMLBackend
from infra.factory import open_backend
from infra.settings import load_settings
from tests.azureml.conftest import Emulated, mlops_cli, start_emulated
from tests.helpers import free_port

MODEL = "diabetes_regression_model.pkl"
SMOKE = {"data": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [10, 9, 8, 7, 6, 5, 4, 3, 2, 1]]}
_CURL = re.compile(r"curl -s (?:--cacert (?P<ca>\S+) )?(?P<url>\S+) -H 'Authorization: Bearer (?P<key>[^']+)'")


def _mlops(*args: str, env: dict[str, str], api_url: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return mlops_cli(*args, env=env, api_url=api_url, timeout=timeout)


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
def story(prefect_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("online")
    with pytest.MonkeyPatch.context() as patch:
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
            runs["deployments"] = [
                d.name for d in backend.client.online_deployments.list(backend.settings.endpoint_name)
            ]
            yield {"runs": runs, "emulated": emulated, "root": root}
        finally:
            emulated.process.stop()
            subprocess.run(  # the local run's endpoint server
                [sys.executable, "-m", "deployments.cli", "endpoint", "stop"],
                env={**os.environ, **local_env},
                capture_output=True,
                check=False,
            )


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
        sdk = [r for r in emulated.process.requests() if "azure-ai-ml" in r["user_agent"]]
        puts = [r["path"] for r in sdk if r["method"] == "PUT"]
        assert any(p.endswith("/onlineEndpoints/diabetes-endpoint") for p in puts)
        assert any(p.endswith("/onlineEndpoints/diabetes-endpoint/deployments/blue") for p in puts)
        assert any("/mfeOperationsStatus/" in r["path"] for r in emulated.process.requests())
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
    }
    written = sorted(p.name for p in folder.glob("*.yml"))
    for prefix, loader in loaders.items():
        files = [folder / name for name in written if name.startswith(prefix)]
        assert files, f"no {prefix}*.yml in {written}"
        for file in files:
            assert loader(file).name, file
