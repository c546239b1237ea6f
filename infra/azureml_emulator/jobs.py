"""Command jobs in the emulator: what a PUT must hold, the body a GET answers, and run history's view of a job."""

from __future__ import annotations

import re
from typing import Any

from infra.azureml_emulator.resources import ARTIFACT_CONTAINER, BLOB_CONTAINER, ArmError, Context

_ARM_ASSET = re.compile(
    r"(?:azureml:)?/subscriptions/[^/]+/resource[gG]roups/[^/]+/providers/Microsoft\.MachineLearningServices"
    r"/workspaces/[^/]+/(?P<kind>codes|data|environments|models)/(?P<name>[^/]+)/versions/(?P<version>[^/]+)"
)
_INPUT_TYPES = ("uri_file", "uri_folder", "literal", "custom_model", "mlflow_model")
_OUTPUT_TYPES = ("uri_file", "uri_folder", "custom_model", "mlflow_model")


# Curated environments: the SDK sends the short id as given (`azureml:AzureML-sklearn-1.0-ubuntu20.04-py38-cpu:33`,
# answered 201 and echoed: command_job/...test_command_job_invalid_datastore.json, ...serverless.json), which the
# service resolves in the `azureml` registry; registry ids are taken as they are too (Microsoft Learn, "Manage
# environments": azureml://registries/azureml/environments/<name>/versions/<v> or /labels/latest).
_CURATED = re.compile(
    r"azureml:AzureML-[A-Za-z0-9_.\-]+:\d+|azureml://registries/[^/]+/environments/[^/]+/(versions|labels)/[^/]+"
)


def curated_environment(value: str) -> bool:
    """Whether an environment id names a curated or registry environment (not an asset of the workspace)."""
    return bool(_CURATED.fullmatch(value))


def asset_reference(value: str) -> tuple[str, str, str] | None:
    """(kind, name, version) of an ARM asset id, else None."""
    match = _ARM_ASSET.fullmatch(value)
    return (match["kind"], match["name"], match["version"]) if match else None


def _require_asset(context: Context, reference: str, what: str, kind: str) -> None:
    parsed = asset_reference(reference)
    if parsed is None or parsed[0] != kind:
        raise ArmError(
            400, "UserError", f"{what} {reference!r} is not a {kind[:-1] if kind != 'data' else 'data'} asset id"
        )
    if context.emulator.store.get_asset(context.scope, *parsed) is None:
        raise ArmError(400, "UserError", f"{what} {reference!r} does not exist in workspace {context.params['ws']!r}")


def validate(context: Context, body: dict[str, Any]) -> None:
    """The checks the service makes of a command job, with its kind of messages."""
    properties = body.get("properties")
    if not isinstance(properties, dict):
        raise ArmError(400, "UserError", "the job body needs 'properties'")
    job_type = properties.get("jobType")
    if job_type != "Command":
        raise ArmError(400, "UserError", f"jobType {job_type!r}: the emulator runs Command jobs only")
    if not str(properties.get("command") or "").strip():
        raise ArmError(400, "UserError", "a command job needs a non-empty 'command'")
    if not properties.get("environmentId"):
        raise ArmError(400, "UserError", "a command job needs 'environmentId'")
    if not curated_environment(str(properties["environmentId"])):
        _require_asset(context, str(properties["environmentId"]), "environment", "environments")
    compute = str(properties.get("computeId") or "")
    if (
        compute
        and context.emulator.store.get_asset(context.scope, "computes", compute.rstrip("/").rsplit("/", 1)[-1]) is None
    ):
        # recorded: command_job/...test_command_job_register_output.json (2023 run), Entry 0
        raise ArmError(400, "UserError", f"Unknown compute target '{compute.rstrip('/').rsplit('/', 1)[-1]}'.")
    if properties.get("codeId"):
        _require_asset(context, str(properties["codeId"]), "code", "codes")
    for name, value in (properties.get("inputs") or {}).items():
        kind = (value or {}).get("jobInputType")
        if kind not in _INPUT_TYPES:
            raise ArmError(
                400, "UserError", f"input {name!r}: jobInputType {kind!r} is not one of {', '.join(_INPUT_TYPES)}"
            )
        if kind != "literal":
            uri = str(value.get("uri") or "")
            if asset_reference(uri):
                _require_asset(context, uri, f"input {name!r}", "data")
            elif not uri.startswith(("azureml://datastores/", "azureml://subscriptions/", "https://")):
                raise ArmError(
                    400, "UserError", f"input {name!r}: uri {uri!r} is neither a data asset nor a datastore path"
                )
    for name, value in (properties.get("outputs") or {}).items():
        kind = (value or {}).get("jobOutputType")
        if kind not in _OUTPUT_TYPES:
            raise ArmError(
                400, "UserError", f"output {name!r}: jobOutputType {kind!r} is not one of {', '.join(_OUTPUT_TYPES)}"
            )
        if kind == "uri_folder" and "assetVersion" in value and _api_version(context) >= "2025-01-01":
            # recorded (2025-01-01-preview): command_job/...test_command_job_register_output.json, a 400 whose
            # detail is "Could not find member 'assetVersion' on object of type 'UriFolderJobOutput'"
            raise ArmError(
                400,
                "UserError",
                "Request is invalid and/or missing fields. Could not find member 'assetVersion' on object of type "
                f"'UriFolderJobOutput'. Path 'outputs.{name}.assetVersion'.",
            )
    used = set(re.findall(r"\$\{\{\s*(inputs|outputs)\.([A-Za-z0-9_]+)\s*\}\}", str(properties["command"])))
    for group, name in used:
        if name not in (properties.get(group) or {}):
            raise ArmError(400, "UserError", f"the command uses ${{{{{group}.{name}}}}}, which the job does not define")


