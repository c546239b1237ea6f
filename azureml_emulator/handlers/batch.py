"""Batch endpoints and their deployments, and invoking them.

A batch endpoint's invoke submits a job that the job runner really runs: the deployment's scoring
script over the input folder, mini-batch by mini-batch (`azureml_emulator.batch_driver`).
Writes answer as long-running operations (`core.operations`) that are done at once.
"""

from __future__ import annotations

import uuid
from typing import Any

from azureml_emulator.core.arm import (
    BATCH,
    BATCH_DEPLOYMENTS,
    COMPUTES,
    LOCATION,
    PROVIDER,
    system_data,
    workspace_guid,
)
from azureml_emulator.core.context import Context, arm_id
from azureml_emulator.core.endpoints import (
    check_endpoint_name,
    deployment_assets,
    endpoint_or_404,
    endpoint_request,
    list_deployments,
)
from azureml_emulator.core.errors import ArmError, not_found
from azureml_emulator.core.job_bodies import job_timeout, prepare, prepare_pipeline
from azureml_emulator.core.operations import operation, public, read_or_delete
from azureml_emulator.core.routing import Answer, Handler, Routes
from azureml_emulator.core.store import now
from model.paths import code_root


def batch_endpoint(context: Context) -> Answer:
    """GET, PUT or DELETE a batch endpoint, with its deployments on DELETE.

    Long because: the endpoint's checks and the ARM answer (body, provisioning state, Azure-AsyncOperation) follow
    the recorded order, one request's story."""
    name, store = context.params["endpoint"], context.emulator.store
    existing = store.get_asset(context.scope, BATCH, name)

    def remove() -> None:
        for deployment in store.list_assets(context.scope, BATCH_DEPLOYMENTS):
            if deployment["_emulator"]["endpoint"] == name:
                store.delete_asset(context.scope, BATCH_DEPLOYMENTS, deployment["_emulator"]["key"])
        store.delete_asset(context.scope, BATCH, name)

    answer = endpoint_request(context, name, existing, remove, batch=True)
    if answer is not None:
        return answer
    request = context.json()
    properties = dict(request.get("properties") or {})
    defaults = properties.get("defaults") or {}
    default = defaults.get("deploymentName")
    if default and store.get_asset(context.scope, BATCH_DEPLOYMENTS, f"{name}/{default}") is None:
        raise ArmError(400, "BadArgument", f"default deployment {default!r} does not exist on batch endpoint {name!r}")
    auth_mode = str(properties.get("authMode") or "AADToken")
    if auth_mode.lower() != "aadtoken":
        # Microsoft Learn, "Authorization on batch endpoints": batch endpoints support Microsoft Entra tokens
        # (aad_token) only. No refusal is recorded: the wording is the emulator's.
        raise ArmError(
            400,
            "BadArgument",
            f"batch endpoint {name!r}: authMode {auth_mode!r} is not supported; batch endpoints take Microsoft "
            "Entra tokens only (AADToken)",
        )
    endpoint_id = arm_id(context, "batchEndpoints", name)
    # Recorded (batch_services/...test_batch_endpoint_create.json): the request's `properties.properties` come
    # back with the service's own beside them, `BatchEndpointCreationApiVersion` and `azureml.onlineendpointid`
    # (the batch endpoint's id). REST docs: "Properties can be added, but not removed or altered"; whether a
    # change is refused or ignored is not recorded, so the first value of a key is kept.
    earlier = ((existing or {}).get("properties") or {}).get("properties") or {}
    extra = {
        **{str(k): str(v) for k, v in (properties.get("properties") or {}).items()},
        **earlier,
        "BatchEndpointCreationApiVersion": earlier.get("BatchEndpointCreationApiVersion")
        or context.query.get("api-version"),
        "azureml.onlineendpointid": endpoint_id,
    }
    p = context.params
    body = {
        "_emulator": {},
        "id": endpoint_id,
        "name": name,
        "type": f"{PROVIDER}/workspaces/batchEndpoints",
        "kind": "BatchEndpoint",
        "location": request.get("location") or LOCATION,
        "tags": request.get("tags") or {},
        "identity": {"type": "SystemAssigned", "principalId": workspace_guid("batch" + context.scope + name)},
        "systemData": system_data((existing or {}).get("systemData", {}).get("createdAt") or now(), now()),
        "properties": {
            "description": properties.get("description"),
            "authMode": "AADToken",
            "scoringUri": f"{context.emulator.base_url}/inference/batch/{p['sub']}/{p['rg']}/{p['ws']}/{name}/jobs",
            "swaggerUri": None,
            "provisioningState": "Succeeded",
            "defaults": {"deploymentName": default},
            "properties": extra,
        },
    }
    store.put_asset(context.scope, BATCH, name, "", body)
    return (201 if existing is None else 200), public(body), operation(context)


