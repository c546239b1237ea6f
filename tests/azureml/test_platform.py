"""Under `mlops up` with MLOPS_BACKEND=azureml and the emulator: `mlops up` runs the emulator, and the
nightly train-register deployment, run by the platform's worker, submits its job there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.azureml_emulator.process import EmulatorProcess
from tests.deployments.platform_harness import Platform
from tests.helpers import free_port

MODEL = "diabetes_regression_model.pkl"


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    platform = Platform(tmp_path / "mlops")
    platform.extra = {
        "MLOPS_BACKEND": "azureml",
        "MLOPS_AZUREML_EMULATOR": "1",
        "MLOPS_AZUREML_EMULATOR_PORT": str(free_port()),
        "MLOPS_AZUREML_POLL_SECONDS": "0.2",
        "MLOPS_PREFECT_DATABASE": "sqlite",  # PostgreSQL has its own tests; this one is about the backend
        "MLOPS_BLOB_EMULATOR": "none",
    }
    try:
        yield platform
    finally:
        platform.mlops("down", timeout=120)


def test_the_nightly_deployment_trains_on_the_emulator(platform: Platform) -> None:
    up = platform.mlops("up")
    assert up.returncode == 0, up.stdout + up.stderr
    assert "Azure ML emulator: started at https://127.0.0.1:" in up.stdout

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

    down = platform.mlops("down")
    assert "stopped the Azure ML emulator" in down.stdout
    assert emulator.pid() is None
    assert os.environ.get("MLOPS_BACKEND") is None  # the test's settings went to the platform only
