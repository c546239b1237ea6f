"""`mlops train` and `mlops status` with MLOPS_BACKEND=azureml against the emulator: the issue's acceptance, end to end."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from deployments import azure_smoke
from models.diabetes.score import predict_locally
from tests.support.cli import run_mlops
from tests.support.emulator import Emulated, start_emulated

MODEL = "diabetes_regression_model.pkl"
# Tags whose values name the run itself; every other tag must equal the local backend's.
_PER_RUN = {"run_id", "prefect_flow_run_id"}
SAMPLE_REQUEST = Path(__file__).resolve().parents[2] / "models" / "diabetes" / "sample-request.json"


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
        r["path"].endswith("/models/diabetes/train.py") and "azsdk-python-storage-blob" in r["user_agent"]
        for r in uploads
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
            [sys.executable, "-m", "cli.main", "train"],
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
    # data that passes the package's data checks (bad data never reaches a job), and a parameter only the training
    # command refuses: the job runs and fails with its own error line
    result = _mlops("train", "--alpha", "-1", env=emulated.env, api_url=prefect_server)
    assert result.returncode == 1
    assert "training.alpha must be a non-negative number, got -1" in result.stderr
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


def _make_smoke_command(*variables: str) -> str:
    """The command `make azure-smoke` runs (`make -n`: printed, not run)."""
    result = subprocess.run(
        ["make", "-n", "--no-print-directory", "azure-smoke", f"BIN={Path(sys.executable).parent}", *variables],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        check=False,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip().splitlines()[-1]


def _smoke(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """`python -m deployments.azure_smoke` in this process (a child would pay 3 s of imports); its stdout."""
    capsys.readouterr()
    code = azure_smoke.main(list(args))
    out, err = capsys.readouterr()
    assert code == 0, out + err
    return out


def _costs(stdout: str) -> dict[str, str]:
    """Each step's title and the cost line printed before the step ran."""
    lines = stdout.splitlines()
    starts = [i for i, line in enumerate(lines) if re.match(r"step \d/\d: ", line)]
    return {lines[i].split(": ", 1)[1]: lines[i + 1] for i in starts}


def _writes(log: list[dict[str, Any]], path: str) -> list[tuple[str, int]]:
    """Method and status of each write to the resource at `path` (an ARM path's tail)."""
    return [(r["method"], r["status"]) for r in log if r["method"] in ("PUT", "DELETE") and r["path"].endswith(path)]


def _listed(emulated: Emulated, kind: str) -> set[str]:
    found = emulated.process.get(f"{emulated.workspace}/{kind}?api-version=2024-01-01-preview")["value"]
    return {str(e["name"]) for e in found}


def test_azure_smoke_downloads_the_version_batch_scores_and_deletes_its_batch_endpoint(
    emulated: Emulated, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _make_smoke_command().endswith("-m deployments.azure_smoke")
    out = _smoke(capsys)
    lines = out.splitlines()
    assert lines[-1] == "azure-smoke: passed"
    assert f"  archived {MODEL}-smoke:1" in lines
    assert (
        emulated.process.get(f"{emulated.workspace}/models/{MODEL}-smoke/versions/1?api-version=2024-01-01-preview")[
            "properties"
        ]["stage"]
        == "Archived"
    )
    jobs = emulated.jobs()
    assert [status for name, status in jobs.items() if name.startswith("smoke-")] == ["Completed"]

    # each step said its cost first: the cluster and its SKU from settings, a meter, no invented price
    costs = _costs(out)
    assert len(costs) == 6
    assert all(cost.startswith("  cost: ") for cost in costs.values())
    training = next(cost for title, cost in costs.items() if title.startswith("training job smoke-"))
    assert "1 node of compute cluster train-cluster (STANDARD_DS2_V2, lowpriority, 0-4 nodes)" in training
    assert "billed per node-minute at your subscription's rate for STANDARD_DS2_V2" in training
    assert not re.search(r"[$€£]|USD|EUR", out)

    # the version registered from the job's output was downloaded again (storage, after its PUT) and predicted
    log = emulated.requests()
    registered = next(
        i for i, r in enumerate(log) if r["method"] == "PUT" and r["path"].endswith(f"/models/{MODEL}-smoke/versions/1")
    )
    assert any(
        r["method"] == "GET" and r["path"].endswith("/model.joblib") and "storage-blob" in r["user_agent"]
        for r in log[registered:]
    )
    downloaded = emulated.home / "azureml" / "models" / f"{MODEL}-smoke" / "1"
    predicted = predict_locally(downloaded, json.loads(SAMPLE_REQUEST.read_text())["data"])
    assert f"  downloaded 5 files, the bytes registered; the model predicts {predicted}" in lines

    # a batch job on the smoke batch endpoint scored every row; the endpoint (with its deployment) is gone
    names = azure_smoke.smoke_names(emulated.settings())
    batch = names["aml_batch_endpoint_name"]
    assert batch.startswith("smoke-batch-")
    assert batch != emulated.settings().aml_batch_endpoint_name
    assert any(
        r["method"] == "POST"
        and r["path"].endswith(f"/inference/batch/{emulated.subscription}/mlops-RG/mlops-aml-ws/{batch}/jobs")
        for r in log
    )  # the invoke
    assert [s for n, s in jobs.items() if n.startswith("batch-")] == ["Completed"]
    assert "  the batch job scored 20 rows in 2 mini-batches, each with a prediction" in lines
    assert _writes(log, f"/batchEndpoints/{batch}") == [("PUT", 201), ("PUT", 200), ("DELETE", 202)]  # defaults set
    real = emulated.settings().aml_batch_endpoint_name
    assert _listed(emulated, "batchEndpoints") & {batch, real} == {real}  # gone; the real one kept

    # without ONLINE=1 no online endpoint of the smoke's was ever created
    assert _writes(log, f"/onlineEndpoints/{names['endpoint_name']}") == []
    assert any(line.startswith("online deployment: skipped") for line in lines)


def test_azure_smoke_online_deploys_asks_and_deletes_its_own_endpoint(
    emulated: Emulated, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _make_smoke_command("ONLINE=1").endswith("-m deployments.azure_smoke --online")
    out = _smoke(capsys, "--online")
    lines = out.splitlines()
    assert lines[-1] == "azure-smoke: passed"
    name = azure_smoke.smoke_names(emulated.settings())["endpoint_name"]
    assert name.startswith("smoke-online-")
    assert name != emulated.settings().endpoint_name

    cost = _costs(out)[f"online deployment {name}/smoke of {MODEL}-smoke:1, then deleting the endpoint"]
    assert cost.startswith(
        "  cost: 1 x Standard_DS3_v2 (the online deployment's instances), billed per instance-minute"
    )
    assert "endpoint ~1.5 min, deployment ~6.5 min" in cost
    assert "+10-20 min" in cost

    log = emulated.requests()
    assert _writes(log, f"/onlineEndpoints/{name}") == [("PUT", 201), ("DELETE", 202)]
    assert _writes(log, f"/onlineEndpoints/{name}/deployments/smoke") == [("PUT", 201)]
    real = emulated.settings().endpoint_name
    assert _listed(emulated, "onlineEndpoints") & {name, real} == {real}  # gone; the real one kept

    # the deployment answered the sample request with what the downloaded model predicts here
    downloaded = emulated.home / "azureml" / "models" / f"{MODEL}-smoke" / "1"
    predicted = predict_locally(downloaded, json.loads(SAMPLE_REQUEST.read_text())["data"])
    assert f"  the deployment answered {predicted}, as the downloaded model predicts" in lines