def batch_endpoints(context: Context) -> tuple[int, Any]:
    return 200, {"value": [public(b) for b in context.emulator.store.list_assets(context.scope, BATCH)]}


def batch_deployment(context: Context) -> Answer:
    endpoint = endpoint_or_404(context, BATCH)
    name, store = context.params["deployment"], context.emulator.store
    key = f"{endpoint['name']}/{name}"
    existing = store.get_asset(context.scope, BATCH_DEPLOYMENTS, key)
    if context.method == "DELETE" and existing and endpoint["properties"]["defaults"].get("deploymentName") == name:
        raise ArmError(400, "BadArgument", f"deployment {name!r} is the default of batch endpoint {endpoint['name']!r}")
    answer = read_or_delete(
        context,
        existing,
        f"deployment {name!r} of batch endpoint {endpoint['name']!r}",
        lambda: store.delete_asset(context.scope, BATCH_DEPLOYMENTS, key),
    )
    if answer is not None:
        return answer
    check_endpoint_name(name)
    request = context.json()
    properties = dict(request.get("properties") or {})
    deployment_assets(context, properties)
    compute = str(properties.get("compute") or "")
    if not compute or store.get_asset(context.scope, COMPUTES, compute.rstrip("/").rsplit("/", 1)[-1]) is None:
        raise ArmError(400, "BadArgument", f"compute {compute!r} of batch deployment {name!r} does not exist")
    properties.setdefault("miniBatchSize", 10)
    properties.setdefault("maxConcurrencyPerInstance", 1)
    properties.setdefault("errorThreshold", -1)
    properties.setdefault("retrySettings", {"maxRetries": 3, "timeout": "PT30S"})
    properties.setdefault("outputAction", "AppendRow")
    properties.setdefault("outputFileName", "predictions.csv")
    properties.setdefault("loggingLevel", "Info")
    properties.setdefault("resources", {"instanceCount": 1})
    properties.setdefault("environmentVariables", {})
    properties.setdefault("properties", {})
    if str(properties["outputAction"]).lower() not in ("appendrow", "summaryonly"):
        raise ArmError(400, "BadArgument", f"outputAction {properties['outputAction']!r}: use AppendRow or SummaryOnly")
    body = {
        "_emulator": {"endpoint": endpoint["name"], "key": key},
        "id": arm_id(context, "batchEndpoints", endpoint["name"], "deployments", name),
        "name": name,
        "type": f"{PROVIDER}/workspaces/batchEndpoints/deployments",
        "kind": "Model",
        "location": request.get("location") or endpoint["location"],
        "tags": request.get("tags") or {},
        "systemData": system_data((existing or {}).get("systemData", {}).get("createdAt") or now(), now()),
        "properties": {**properties, "deploymentType": "Model", "provisioningState": "Succeeded"},
    }
    store.put_asset(context.scope, BATCH_DEPLOYMENTS, key, "", body)
    return (201 if existing is None else 200), public(body), operation(context)


def batch_deployments(context: Context) -> tuple[int, Any]:
    return list_deployments(context, BATCH, BATCH_DEPLOYMENTS)