def _api_version(context: Context) -> str:
    return str(context.query.get("api-version") or "")


def prepare(name: str, body: dict[str, Any]) -> dict[str, Any]:
    """The stored body: the request with the defaults the service adds."""
    properties = dict(body["properties"])
    properties.setdefault("displayName", name)
    properties.setdefault("experimentName", "Default")
    properties.setdefault("tags", {})
    properties.setdefault("properties", {})
    properties.setdefault("environmentVariables", {})
    properties.setdefault("isArchived", False)
    properties.setdefault("resources", {"instanceCount": 1, "shmSize": "2g", "properties": {}})
    properties["resources"] = properties["resources"] or {"instanceCount": 1, "shmSize": "2g", "properties": {}}
    properties.setdefault("parameters", {})
    for field in (
        "description",
        "parentJobName",
        "identity",
        "componentId",
        "notificationSetting",
        "secretsConfiguration",
        "codeId",
        "distribution",
        "limits",
        "autologgerSettings",
    ):
        properties.setdefault(field, None)
    properties["queueSettings"] = properties.get("queueSettings") or {"jobTier": "Null", "priority": None}
    resources = {
        "instanceCount": 1,
        "maxInstanceCount": None,
        "instanceType": None,
        "locations": None,
        "properties": None,
        "shmSize": "2g",
        "dockerArgs": None,
        "dockerArgsList": None,
    }
    properties["resources"] = {**resources, **{k: v for k, v in properties["resources"].items() if v is not None}}
    inputs = dict(properties.get("inputs") or {})
    for value in inputs.values():
        value.setdefault("description", None)
        if value.get("jobInputType") != "literal":
            value.setdefault("mode", "ReadOnlyMount")
            value.setdefault("pathOnCompute", None)
    properties["inputs"] = inputs
    outputs = dict(properties.get("outputs") or {})
    outputs["default"] = {
        "jobOutputType": "uri_folder",
        "mode": "ReadWriteMount",
        "uri": f"azureml://datastores/workspaceartifactstore/ExperimentRun/dcid.{name}",
        "description": None,
    }
    for value in outputs.values():
        for field in ("uri", "description", "assetName", "assetVersion", "pathOnCompute", "autoDeleteSetting"):
            value.setdefault(field, None)
        value.setdefault("mode", "ReadWriteMount")
    properties["outputs"] = outputs
    properties["properties"] = {
        **properties["properties"],
        "_azureml.ComputeTargetType": "amlctrain",
        "_azureml.ClusterName": _compute_name(properties.get("computeId")) or "",
        "ContentSnapshotId": name,
    }
    return {"properties": properties}


def prepare_pipeline(name: str, body: dict[str, Any]) -> dict[str, Any]:
    """The stored body of a pipeline job (a batch invocation's parent): the request with the service's defaults."""
    properties = dict(body["properties"])
    properties.setdefault("displayName", name)
    for field in ("description", "componentId", "identity", "notificationSetting", "sourceJobId"):
        properties.setdefault(field, None)
    properties.setdefault("isArchived", False)
    return {"properties": properties}


