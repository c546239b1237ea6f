"""`mlops train` and `mlops status` with MLOPS_BACKEND=azureml against the emulator: the issue's acceptance, end to end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import run_mlops
from tests.support.emulator import Emulated, start_emulated

MODEL = "diabetes_regression_model.pkl"
# Tags whose values name the run itself; every other tag must equal the local backend's.
_PER_RUN = {"run_id", "prefect_flow_run_id"}


def _mlops(*args: str, env: dict[str, str], api_url: str) -> subprocess.CompletedProcess[str]:
    return run_mlops(*args, env=env, api_url=api_url)


def _status(env: dict[str, str], api_url: str) -> dict[str, Any]:
    result = _mlops("status", "--json", env=env, api_url=api_url)
    assert result.returncode == 0, result.stderr
    status: dict[str, Any] = json.loads(result.stdout)
    return status


def test_train_twice_registers_one_version_with_the_local_backends_mse_and_tags(
    emulated: Emulated, prefect_server: str, tmp_path: Path
) -> None:
    first = _mlops("train", env=emulated.env, api_url=prefect_server)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[-2:] == [f"registered: {MODEL} version 1", f"champion: {MODEL} version 1"]
    forced = _mlops("train", "--force", env=emulated.env, api_url=prefect_server)  # reaches the registry again
    assert forced.returncode == 0, forced.stderr
    assert f"registered: {MODEL} version 1" in forced.stdout  # the same bytes: the same version

    azure = _status(emulated.env, prefect_server)
    assert azure["backend"] == "azureml"
    assert [(m["name"], m["version"], m["champion"]) for m in azure["models"]] == [(MODEL, 1, True)]
    assert list(emulated.jobs().values()) == ["Completed"]

    local_env = {"MLOPS_HOME": str(tmp_path / "local"), "MLOPS_BACKEND": "local"}
    local_run = _mlops("train", env=local_env, api_url=prefect_server)
    assert local_run.returncode == 0, local_run.stderr
    local = _status(local_env, prefect_server)
    azure_tags, local_tags = azure["models"][0]["tags"], local["models"][0]["tags"]
    assert float(azure_tags["mse"]) == pytest.approx(float(local_tags["mse"]), abs=1e-6)
    assert sorted(azure_tags) == sorted(local_tags)
    assert {k: v for k, v in azure_tags.items() if k not in _PER_RUN} == {
        k: v for k, v in local_tags.items() if k not in _PER_RUN
    }
    # The metrics the training job logged where each backend keeps them (Azure ML: the job's MLflow run, which
    # the training command logged to in the job), the same as the version's tags on both.
    for report, tags in ((azure, azure_tags), (local, local_tags)):
        assert report["models"][0]["job"] == tags["run_id"]
        assert report["models"][0]["logged_metrics"]["mse"] == pytest.approx(float(tags["mse"]))

    sdk = [r for r in emulated.requests() if "azure-ai-ml" in r["user_agent"]]
    assert [r["path"].rsplit("/", 1)[-1] for r in sdk if r["method"] == "PUT" and "/jobs/" in r["path"]] == [
        azure_tags["run_id"]
    ]
    assert any(
        r["method"] == "POST" and "/codes/" in r["path"] and r["path"].endswith("startPendingUpload") for r in sdk
    )
    uploads = emulated.requests("PUT", "-codes/")  # blob uploads: the SDK's storage client, on the SAS it was given
    assert any(
        r["path"].endswith("/model/train.py") and "azsdk-python-storage-blob" in r["user_agent"] for r in uploads
    )
    assert next(r["path"].rsplit("/", 3)[-3:] for r in sdk if r["method"] == "PUT" and "/models/" in r["path"]) == [
        MODEL,
        "versions",
        "1",
    ]


def test_a_killed_run_re_attaches_to_its_job_instead_of_submitting_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefect_server: str, own_emulator: None
) -> None:
    emulated = start_emulated(tmp_path / "mlops", monkeypatch, max_jobs=0)  # no compute: the job waits, Queued
    try:
        run = subprocess.Popen(
            [sys.executable, "-m", "deployments.cli", "train"],
            env={**os.environ, **emulated.env, "PREFECT_API_URL": prefect_server},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 180
        while not emulated.jobs() and time.monotonic() < deadline and run.poll() is None:
            time.sleep(0.2)
        assert list(emulated.jobs().values()) in (["NotStarted"], ["Queued"]), "the job was not submitted"
        os.killpg(run.pid, signal.SIGKILL)  # the task dies mid-job
        run.wait()
        emulated.restart(max_jobs=1)

        again = _mlops("train", env=emulated.env, api_url=prefect_server)
        assert again.returncode == 0, again.stderr
        assert f"registered: {MODEL} version 1" in again.stdout
        assert list(emulated.jobs().values()) == ["Completed"]  # one job, not two
        assert len(emulated.requests("PUT", "/jobs/")) == 1
    finally:
        emulated.process.stop()


def test_a_failing_job_fails_the_flow_with_the_jobs_own_error(emulated: Emulated, prefect_server: str) -> None:
    bad = emulated.home / "bad.csv"
    bad.parent.mkdir(parents=True, exist_ok=True)
    bad.write_text("age,sex\n1,2\n")
    result = _mlops("train", "--data", str(bad), env=emulated.env, api_url=prefect_server)
    assert result.returncode == 1
    assert "missing column(s) 'bmi'" in result.stderr
    assert "exited with status code 2" in result.stderr
    assert list(emulated.jobs().values()) == ["Failed"]


def test_emulator_status_lists_its_jobs(emulated: Emulated, prefect_server: str) -> None:
    status = _mlops("emulator", "status", "--json", env=emulated.env, api_url=prefect_server)
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["running"]
    assert report["url"] == emulated.process.url
    assert report["jobs"] == {}
    assert Path(report["ca_bundle"]).is_file()


def test_azure_smoke_trains_registers_and_archives_a_smoke_version(emulated: Emulated, prefect_server: str) -> None:
    result = subprocess.run(
        ["make", "--no-print-directory", "azure-smoke", f"BIN={Path(sys.executable).parent}"],
        capture_output=True,
        text=True,
        env={**os.environ, **emulated.env, "PREFECT_API_URL": prefect_server},
        cwd=Path(__file__).resolve().parents[2],
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == "azure-smoke: passed"
    assert f"archived {MODEL}-smoke:1" in result.stdout
    listed = _status(emulated.env, prefect_server)["models"]
    assert listed == []  # archived: out of listings
    assert [status for name, status in emulated.jobs().items() if name.startswith("smoke-")] == ["Completed"]