def batch_invoke(context: Context) -> tuple[int, Any]:
    """Submit the batch job as Azure does: a pipeline job (the name the caller gets back) with one step, the
    `batchscoring` child, which runs the deployment's scoring script over the input and holds the `score`
    output and the logs.

    Azure: azure-ai-ml 1.35 `jobs.download` treats a job tagged `azureml.batchrun: "true"` (and not
    `azureml.jobtype: azureml.pipelinejob`, which marks pipeline-component deployments) as a batch job and
    downloads the `score` output of its child (`operations/_job_operations.py` `download`,
    `_get_batch_job_scoring_output_uri`: "Batch Jobs are pipeline jobs with only one child"); Microsoft
    Learn's batch samples read results from `jobs.list(parent_job_name=job.name)[0]`. The tags and
    properties below are those of a real invoke's answer as the SDK dumps it (ansible azcollection,
    `azure_rm_ml_batch_endpoint_invoke`'s sample), less the pipeline-component ones.

    Long because: Azure's batch invocation is a pipeline job with a child step, its inputs, outputs and
    settings, built here in the order the service records them."""
    if not context.headers.get("authorization", "").lower().startswith("bearer "):
        raise ArmError(
            401, "Unauthorized", "a batch endpoint takes an Azure AD token: send 'Authorization: Bearer <token>'"
        )
    if context.emulator.store.workspace_created(context.scope) is None:
        raise not_found(f"workspace {context.params['ws']!r}")
    endpoint = endpoint_or_404(context, BATCH)
    store = context.emulator.store
    deployment_name = context.headers.get("azureml-model-deployment") or endpoint["properties"]["defaults"].get(
        "deploymentName"
    )
    if not deployment_name:
        raise ArmError(400, "BadArgument", f"batch endpoint {endpoint['name']!r} has no default deployment; name one")
    deployment = store.get_asset(context.scope, BATCH_DEPLOYMENTS, f"{endpoint['name']}/{deployment_name}")
    if deployment is None:
        raise ArmError(
            404, "NotFound", f"deployment {deployment_name!r} of batch endpoint {endpoint['name']!r} not found"
        )
    request = context.json().get("properties") or {}
    data = _batch_input(request.get("inputData") or {})
    settings = deployment["properties"]
    model, _, _ = deployment_assets(context, settings)
    name = str(request.get("name") or f"batchjob-{uuid.uuid4()}")
    retry = settings.get("retrySettings") or {}
    driver = [
        f'PYTHONPATH="$PYTHONPATH:{code_root()}"',
        "python -m azureml_emulator.batch_driver",
        f"--script {settings['codeConfiguration']['scoringScript']}",
        "--input ${{inputs.data}} --model ${{inputs.model}} --output ${{outputs.score}}",
        f"--output-action {str(settings['outputAction']).lower()}",
        f"--output-file {settings['outputFileName']}",
        f"--mini-batch-size {int(settings['miniBatchSize'])}",
        f"--max-concurrency {int(settings['maxConcurrencyPerInstance'])}",
        f"--nodes {_instance_count(settings)}",
        f"--error-threshold {int(settings['errorThreshold'])}",
        f"--max-retries {int(retry.get('maxRetries', 3))}",
        f"--timeout {job_timeout({'timeout': retry.get('timeout', 'PT30S')})}",
    ]
    inputs = {
        "data": {"jobInputType": "uri_folder", "uri": data},
        "model": {"jobInputType": "custom_model", "uri": str(model["properties"]["modelUri"])},
    }
    marks = {"azureml.batchrun": "true", "azureml.deploymentname": deployment_name}
    parent = {
        "properties": {
            "jobType": "Pipeline",
            "displayName": name,
            "experimentName": endpoint["name"],
            "computeId": settings["compute"],
            "tags": {**marks, "mlops.batch.endpoint": endpoint["name"]},
            "properties": {
                "azureml.endpointname": endpoint["name"],
                "azureml.deploymentname": deployment_name,
                "azureml.runsource": "azureml.PipelineRun",
                "azureml.runLineageType": "batchDeployment",
                "runSource": "BatchDeployment",
                "runType": "HTTP",
            },
            "inputs": {"data": inputs["data"]},
            "outputs": {},
            "jobs": None,
            "settings": None,
        }
    }
    child = f"{name}-{uuid.uuid4().hex[:8]}"  # a step's run id of its own (Azure's are GUID-like)
    step = {
        "properties": {
            "jobType": "Command",
            "command": " ".join(driver),
            "codeId": settings["codeConfiguration"]["codeId"],
            "environmentId": settings["environmentId"],
            "environmentVariables": settings.get("environmentVariables") or {},
            "computeId": settings["compute"],
            "experimentName": endpoint["name"],
            "displayName": "batchscoring",
            "parentJobName": name,
            "tags": {"mlops.batch.endpoint": endpoint["name"], "mlops.batch.deployment": deployment_name},
            "properties": {"azureml.deploymentname": deployment_name},
            "inputs": inputs,
            "outputs": {"score": {"jobOutputType": "uri_folder"}},
        }
    }
    if not store.insert_pipeline(context.scope, name, prepare_pipeline(name, parent), {child: prepare(child, step)}):
        raise ArmError(409, "Conflict", f"job {name!r} already exists")
    return 200, {
        "id": arm_id(context, "batchEndpoints", endpoint["name"], "jobs", name),
        "name": name,
        "type": f"{PROVIDER}/workspaces/batchEndpoints/jobs",
        "properties": {"status": "NotStarted", "jobName": name, "deploymentName": deployment_name},
    }


