"""The emulator as a service: it validates what it is sent and answers errors in ARM's format; its state survives a restart."""

from __future__ import annotations

import functools
import json
import ssl
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from azure.ai.ml.entities import CodeConfiguration, ManagedOnlineDeployment, ManagedOnlineEndpoint, Model
from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas

from infra.azureml import AzureMLBackend
from infra.factory import open_backend
from tests.support.emulator import Emulated, start_emulated

API = {"api-version": "2025-01-01-preview"}


@contextmanager
def _client(emulated: Emulated) -> Iterator[httpx.Client]:
    trust = ssl.create_default_context(cafile=str(emulated.home / "emulator" / "tls" / "ca.pem"))
    with httpx.Client(base_url=emulated.process.url, verify=trust, headers={"Authorization": "Bearer t"}) as c:
        yield c


@pytest.fixture
def client(emulated: Emulated) -> Iterator[httpx.Client]:
    with _client(emulated) as c:
        yield c


@pytest.fixture
def ws(emulated: Emulated) -> str:
    """The test's workspace (ARM path)."""
    return emulated.workspace


def _error(answer: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = answer.json()["error"]
    assert set(body) >= {"code", "message", "details", "additionalInfo"}
    assert answer.headers["x-ms-response-type"] == "error"
    return body


def _environment(client: httpx.Client, ws: str) -> str:
    answer = client.put(f"{ws}/environments/env/versions/1", params=API, json={"properties": {"image": "img"}})
    assert answer.status_code == 201
    assert answer.headers["Location"].endswith("/environments/env/versions/1?api-version=2025-01-01-preview")
    return str(answer.json()["id"])


def _job(environment: str, **changes: Any) -> dict[str, Any]:
    properties = {"jobType": "Command", "command": "echo hello", "environmentId": environment, **changes}
    return {"properties": properties}


def test_every_arm_call_needs_an_api_version_and_a_token(ws: str, client: httpx.Client) -> None:
    missing = client.get(ws)
    assert missing.status_code == 400
    assert _error(missing)["code"] == "MissingApiVersionParameter"
    bad = client.get(ws, params={"api-version": "latest"})
    assert _error(bad)["code"] == "InvalidApiVersionParameter"
    anonymous = client.get(ws, params=API, headers={"Authorization": ""})
    assert anonymous.status_code == 401
    assert _error(anonymous)["code"] == "AuthenticationFailed"


def test_an_unknown_workspace_and_an_unknown_route_are_404(ws: str, client: httpx.Client) -> None:
    other = client.get(ws.replace("mlops-aml-ws", "elsewhere"), params=API)
    assert other.status_code == 404
    assert "elsewhere" in _error(other)["message"]
    unknown = client.get(f"{ws}/featurestoreEntities/customers", params=API)
    assert unknown.status_code == 404
    assert _error(unknown)["code"] == "NoRegisteredProviderFound"


def test_a_job_is_validated_before_it_is_accepted(ws: str, client: httpx.Client, emulated: Emulated) -> None:
    environment = _environment(client, ws)
    cases = {
        "bad name!": (_job(environment), "job name 'bad name!' is invalid"),
        "no-command": (_job(environment, command=" "), "non-empty 'command'"),
        "no-env": (_job(environment.replace("/env/", "/missing/")), "does not exist"),
        "sweep": (_job(environment, jobType="Sweep"), "runs Command jobs only"),
        "unknown-input": (
            _job(environment, command="cat ${{inputs.data}}"),
            "${{inputs.data}}, which the job does not define",
        ),
        "bad-input": (_job(environment, inputs={"x": {"jobInputType": "table", "uri": "y"}}), "jobInputType 'table'"),
    }
    for name, (body, expected) in cases.items():
        answer = client.put(f"{ws}/jobs/{name}", params=API, json=body)
        assert answer.status_code == 400, name
        assert expected in _error(answer)["message"], name
    assert emulated.jobs() == {}


def test_a_command_job_moves_to_completed_and_a_second_put_does_not_run_it_again(
    ws: str, client: httpx.Client, emulated: Emulated
) -> None:
    environment = _environment(client, ws)
    created = client.put(f"{ws}/jobs/hello", params=API, json=_job(environment, tags={"a": "1"}))
    assert created.status_code == 201
    assert created.json()["properties"]["status"] == "NotStarted"
    assert created.json()["properties"]["outputs"]["default"]["uri"].endswith("/ExperimentRun/dcid.hello")
    _wait(client, ws, "hello", "Completed")
    again = client.put(f"{ws}/jobs/hello", params=API, json=_job(environment, tags={"a": "2"}))
    assert again.status_code == 200
    assert again.json()["properties"]["tags"] == {"a": "2"}
    assert again.json()["properties"]["status"] == "Completed"
    details = client.get(f"/history/v1.0{ws}/runs/hello/details", params={"api-version": "v1.0"}).json()
    assert details["status"] == "Completed"
    log = client.get(details["logFiles"]["user_logs/std_log.txt"])
    assert log.text == "hello\n"  # the command really ran


def test_a_queued_job_is_canceled_and_its_cancel_operation_completes(private_emulated: Emulated) -> None:
    emulated, ws = private_emulated, private_emulated.workspace
    emulated.restart(max_jobs=0)
    with _client(emulated) as client:
        environment = _environment(client, ws)
        assert client.put(f"{ws}/jobs/waiting", params=API, json=_job(environment)).status_code == 201
        cancel = client.post(f"{ws}/jobs/waiting/cancel", params=API)
        assert cancel.status_code == 202
        operation = client.get(cancel.headers["Location"])
        assert operation.status_code == 200
    assert emulated.jobs() == {"waiting": "Canceled"}


def test_state_survives_a_restart_and_an_interrupted_job_runs_again(private_emulated: Emulated) -> None:
    emulated, ws = private_emulated, private_emulated.workspace
    with _client(emulated) as client:
        environment = _environment(client, ws)
        emulated.restart(max_jobs=0)
        assert client.put(f"{ws}/jobs/later", params=API, json=_job(environment)).status_code == 201
        emulated.restart(max_jobs=1)  # the queued job is still there and now runs
        _wait(client, ws, "later", "Completed")
        assert client.get(f"{ws}/environments/env/versions/1", params=API).status_code == 200


def test_asset_versions_are_immutable_but_their_tags_change(ws: str, client: httpx.Client) -> None:
    url = f"{ws}/models/m/versions/1"
    body = {"properties": {"modelUri": "azureml://datastores/workspaceblobstore/paths/m/", "tags": {"a": "1"}}}
    assert client.put(url, params=API, json=body).status_code == 201
    body["properties"]["tags"] = {"a": "2"}
    updated = client.put(url, params=API, json=body)
    assert updated.status_code == 200
    assert updated.json()["properties"]["tags"] == {"a": "2"}
    body["properties"]["modelUri"] = "azureml://datastores/workspaceblobstore/paths/other/"
    conflict = client.put(url, params=API, json=body)
    assert conflict.status_code == 400  # Azure's UserError for a version written again (issue 22, point 6)
    assert _error(conflict) | {"details": None} == _error(conflict) | {
        "code": "UserError",
        "message": "Asset paths cannot be updated.",
        "details": None,
    }
    missing_job = client.put(
        f"{ws}/models/m/versions/2",
        params=API,
        json={"properties": {"modelUri": "azureml://jobs/nope/outputs/model/paths/x"}},
    )
    assert missing_job.status_code == 400
    assert "job 'nope' does not exist" in _error(missing_job)["message"]


def _wait(client: httpx.Client, ws: str, name: str, status: str, timeout: float = 60) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get(f"{ws}/jobs/{name}", params=API).json()["properties"]["status"] == status:
            return
        time.sleep(0.1)
    raise AssertionError(f"job {name} did not reach {status}")


def test_a_job_past_its_time_limit_is_stopped_and_fails_saying_so(
    ws: str, client: httpx.Client, emulated: Emulated
) -> None:
    environment = _environment(client, ws)
    body = _job(environment, command="sleep 30", limits={"jobLimitsType": "Command", "timeout": "PT1S"})
    assert client.put(f"{ws}/jobs/slow", params=API, json=body).status_code == 201
    _wait(client, ws, "slow", "Failed", timeout=20)
    details = client.get(f"/history/v1.0{ws}/runs/slow/details", params={"api-version": "v1.0"}).json()
    assert "ran past its timeout" in details["error"]["error"]["message"]


def test_what_azure_accepts_is_accepted(ws: str, client: httpx.Client) -> None:
    """Issue 22, point 10: recorded 201s the emulator refused. A 32-hex environment version (anonymous
    environments: batch_services/...test_mlflow_batch_endpoint_create_and_update.json), a curated environment's
    short id and a registry environment (command_job/...test_command_job_invalid_datastore.json) on a job."""
    long_version = "2d2385fe588fafa23a66ec2fec279efb"
    put = client.put(f"{ws}/environments/anon/versions/{long_version}", params=API, json={"properties": {"image": "i"}})
    assert put.status_code == 201, put.text
    too_long = client.put(f"{ws}/data/d/versions/{'1' * 31}", params=API, json={"properties": {"dataUri": "x"}})
    assert too_long.status_code == 400  # data assets keep 30 (azureml-assets#295)
    for curated in (
        "azureml:AzureML-sklearn-1.0-ubuntu20.04-py38-cpu:33",
        "azureml://registries/azureml/environments/sklearn-1.5/labels/latest",
    ):
        job = client.put(f"{ws}/jobs/curated-{len(curated)}", params=API, json=_job(curated))
        assert job.status_code == 201, job.text
        assert job.json()["properties"]["environmentId"] == curated  # echoed as sent, as recorded


def test_what_azure_refuses_is_refused(ws: str, client: httpx.Client) -> None:
    """Issue 22, point 10: what Azure refuses and the emulator accepted. A job on a compute that does not exist
    and `assetVersion` on a uri_folder output (both recorded 400s: command_job/...test_command_job_register_output.json);
    mirror traffic to two deployments or over 50 percent (Microsoft Learn, safe rollout; no recorded refusal)."""
    environment = _environment(client, ws)
    no_compute = client.put(
        f"{ws}/jobs/no-compute", params=API, json=_job(environment, computeId=f"{ws}/computes/nope")
    )
    assert no_compute.status_code == 400
    assert _error(no_compute)["message"] == "Unknown compute target 'nope'."
    output = {"out": {"jobOutputType": "uri_folder", "assetName": "o", "assetVersion": "2", "mode": "Upload"}}
    versioned = client.put(f"{ws}/jobs/versioned-output", params=API, json=_job(environment, outputs=output))
    assert versioned.status_code == 400
    assert "Could not find member 'assetVersion' on object of type 'UriFolderJobOutput'" in _error(versioned)["message"]
    endpoint = f"{ws}/onlineEndpoints/mirror-check"
    assert client.put(endpoint, params=API, json={"location": "eastus", "properties": {"authMode": "Key"}}).is_success
    for mirror, problem in (({"a": 10, "b": 10}, "one deployment only"), ({"a": 60}, "at most 50 percent")):
        body = {"location": "eastus", "properties": {"authMode": "Key", "traffic": {}, "mirrorTraffic": mirror}}
        refused = client.put(endpoint, params=API, json=body)
        assert refused.status_code == 400
        assert problem in _error(refused)["message"]


def test_a_batch_endpoint_keeps_its_properties_and_takes_entra_tokens_only(ws: str, client: httpx.Client) -> None:
    """Issue 22, point 10: the emulator dropped a batch endpoint's `properties` and ignored its `authMode`.
    Recorded (batch_services/...test_batch_endpoint_create.json): p1 and p2 come back beside the service's
    `BatchEndpointCreationApiVersion` and `azureml.onlineendpointid`, `aadToken` as `AADToken`. Microsoft Learn:
    batch endpoints take Microsoft Entra tokens only; properties can be added, not removed or altered."""
    endpoint = f"{ws}/batchEndpoints/props-check"
    body = {"location": "eastus", "properties": {"authMode": "aadToken", "properties": {"p1": "v1", "p2": "v2"}}}
    created = client.put(endpoint, params=API, json=body)
    assert created.status_code == 201, created.text
    answered = created.json()["properties"]
    assert answered["authMode"] == "AADToken"
    assert answered["properties"] == {
        "p1": "v1",
        "p2": "v2",
        "BatchEndpointCreationApiVersion": API["api-version"],
        "azureml.onlineendpointid": created.json()["id"],
    }
    again = {"location": "eastus", "properties": {"authMode": "AADToken", "properties": {"p1": "changed", "p3": "v3"}}}
    updated = client.put(endpoint, params=API, json=again)
    assert updated.status_code == 200, updated.text
    kept = client.get(endpoint, params=API).json()["properties"]["properties"]
    assert (kept["p1"], kept["p2"], kept["p3"]) == ("v1", "v2", "v3")
    key = {"location": "eastus", "properties": {"authMode": "Key"}}
    refused = client.put(f"{ws}/batchEndpoints/key-check", params=API, json=key)
    assert refused.status_code == 400
    assert "Microsoft Entra tokens only" in _error(refused)["message"]


def test_in_realistic_mode_an_endpoint_is_creating_with_no_scoring_uri_until_its_operation_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, own_emulator: None
) -> None:
    """Issue 22, point 8, as recorded (online_services/...test_online_deployment.json): the endpoint PUT answers
    `Creating` with a null scoring URI and `x-ms-async-operation-timeout: PT30M`; its operation reads `Updating`
    until the endpoint is made (50.6 s, times the scale here: 2.5 s), then `Succeeded` with a scoring URI."""
    emulated = start_emulated(tmp_path / "mlops", monkeypatch, lro_scale=0.05)
    try:
        with _client(emulated) as client:
            endpoint = f"{emulated.workspace}/onlineEndpoints/slow-one"
            started = time.monotonic()
            put = client.put(endpoint, params=API, json={"location": "eastus", "properties": {"authMode": "Key"}})
            assert put.status_code == 201, put.text
            assert put.headers["x-ms-async-operation-timeout"] == "PT30M"
            assert (put.json()["properties"]["provisioningState"], put.json()["properties"]["scoringUri"]) == (
                "Creating",
                None,
            )
            status_url = put.headers["Azure-AsyncOperation"]
            polled = client.get(status_url)
            assert polled.json()["status"] == "Updating"
            assert 0 < float(polled.headers["Retry-After"]) <= 50.6 * 0.05
            assert client.get(endpoint, params=API).json()["properties"]["provisioningState"] == "Creating"
            while client.get(status_url).json()["status"] == "Updating":
                assert time.monotonic() - started < 30
                time.sleep(0.1)
            assert time.monotonic() - started >= 50.6 * 0.05  # the operation took its scaled time
            assert client.get(status_url).json()["status"] == "Succeeded"
            done = client.get(endpoint, params=API).json()["properties"]
            assert done["provisioningState"] == "Succeeded"
            assert done["scoringUri"].startswith("https://127.0.0.1:")
    finally:
        emulated.process.stop()


