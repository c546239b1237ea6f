"""Under `mlops up` with MLOPS_BACKEND=azureml and the emulator: `mlops up` runs the emulator; the nightly
train-register deployment, run by the platform's worker, submits its job there, and the event chain goes on
to deploy (a managed online endpoint) and batch-score (a batch endpoint's job), as on the local backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from azureml_emulator.process import EmulatorProcess
from infra.factory import open_backend
from infra.settings import load_settings
from models.diabetes.score import INPUT_SAMPLE, predict_locally
from tests.e2e.platform_harness import Platform
from tests.support.helpers import free_port

MODEL = "diabetes_regression_model.pkl"


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    platform = Platform(tmp_path / "mlops")
    platform.extra = {
        "MLOPS_BACKEND": "azureml",
        "MLOPS_AZUREML_EMULATOR": "1",
        "MLOPS_AZUREML_EMULATOR_PORT": str(free_port()),
        "MLOPS_AZUREML_EMULATOR_ENDPOINT_PORT": str(free_port()),
        "MLOPS_AZUREML_POLL_SECONDS": "0.2",
        "MLOPS_PREFECT_DATABASE": "sqlite",  # PostgreSQL has its own tests; this one also checks the SQLite platform
        "MLOPS_BLOB_EMULATOR": "none",
    }
    try:
        yield platform
    finally:
        platform.mlops("down", timeout=120)


def test_the_nightly_chain_trains_deploys_and_batch_scores_on_the_emulator(platform: Platform) -> None:
    up = platform.mlops("up")
    assert up.returncode == 0, up.stdout + up.stderr
    assert "Azure ML emulator: started at https://127.0.0.1:" in up.stdout
    # the platform on SQLite (MLOPS_PREFECT_DATABASE=sqlite): its file, and no PostgreSQL started
    database = platform.home / "platform" / "prefect" / "prefect.db"
    assert f"database: SQLite at {database}" in up.stdout
    assert "provision: completed on the worker" in up.stdout
    assert json.loads(platform.mlops("status", "--json").stdout)["platform"]["database"] == {
        "kind": "sqlite",
        "managed_by": "mlops up",
        "url": f"sqlite:///{database}",
    }
    assert database.is_file()
    assert not (platform.home / "platform" / "postgres").exists()
    started = time.time()

    run = subprocess.run(
        [
            str(Path(sys.executable).parent / "prefect"),
            "deployment",
            "run",
            "train-register/nightly",
            "--watch",
            "--watch-timeout",
            "300",
        ],
        capture_output=True,
        text=True,
        env={**platform.env(), "PREFECT_API_URL": platform.api},
        timeout=360,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    status = platform.mlops("status", "--json")
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["backend"] == "azureml"
    assert [(m["name"], m["version"], m["champion"]) for m in report["models"]] == [(MODEL, 1, True)]
    emulator = EmulatorProcess(platform.home / "emulator", int(platform.extra["MLOPS_AZUREML_EMULATOR_PORT"]), [])
    jobs = [r for r in emulator.requests() if r["method"] == "PUT" and "/jobs/" in r["path"]]
    assert len(jobs) == 1
    assert jobs[0]["path"].rsplit("/", 1)[-1] == report["models"][0]["tags"]["run_id"]

    # the chain: registration → deploy → batch-score, each a run of the platform's worker on the azureml backend
    deploy = platform.wait_for_run("deploy", started, timeout=420)
    batch = platform.wait_for_run("batch-score", started, timeout=420)
    assert [deploy["state_type"], batch["state_type"]] == ["COMPLETED", "COMPLETED"]
    assert int(deploy["parameters"]["version"]) == 1
    assert int(batch["parameters"]["model_version"]) == 1
    requests = emulator.requests()
    endpoint_name = report["endpoint"]["name"]
    assert endpoint_name.startswith("diabetes-endpoint-")  # the default, with a suffix of this workspace's own
    assert any(
        r["method"] == "PUT" and r["path"].endswith(f"/onlineEndpoints/{endpoint_name}/deployments/blue")
        for r in requests
    )
    assert len([r for r in requests if r["method"] == "POST" and "/inference/batch/" in r["path"]]) == 1
    # the values: the endpoint answers the smoke request with the registered model's predictions, the batch all rows
    report = json.loads(platform.mlops("status", "--json").stdout)
    endpoint = report["endpoint"]
    assert endpoint["deployments"] == {"blue": {"model": f"{MODEL}:1", "traffic": 100}}
    settings_env = {**platform.env()}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in settings_env.items():
            patch.setenv(name, value)
        backend = open_backend(load_settings())
        answer = backend.endpoints.invoke(endpoint_name, json.dumps({"data": INPUT_SAMPLE}).encode())
        expected = predict_locally(backend.bundles.build(backend.registry.get(MODEL, 1)).model_dir, INPUT_SAMPLE)
    assert answer.status == 200
    assert answer.payload()["result"] == pytest.approx(expected, abs=1e-6)
    outputs = sorted((platform.home / "batch-output").rglob("*.csv"))
    assert len(outputs) == 1
    assert len(outputs[0].read_text().splitlines()) == 443  # the header and the 442 rows

    down = platform.mlops("down")
    assert "stopped the Azure ML emulator" in down.stdout
    assert emulator.pid() is None
    assert os.environ.get("MLOPS_BACKEND") is None  # the test's settings went to the platform only