def _instance_count(settings: dict[str, Any]) -> int:
    """The deployment's nodes: `resources.instanceCount`. azure-ai-ml 1.35 sends `BatchDeployment(resources=
    ResourceConfiguration(instance_count=N))` there (`entities/_deployment/batch_deployment.py` `_to_rest_object`;
    `_restclient/arm_ml_service/models/_models.py`: `BatchDeploymentProperties.resources`, a
    `DeploymentResourceConfiguration` whose `instance_count` is "Optional number of instances or nodes used by the
    compute target", serialized `instanceCount`). Absent, "will default to the defaults defined in
    ResourceConfiguration" (the same docstring): the emulator's default is 1, as `batch_deployment` stores it."""
    resources = settings.get("resources") or {}
    return max(1, int(resources.get("instanceCount") or 1))


def _batch_input(input_data: dict[str, Any]) -> str:
    """The datastore URI of the invoke's input folder (`{"<name>": {"jobInputType": "UriFolder", "uri": ...}}`)."""
    values = list(input_data.values())
    if len(values) != 1 or not isinstance(values[0], dict):
        raise ArmError(400, "BadArgument", "a batch invoke needs exactly one input (a uri_folder)")
    value = values[0]
    kind = str(value.get("jobInputType") or value.get("type") or "").lower().replace("_", "")
    uri = str(value.get("uri") or value.get("path") or "")
    if kind not in ("urifolder", "") or not uri.startswith("azureml://"):
        raise ArmError(400, "BadArgument", f"batch input {value!r}: the emulator takes a uri_folder on a datastore")
    return uri


def register(routes: Routes) -> None:
    batch = "{WS}/batchEndpoints/(?P<endpoint>[^/]+)"
    table: list[tuple[str, str, Handler]] = [
        ("GET", "{WS}/batchEndpoints", batch_endpoints),
        *((m, batch, batch_endpoint) for m in ("GET", "PUT", "DELETE")),
        ("GET", batch + "/deployments", batch_deployments),
        *((m, batch + "/deployments/(?P<deployment>[^/]+)", batch_deployment) for m in ("GET", "PUT", "DELETE")),
        ("POST", "/inference/batch/(?P<sub>[^/]+)/(?P<rg>[^/]+)/(?P<ws>[^/]+)/(?P<endpoint>[^/]+)/jobs", batch_invoke),
    ]
    for method, pattern, handler in table:
        routes.add(method, pattern, handler)
