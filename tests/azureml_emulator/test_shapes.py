"""The emulator's answers have the shape of the real service's, checked against recorded real responses.

`recorded_shapes.json` holds the key skeletons (names, nesting, value types) of responses that the
azure-ai-ml SDK's own tests recorded against Azure (see its "about"). Each case below makes the same
request of the emulator and requires every recorded key, with the same type where both are set.
"""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.ai.ml.entities import Workspace

from azureml_emulator.process import EmulatorProcess
from infra.azureml import AzureMLBackend, entities, shared_registry
from infra.backend import TrainSpec
from infra.errors import JobFailedError
from infra.factory import open_backend
from models.diabetes.data import write_sample_csv
from tests.support.emulator import Emulated, join_emulator

SHAPES = json.loads((Path(__file__).parent / "recorded_shapes.json").read_text())["cases"]
# Keys left out on purpose, with the reason.
OMITTED = {
    "workspace": {
        "properties.sdkTelemetryAppInsightsKey": "it would make the SDK send telemetry to Application Insights",
        "properties.notebookInfo.resourceId": "the emulator hosts no notebooks (notebookInfo is null)",
        "properties.notebookInfo.fqdn": "as above",
        "properties.notebookInfo.isPrivateLinkEnabled": "as above",
        "properties.notebookInfo.notebookPreparationError": "as above",
    },
}
# Maps whose keys are names the user (or the job) chose: their values are compared with the recorded one's, not their keys.
FREE_FORM = {
    "tags",
    "properties.properties",
    "runMetadata.properties",
    "flavors",
    "environmentVariables",
    "parameters",
    "messageParameters",
    "inputs",
    "outputs",
    "registryFqdns",
}
_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}


def mismatches(recorded: Any, ours: Any, path: str = "") -> list[str]:
    """Where `ours` lacks a key of `recorded`, or holds a value of another type; [] when it has the shape."""
    if isinstance(recorded, dict) and any(path == name or path.endswith("." + name) for name in FREE_FORM):
        if not isinstance(ours, dict):
            return [f"{path}: expected an object"]
        found = [
            f"{path}.default: missing"
            for _ in [0]
            if path.endswith("outputs") and "default" in recorded and "default" not in ours
        ]
        templates = [v for v in recorded.values() if isinstance(v, dict)]
        for key, value in ours.items():
            if templates and isinstance(value, dict):
                found += mismatches(recorded.get(key, templates[0]), value, f"{path}.{key}")
        return found
    if isinstance(recorded, dict):
        if not isinstance(ours, dict):
            return [f"{path or '<body>'}: expected an object, got {_TYPES.get(type(ours), 'null')}"]
        found = []
        for key, value in recorded.items():
            where = f"{path}.{key}" if path else key
            if key not in ours:
                found.append(f"{where}: missing")
            elif ours[key] is not None:
                found += mismatches(value, ours[key], where)
        return found
    if isinstance(recorded, list):
        if not isinstance(ours, list):
            return [f"{path}: expected an array"]
        return mismatches(recorded[0], ours[0], f"{path}[0]") if recorded and ours else []
    if recorded == "null" or ours is None:
        return []
    kind = _TYPES.get(type(ours), "?")
    return [] if kind == recorded else [f"{path}: recorded {recorded}, emulator {kind}"]