def job_body(context: Context, name: str, record: dict[str, Any]) -> dict[str, Any]:
    """The ARM body of a job. A pipeline's step has `properties: null` there: azure-ai-ml 1.35 reads that as
    "Child jobs are no longer available through MFE, fetch through run history instead"
    (`operations/_job_operations.py` `get`, `entities/_job/job.py` `_is_pipeline_child_job`)."""
    if record.get("parent"):
        return {
            "id": f"{context.workspace_id}/jobs/{name}",
            "name": name,
            "type": "Microsoft.MachineLearningServices/workspaces/jobs",
            "properties": None,
            "systemData": {"createdAt": record["created"], "createdBy": "mlops-emulator", "createdByType": "User"},
        }
    properties = dict(record["body"]["properties"])
    properties["status"] = record["status"]
    properties["services"] = {
        "Tracking": {
            "jobServiceType": "Tracking",
            "port": None,
            "endpoint": f"azureml://127.0.0.1:{context.emulator.port}/mlflow/v1.0{context.workspace_id}",
            "status": None,
            "errorMessage": None,
            "properties": None,
            "nodes": None,
        },
        "Studio": {
            "jobServiceType": "Studio",
            "port": None,
            "endpoint": f"{context.emulator.base_url}/emulator/jobs/{name}",
            "status": None,
            "errorMessage": None,
            "properties": None,
            "nodes": None,
        },
    }
    return {
        "id": f"{context.workspace_id}/jobs/{name}",
        "name": name,
        "type": "Microsoft.MachineLearningServices/workspaces/jobs",
        "properties": properties,
        "systemData": {
            "createdAt": record["created"],
            "createdBy": "mlops-emulator",
            "createdByType": "User",
        },
    }


def run_details(context: Context, name: str, record: dict[str, Any]) -> dict[str, Any]:
    """Run history's details of a job: what `jobs.stream` polls (status, log file URLs, the error)."""
    logs = context.emulator.store.list_blobs(ARTIFACT_CONTAINER, f"ExperimentRun/dcid.{name}/user_logs/")
    log_files = {
        path.removeprefix(
            f"ExperimentRun/dcid.{name}/"
        ): f"{context.emulator.blob_base}/{ARTIFACT_CONTAINER}/{path}?sv=2021-10-04&sr=b&sp=r&sig=emulator"
        for path, _ in logs
    }
    properties = record["body"]["properties"]
    parent = record.get("parent")
    return {
        "runId": name,
        "runUuid": _run_uuid(context, name),
        "parentRunUuid": _run_uuid(context, parent) if parent else None,
        "rootRunUuid": _run_uuid(context, parent or name),
        "target": _compute_name(properties.get("computeId")),
        "status": record["status"],
        "parentRunId": parent,
        "startTimeUtc": record["started"],
        "endTimeUtc": record["ended"],
        "error": _error_envelope(record["error"]),
        "warnings": None,
        "tags": properties.get("tags", {}),
        "properties": properties.get("properties", {}),
        "inputDatasets": [],
        "outputDatasets": [],
        "runDefinition": None,
        "logFiles": log_files,
        "jobCost": None,
        "revision": 1,
        "runTypeV2": {"orchestrator": None, "traits": [], "attribution": None, "computeType": "AmlcCompute"},
        "settings": {},
        "services": {},
    }