def test_a_compute_answer_never_echoes_its_admin_password(ws: str, client: httpx.Client) -> None:
    """Azure's recorded compute answers hold the admin account with `adminUserPassword` null
    (compute/e2etests/test_compute.pyTestComputetest_aml_compute_create_and_delete.json); the emulator echoed it."""
    account = {"adminUserName": "ops", "adminUserPassword": "not-a-real-secret", "adminUserSshPublicKey": ""}
    body = {
        "location": "eastus",
        "properties": {"computeType": "AmlCompute", "properties": {"userAccountCredentials": account}},
    }
    created = client.put(f"{ws}/computes/with-admin", params=API, json=body)
    assert created.status_code == 201, created.text
    for answer in (created.json(), client.get(f"{ws}/computes/with-admin", params=API).json()):
        assert answer["properties"]["properties"]["userAccountCredentials"] == {**account, "adminUserPassword": None}
        assert "not-a-real-secret" not in json.dumps(answer)


def test_a_job_logs_to_its_own_mlflow_run_as_in_azure_ml(ws: str, client: httpx.Client) -> None:
    """Azure ML sets MLflow's variables in a job's process, so MLflow's own client logs to the job's run
    (azureml-mlflow reads MLFLOW_TRACKING_URI, _TOKEN and _RUN_ID there); runs/get answers what it logged."""
    environment = _environment(client, ws)
    logging = (
        "import mlflow, os; print(os.environ['MLFLOW_RUN_ID']); "
        "mlflow.log_param('alpha', '0.4'); mlflow.log_metric('mse', 3.5); mlflow.log_metric('mse', 2.5, step=1)"
    )
    created = client.put(f"{ws}/jobs/tracked", params=API, json=_job(environment, command=f'python -c "{logging}"'))
    assert created.status_code == 201
    _wait(client, ws, "tracked", "Completed")
    runs = f"/mlflow/v2.0{ws}/api/2.0/mlflow/runs"
    run = client.get(f"{runs}/get", params={"run_id": "tracked"}).json()["run"]
    assert run["info"]["run_id"] == "tracked"
    assert run["info"]["status"] == "FINISHED"
    assert run["data"]["params"] == [{"key": "alpha", "value": "0.4"}]
    assert [(m["key"], m["value"], m["step"]) for m in run["data"]["metrics"]] == [("mse", 2.5, 1)]  # the latest
    changed = client.post(f"{runs}/log-parameter", json={"run_id": "tracked", "key": "alpha", "value": "0.5"})
    assert changed.status_code == 400
    assert changed.json()["error_code"] == "INVALID_PARAMETER_VALUE"  # MLflow's parameters are immutable
    unknown = client.get(f"{runs}/get", params={"run_id": "no-such-job"})
    assert (unknown.status_code, unknown.json()["error_code"]) == (404, "RESOURCE_DOES_NOT_EXIST")
    anonymous = client.get(f"{runs}/get", params={"run_id": "tracked"}, headers={"Authorization": ""})
    assert anonymous.status_code == 401