@pytest.fixture(scope="module")
def answers(emulator_server: EmulatorProcess, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One workspace through the calls the recordings made, and the emulator's answer to each."""
    with pytest.MonkeyPatch.context() as patch:
        emulated = join_emulator(emulator_server, tmp_path_factory.mktemp("shapes") / "mlops", patch)
        return _collect(emulated)


def _collect(emulated: Emulated) -> dict[str, Any]:
    backend = open_backend(emulated.settings())
    data = emulated.home / "data.csv"
    write_sample_csv(data)
    trained = backend.jobs.train(TrainSpec(job_name="shape-job", data=data, parameters={"alpha": 0.4}))
    bad = emulated.home / "bad.csv"
    bad.write_text("age\n1\n")
    with pytest.raises(JobFailedError):
        backend.jobs.train(TrainSpec(job_name="shape-failed", data=bad, parameters={"alpha": 0.4}))
    model = backend.registry.register("shape-model", trained.outputs, tags={}, properties={"job_name": "shape-job"})
    archived = backend.registry.register(
        "shape-archived", trained.outputs, tags={}, properties={"job_name": "shape-job"}
    )
    backend.registry.archive("shape-archived", archived.model.version)
    # online and batch endpoints, compute and a created workspace, through the SDK
    assert isinstance(backend, AzureMLBackend)
    backend.endpoints.ensure("shape-endpoint")
    backend.endpoints.add_deployment("shape-endpoint", "blue", backend.bundles.build(model.model))
    token_backend = open_backend(emulated.settings(aml_endpoint_auth_mode="aml_token"))
    token_backend.endpoints.ensure("shape-token")
    backend.client.batch_endpoints.begin_create_or_update(entities.batch_endpoint(backend.settings)).result()
    backend.client.compute.begin_create_or_update(entities.compute_cluster(backend.settings)).result()
    backend.client.workspaces.begin_create(Workspace(name="shape-ws", location="eastus")).result()
    arm_path = next(r["path"] for r in emulated.requests("PUT", "/providers/Microsoft.Resources/deployments/"))
    # an Azure ML registry, through the SDK (MLClient(registry_name=...)): a version uploaded and created
    emulated.process.registries = [f"{emulated.subscription}/mlops-RG/shape-registry"]
    emulated.process.start()
    shared = shared_registry(emulated.settings(azureml_registry_name="shape-registry"))
    shared_version = shared.register("shape-shared", trained.outputs, tags={}, properties={}).model.version
    registry = (
        f"/mferp/managementfrontend/subscriptions/{emulated.subscription}/resourceGroups/mlops-RG"
        "/providers/Microsoft.MachineLearningServices/registries/shape-registry"
    )
    status_path = next(r["path"] for r in emulated.requests("GET", "/assetstore/v1.0/operations/"))

    ca = emulated.home / "emulator" / "tls" / "ca.pem"
    trust = ssl.create_default_context(cafile=str(ca))
    with httpx.Client(base_url=emulated.process.url, verify=trust, headers={"Authorization": "Bearer t"}) as client:

        def arm(method: str, path: str, api: str, body: Any = None) -> Any:
            answer = client.request(method, path, params={"api-version": api}, json=body)
            return answer.json()

        online = arm("GET", f"{emulated.workspace}/onlineEndpoints/shape-endpoint", "2022-02-01-preview")
        status = online["properties"]["properties"]["AzureAsyncOperationUri"]

        code = arm("GET", f"{emulated.workspace}/codes", "2023-04-01")["value"][0]["name"]
        environment = arm("GET", f"{emulated.workspace}/environments", "2023-04-01-preview")["value"][0]["name"]
        data_version = arm("GET", f"{emulated.workspace}/data/diabetes_ds/versions", "2023-04-01-preview")["value"][0][
            "name"
        ]
        return {
            "workspace": arm("GET", emulated.workspace, "2024-10-01-preview"),
            "discovery": client.get("/discovery").json(),
            "datastore": arm("GET", f"{emulated.workspace}/datastores/workspaceblobstore", "2023-04-01-preview"),
            "list_secrets": arm(
                "POST", f"{emulated.workspace}/datastores/workspaceblobstore/listSecrets", "2023-04-01-preview"
            ),
            "start_pending_upload": arm(
                "POST",
                f"{emulated.workspace}/codes/{code}/versions/2/startPendingUpload",
                "2023-04-01",
                {"pendingUploadType": "TemporaryBlobReference"},
            ),
            "code_version": arm("GET", f"{emulated.workspace}/codes/{code}/versions/1", "2023-04-01"),
            "data_version": arm(
                "GET", f"{emulated.workspace}/data/diabetes_ds/versions/{data_version}", "2023-04-01-preview"
            ),
            "environment_version": arm(
                "GET",
                f"{emulated.workspace}/environments/{environment}/versions/"
                + arm("GET", f"{emulated.workspace}/environments/{environment}/versions", "2023-04-01-preview")[
                    "value"
                ][0]["name"],
                "2023-04-01-preview",
            ),
            "command_job_put": arm("GET", f"{emulated.workspace}/jobs/shape-job", "2025-01-01-preview"),
            "command_job_get": arm("GET", f"{emulated.workspace}/jobs/shape-job", "2024-01-01-preview"),
            "run_data": client.post(
                f"/history/v1.0{emulated.workspace}/rundata",
                params={"api-version": "v1.0"},
                json={"runId": "shape-failed"},
            ).json(),
            "model_version": arm(
                "GET", f"{emulated.workspace}/models/shape-model/versions/{model.model.version}", "2023-08-01-preview"
            ),
            "model_archived": arm(
                "GET",
                f"{emulated.workspace}/models/shape-archived/versions/{archived.model.version}",
                "2023-08-01-preview",
            ),
            "error_not_found": arm("GET", f"{emulated.workspace}/jobs/no-such-job", "2023-04-01-preview"),
            "online_endpoint": online,
            "online_operation_status": client.get(status).json(),
            "online_deployment": arm(
                "GET", f"{emulated.workspace}/onlineEndpoints/shape-endpoint/deployments/blue", "2023-04-01-preview"
            ),
            "list_keys": arm(
                "POST", f"{emulated.workspace}/onlineEndpoints/shape-endpoint/listKeys", "2022-02-01-preview"
            ),
            "endpoint_token": arm(
                "POST", f"{emulated.workspace}/onlineEndpoints/shape-token/token", "2022-02-01-preview"
            ),
            "batch_endpoint": arm(
                "GET",
                f"{emulated.workspace}/batchEndpoints/{emulated.settings().aml_batch_endpoint_name}",
                "2023-10-01",
            ),
            "compute": arm("GET", f"{emulated.workspace}/computes/train-cluster", "2023-08-01-preview"),
            "arm_deployment": arm("GET", arm_path, "2020-06-01"),
            "registry_discovery": arm("GET", "/registrymanagement/v1.0/registries/shape-registry/discovery", "v1.0"),
            "registry_temporary_data_reference": arm(
                "PUT",
                f"{registry}/tempdatarefs/shape-shared/versions/{shared_version + 1}",
                "2021-10-01-dataplanepreview",
                {
                    "assetId": f"azureml://registries/shape-registry/models/shape-shared/versions/{shared_version + 1}",
                    "temporaryDataReferenceType": "TemporaryBlobReference",
                },
            ),
            "registry_operation_status": client.get(status_path).json(),
            "registry_model_version": arm(
                "GET", f"{registry}/models/shape-shared/versions/{shared_version}", "2021-10-01-dataplanepreview"
            ),
            "registry_data_reference": arm(
                "POST",
                f"{registry}/datarefs/shape-shared/versions/{shared_version}",
                "2021-10-01-dataplanepreview",
                {"assetId": f"azureml://registries/shape-registry/models/shape-shared/versions/{shared_version}"},
            ),
        }


@pytest.mark.parametrize("case", sorted(SHAPES))
def test_the_emulator_answers_in_the_recorded_shape(case: str, answers: dict[str, Any]) -> None:
    omitted = OMITTED.get(case, {})
    problems = [p for p in mismatches(SHAPES[case]["shape"], answers[case]) if p.split(":")[0] not in omitted]
    assert problems == [], f"{case}: {problems}  ({SHAPES[case]['request']}) differs from {SHAPES[case]['recording']}"


def test_the_comparison_catches_a_missing_key_and_a_wrong_type() -> None:
    recorded = {"properties": {"isArchived": "boolean", "tags": {}}, "name": "string"}
    assert mismatches(recorded, {"properties": {"isArchived": False, "tags": {}}, "name": "1"}) == []
    assert mismatches(recorded, {"properties": {"isArchived": "no", "tags": {}}, "name": "1"}) == [
        "properties.isArchived: recorded boolean, emulator string"
    ]
    assert mismatches(recorded, {"properties": {"isArchived": True}}) == ["properties.tags: missing", "name: missing"]


def test_the_recordings_cover_at_least_five_operations() -> None:
    assert len(SHAPES) >= 5
    assert all(case["recording"].startswith("python/sdk/ml/azure-ai-ml/tests/recordings/") for case in SHAPES.values())