def run_document(context: Context, name: str, record: dict[str, Any]) -> dict[str, Any]:
    """Run history's run: its status and its outputs as asset ids (resolved by `batchGetResolvedUris`)."""
    properties = record["body"]["properties"]
    parent = record.get("parent")
    outputs = {
        output: {"assetId": output_asset_id(context, name, output), "type": "uri_folder"}
        for output, value in (properties.get("outputs") or {}).items()
        if output != "default" and value.get("uri")
    }
    return {
        "runNumber": 1,
        "rootRunId": parent or name,
        "createdUtc": record["created"],
        "createdBy": _user(),
        "userId": "mlops-emulator",
        "token": None,
        "tokenExpiryTimeUtc": None,
        "error": _error_envelope(record["error"]),
        "warnings": None,
        "revision": 1,
        "statusRevision": 1,
        "runUuid": _run_uuid(context, name),
        "parentRunUuid": _run_uuid(context, parent) if parent else None,
        "rootRunUuid": _run_uuid(context, parent or name),
        "lastStartTimeUtc": record["started"],
        "currentComputeTime": None,
        "computeDuration": None,
        "effectiveStartTimeUtc": record["started"],
        "lastModifiedBy": _user(),
        "lastModifiedUtc": record["ended"] or record["started"] or record["created"],
        "duration": None,
        "cancelationReason": None,
        "currentAttemptId": record["attempts"],
        "runId": name,
        "parentRunId": parent,
        "experimentId": _run_uuid(context, "experiment/" + str(properties.get("experimentName"))),
        "status": record["status"],
        "startTimeUtc": record["started"],
        "endTimeUtc": record["ended"],
        "scheduleId": None,
        "displayName": properties.get("displayName"),
        "name": None,
        "dataContainerId": f"dcid.{name}",
        "description": properties.get("description"),
        "hidden": False,
        "runType": _run_type(record),
        "runTypeV2": {"orchestrator": None, "traits": [], "attribution": None, "computeType": "AmlcCompute"},
        "properties": properties.get("properties", {}),
        "parameters": {},
        "actionUris": {"Cancel": f"{context.emulator.base_url}{context.workspace_id}/jobs/{name}/cancel"},
        "scriptName": None,
        "target": _compute_name(properties.get("computeId")),
        "uniqueChildRunComputeTargets": [],
        "tags": properties.get("tags", {}),
        "settings": {},
        "services": {},
        "inputDatasets": [],
        "outputDatasets": [],
        "runDefinition": None,
        "jobSpecification": None,
        "primaryMetricName": None,
        "createdFrom": None,
        "cancelUri": None,
        "completeUri": None,
        "diagnosticsUri": None,
        "computeRequest": None,
        "compute": None,
        "retainForLifetimeOfWorkspace": False,
        "queueingInfo": None,
        "inputs": None,
        "outputs": outputs or None,
    }


def _run_type(record: dict[str, Any]) -> str:
    """Run history's run type: a pipeline's, its step's (as recorded: `pipeline_job/...get_child_run.json`), or a script's."""
    if record["body"]["properties"].get("jobType") == "Pipeline":
        return "azureml.PipelineRun"
    return "azureml.StepRun" if record.get("parent") else "azureml.scriptrun"


def _user() -> dict[str, Any]:
    return {
        "userObjectId": "00000000-0000-0000-0000-000000000000",
        "userPuId": None,
        "userIdp": None,
        "userAltSecId": None,
        "userIss": "mlops-emulator",
        "userTenantId": "00000000-0000-0000-0000-000000000000",
        "userName": "mlops-emulator",
        "upn": None,
        "clientApplicationId": None,
        "applicationACR": None,
    }


def _error_envelope(error: dict[str, Any] | None) -> dict[str, Any] | None:
    """Run history's error wrapper around a failed job's error."""
    if not error:
        return None
    return {
        "error": error,
        "correlation": None,
        "environment": "mlops-emulator",
        "location": "eastus",
        "time": error.get("time", ""),
        "componentName": "mlops-emulator-runner",
    }


def output_asset_id(context: Context, job: str, output: str) -> str:
    return f"azureml://locations/eastus/workspaces/{context.params['ws']}/data/azureml_{job}_output_data_{output}/versions/1"


def resolve_output_asset(context: Context, asset_id: str) -> dict[str, Any]:
    match = re.fullmatch(
        r"azureml://locations/[^/]+/workspaces/[^/]+/data/azureml_(.+)_output_data_([A-Za-z0-9_]+)/versions/1", asset_id
    )
    if match is None:
        raise ArmError(400, "UserError", f"{asset_id!r} is not an output asset of a job")
    record = context.emulator.store.get_job(context.scope, match.group(1))
    uri = None if record is None else record["body"]["properties"].get("outputs", {}).get(match.group(2), {}).get("uri")
    if uri is None:
        raise ArmError(404, "UserError", f"job {match.group(1)!r} has no output {match.group(2)!r} yet")
    return {"uri": uri, "type": "uri_folder"}


def output_uri(scope: str, job: str, output: str) -> tuple[str, str, str]:
    """(uri, container, prefix) where a finished job's output is kept."""
    sub, rg, ws = scope.split("/")
    prefix = f"azureml/{job}/{output}/"
    uri = f"azureml://subscriptions/{sub}/resourcegroups/{rg}/workspaces/{ws}/datastores/workspaceblobstore/paths/{prefix}"
    return uri, BLOB_CONTAINER, prefix


def _compute_name(compute_id: object) -> str | None:
    return str(compute_id).rstrip("/").rsplit("/", 1)[-1] if compute_id else None


def _run_uuid(context: Context, name: str) -> str:
    from infra.azureml_emulator.resources import workspace_guid

    return workspace_guid(context.scope + "/run/" + name)