@pytest.mark.parametrize("step", ["Starting", "Preparing"])
def test_a_cancel_between_two_steps_ends_the_job_canceled(step: str, tmp_path: Path) -> None:
    """A cancel that lands while the runner moves a job from one step to the next (`CancelRequested` instead of
    the step the runner expects) ends the job Canceled: it stayed CancelRequested for good, and the SDK's
    `begin_cancel(...).result()` then polled the cancel operation forever (seen in the recordings contract test)."""
    from azureml_emulator.core.emulator import Emulator
    from azureml_emulator.runner import JobRunner

    emulator = Emulator(tmp_path, 1)
    body = {"properties": {"jobType": "Command", "command": "true", "outputs": {}}}
    assert emulator.store.insert_job("s/r/w", "job", body)
    emulator.store.set_status("s/r/w", "job", step)
    emulator.store.set_status("s/r/w", "job", "CancelRequested")  # the cancel handler's move for a started job
    JobRunner(emulator, slots=0)._run("s/r/w", "job")
    record = emulator.store.get_job("s/r/w", "job")
    assert record is not None
    assert (record["status"], bool(record["ended"])) == ("Canceled", True)


def test_an_expirable_secret_is_an_account_sas_that_the_blob_service_checks(
    ws: str, client: httpx.Client, emulated: Emulated
) -> None:
    """Asked for an expirable secret, Azure answers an account SAS (`?sv=..&sig=..&se=..&srt=co&ss=bf&sp=rcuwdl`:
    dataset/e2etests/test_data.pyTestDatatest_create_uri_file.json at 0f205ad, entry 2); asked for none, the account
    key (the same recording at 2238c1b). Storage refuses a SAS past its expiry, with another signature, or used for
    what it does not allow; tokens signed here by azure-storage-blob with the key show the signatures are Azure's."""
    secrets = f"{ws}/datastores/workspaceblobstore/listSecrets"
    key = client.post(secrets, params=API).json()
    assert key["secretsType"] == "AccountKey"
    answer = client.post(secrets, params=API, json={"expirableSecret": True, "expireAfterHours": 1}).json()
    assert set(answer) == {"secretsType", "sasToken"}
    assert answer["secretsType"] == "Sas"
    token = answer["sasToken"]
    fields = {name: values[0] for name, values in parse_qs(token.lstrip("?")).items()}
    assert (token[0], fields["ss"], fields["srt"], fields["sp"]) == ("?", "bf", "co", "rcuwdl")
    expiry = datetime.strptime(fields["se"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) - datetime.now(UTC)
    assert timedelta(minutes=55) < expiry <= timedelta(hours=1)
    blob = f"/mlopsemulator.blob.emulator.local/azureml-blobstore/sas/{uuid.uuid4().hex}.txt"
    signed = functools.partial(generate_account_sas, "mlopsemulator", key["key"], ResourceTypes(object=True))
    read_only = signed(AccountSasPermissions(read=True), datetime.now(UTC) + timedelta(hours=1))
    expired = signed(AccountSasPermissions(read=True), datetime.now(UTC) - timedelta(minutes=5))
    trust = ssl.create_default_context(cafile=str(emulated.home / "emulator" / "tls" / "ca.pem"))
    with httpx.Client(base_url=emulated.process.url, verify=trust) as storage:  # no bearer token: the SAS alone
        written = storage.put(blob + token, content=b"secret", headers={"x-ms-blob-type": "BlockBlob"})
        assert written.status_code == 201, written.text
        assert storage.get(f"{blob}?{read_only}").content == b"secret"
        refusals = {
            "tampered": storage.get(blob + token.replace("sp=rcuwdl", "sp=rcuwdla")),
            "expired": storage.get(f"{blob}?{expired}"),
            "read-only": storage.put(f"{blob}?{read_only}", content=b"x", headers={"x-ms-blob-type": "BlockBlob"}),
        }
    assert {name: (r.status_code, r.headers["x-ms-error-code"]) for name, r in refusals.items()} == {
        "tampered": (403, "AuthenticationFailed"),
        "expired": (403, "AuthenticationFailed"),
        "read-only": (403, "AuthorizationPermissionMismatch"),
    }


_FILE_MODEL_SCORE = """
import os

def init():
    global found
    found = open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model.pkl")).read()

def run(raw):
    return {"model": found}
"""


def test_a_single_file_model_deploys_with_the_file_in_its_model_dir(emulated: Emulated, tmp_path: Path) -> None:
    """Azure registers a model whose path is one file (model/e2etests/test_model.pyTestModeltest_model_archive_restore_
    version.json: modelUri .../model.pkl, 201) and puts that file in AZUREML_MODEL_DIR itself (Microsoft Learn,
    "Specify model to deploy for use in online endpoint"); the emulator copied folders only and refused it."""
    backend = open_backend(emulated.settings())
    assert isinstance(backend, AzureMLBackend)
    ml = backend.client
    (tmp_path / "model.pkl").write_text("a model in one file")
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "score.py").write_text(_FILE_MODEL_SCORE)
    model = ml.models.create_or_update(Model(name="file-model", version="1", path=tmp_path / "model.pkl"))
    assert model.path.endswith("/model.pkl")
    name = f"file-model-{uuid.uuid4().hex[:8]}"
    ml.online_endpoints.begin_create_or_update(ManagedOnlineEndpoint(name=name, auth_mode="key")).result()
    deployment = ManagedOnlineDeployment(
        name="blue",
        endpoint_name=name,
        model="azureml:file-model:1",
        code_configuration=CodeConfiguration(code=str(tmp_path / "code"), scoring_script="score.py"),
        environment="azureml:AzureML-sklearn-1.0-ubuntu20.04-py38-cpu:33",
        instance_type="Standard_DS3_v2",
        instance_count=1,
    )
    try:
        ml.online_deployments.begin_create_or_update(deployment).result()
        scoring, key = ml.online_endpoints.get(name).scoring_uri, ml.online_endpoints.get_keys(name).primary_key
        trust = ssl.create_default_context(cafile=str(emulated.home / "emulator" / "tls" / "ca.pem"))
        with httpx.Client(verify=trust, trust_env=False) as caller:  # closed after: the server's stop waits for none
            headers = {"Authorization": f"Bearer {key}", "azureml-model-deployment": "blue"}
            answer = caller.post(scoring, json={}, headers=headers)
        assert answer.json() == {"model": "a model in one file"}
    finally:
        ml.online_endpoints.begin_delete(name).result()


def test_a_single_file_model_is_a_batch_jobs_model_folder_holding_the_file(tmp_path: Path) -> None:
    """A batch job's model input that is one blob (a single-file model, which Azure registers) arrives as a
    folder holding that file, the AZUREML_MODEL_DIR the batch driver is given; it was refused as an empty folder."""
    from azureml_emulator.core.emulator import Emulator
    from azureml_emulator.runner import JobRunner

    emulator = Emulator(tmp_path, 1)
    emulator.blobs.write("azureml-blobstore", "models/m/model.pkl", b"weights", content_type="x", metadata={})
    uri = f"{emulator.blob_base}/azureml-blobstore/models/m/model.pkl"
    properties = {"inputs": {"model": {"jobInputType": "custom_model", "uri": uri}}}
    values = JobRunner(emulator, slots=0)._materialise_inputs("s/r/w", properties, tmp_path / "inputs")
    assert values["model"].is_dir()
    assert (values["model"] / "model.pkl").read_bytes() == b"weights"
