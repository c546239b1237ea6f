"""Command jobs: what a PUT must hold, the body a GET answers, their cancel, and run history's view of a job."""

from __future__ import annotations

import re
from typing import Any

from azureml_emulator.core import bodies, sas
from azureml_emulator.core.arm import ARTIFACT_CONTAINER, asset_reference, curated_environment, workspace_guid
from azureml_emulator.core.context import Context, page
from azureml_emulator.core.errors import ArmError, not_found
from azureml_emulator.core.job_bodies import compute_name, prepare
from azureml_emulator.core.routing import Answer, Handler, Routes
from azureml_emulator.core.store import Store, now

TERMINAL = ("Completed", "Failed", "Canceled", "NotResponding", "Paused")
_JOB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-]{0,254}")
_INPUT_TYPES = ("uri_file", "uri_folder", "literal", "custom_model", "mlflow_model")
_OUTPUT_TYPES = ("uri_file", "uri_folder", "custom_model", "mlflow_model")


def _require_asset(context: Context, reference: str, what: str, kind: str) -> None:
    parsed = asset_reference(reference)
    if parsed is None or parsed[0] != kind:
        raise ArmError(
            400, "UserError", f"{what} {reference!r} is not a {kind[:-1] if kind != 'data' else 'data'} asset id"
        )
    if context.emulator.store.get_asset(context.scope, *parsed) is None:
        raise ArmError(400, "UserError", f"{what} {reference!r} does not exist in workspace {context.params['ws']!r}")


def validate(context: Context, body: dict[str, Any]) -> None:
    """The checks the service makes of a command job, with its kind of messages.

    Long because: the service's checks of a command job are many small rules, kept in the order that decides
    which error a caller sees first."""
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


def _job_body(context: Context, name: str, record: dict[str, Any]) -> dict[str, Any]:
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
    services = bodies.body("job_services")
    services["Tracking"]["endpoint"] = f"azureml://127.0.0.1:{context.emulator.port}/mlflow/v1.0{context.workspace_id}"
    services["Studio"]["endpoint"] = f"{context.emulator.base_url}/emulator/jobs/{name}"
    properties["services"] = services
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


def _details(context: Context, name: str, record: dict[str, Any]) -> dict[str, Any]:
    """Run history's details of a job: what `jobs.stream` polls (status, log file URLs, the error)."""
    logs = context.emulator.store.list_blobs(ARTIFACT_CONTAINER, f"ExperimentRun/dcid.{name}/user_logs/")
    # each log's URL carries a read SAS for that one blob, which the blob service checks (fields: `core/sas.py`)
    log_files = {
        path.removeprefix(f"ExperimentRun/dcid.{name}/"): f"{context.emulator.blob_base}/{ARTIFACT_CONTAINER}/{path}?"
        + sas.service_sas(ARTIFACT_CONTAINER, path, hours=1, permissions="r")
        for path, _ in logs
    }
    properties = record["body"]["properties"]
    parent = record.get("parent")
    return {
        "runId": name,
        "runUuid": _run_uuid(context, name),
        "parentRunUuid": _run_uuid(context, parent) if parent else None,
        "rootRunUuid": _run_uuid(context, parent or name),
        "target": compute_name(properties.get("computeId")),
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


def _run(context: Context, name: str, record: dict[str, Any]) -> dict[str, Any]:
    """Run history's run: its status and its outputs as asset ids (resolved by `batchGetResolvedUris`)."""
    properties = record["body"]["properties"]
    parent = record.get("parent")
    outputs = {
        output: {"assetId": _output_asset_id(context, name, output), "type": "uri_folder"}
        for output, value in (properties.get("outputs") or {}).items()
        if output != "default" and value.get("uri")
    }
    body = bodies.body("run")
    body |= {
        "rootRunId": parent or name,
        "createdUtc": record["created"],
        "createdBy": bodies.body("run_user"),
        "error": _error_envelope(record["error"]),
        "runUuid": _run_uuid(context, name),
        "parentRunUuid": _run_uuid(context, parent) if parent else None,
        "rootRunUuid": _run_uuid(context, parent or name),
        "lastStartTimeUtc": record["started"],
        "effectiveStartTimeUtc": record["started"],
        "lastModifiedBy": bodies.body("run_user"),
        "lastModifiedUtc": record["ended"] or record["started"] or record["created"],
        "currentAttemptId": record["attempts"],
        "runId": name,
        "parentRunId": parent,
        "experimentId": _run_uuid(context, "experiment/" + str(properties.get("experimentName"))),
        "status": record["status"],
        "startTimeUtc": record["started"],
        "endTimeUtc": record["ended"],
        "displayName": properties.get("displayName"),
        "dataContainerId": f"dcid.{name}",
        "description": properties.get("description"),
        "runType": _run_type(record),
        "properties": properties.get("properties", {}),
        "actionUris": {"Cancel": f"{context.emulator.base_url}{context.workspace_id}/jobs/{name}/cancel"},
        "target": compute_name(properties.get("computeId")),
        "tags": properties.get("tags", {}),
        "outputs": outputs or None,
    }
    return body


def _run_type(record: dict[str, Any]) -> str:
    """Run history's run type: a pipeline's, its step's (as recorded: `pipeline_job/...get_child_run.json`), or a script's."""
    if record["body"]["properties"].get("jobType") == "Pipeline":
        return "azureml.PipelineRun"
    return "azureml.StepRun" if record.get("parent") else "azureml.scriptrun"


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


def _output_asset_id(context: Context, job: str, output: str) -> str:
    return f"azureml://locations/eastus/workspaces/{context.params['ws']}/data/azureml_{job}_output_data_{output}/versions/1"


def _resolve_output_asset(context: Context, asset_id: str) -> dict[str, Any]:
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


def _run_uuid(context: Context, name: str) -> str:
    return workspace_guid(context.scope + "/run/" + name)


# ---------------------------------------------------------------- jobs
def job(context: Context) -> Answer:
    name = context.params["name"]
    store = context.emulator.store
    if context.method == "GET":
        record = store.get_job(context.scope, name)
        if record is None:
            raise not_found(f"job {name!r}")
        return 200, _job_body(context, name, record)
    if not _JOB_NAME.fullmatch(name):
        raise ArmError(
            400,
            "UserError",
            f"job name {name!r} is invalid: letters, digits, '-' or '_', starting with a letter or digit (at most 255)",
        )
    body = context.json()
    validate(context, body)
    existing = store.get_job(context.scope, name)
    if existing is not None:  # a job runs once: a second PUT may change its tags and names, never re-run it
        updated = existing["body"]
        for field in ("tags", "displayName", "description"):
            if field in body.get("properties", {}):
                updated["properties"][field] = body["properties"][field]
        store.update_job_body(context.scope, name, updated)
        return 200, _job_body(context, name, store.get_job(context.scope, name) or existing)
    stored = prepare(name, body)
    store.insert_job(context.scope, name, stored)
    record = store.get_job(context.scope, name)
    assert record is not None
    return (
        201,
        _job_body(context, name, record),
        {"Location": f"{context.emulator.base_url}{context.path}?api-version={context.query['api-version']}"},
    )


def job_list(context: Context) -> tuple[int, Any]:
    store = context.emulator.store
    found = []
    for name in reversed(store.list_jobs(context.scope)):
        record = store.get_job(context.scope, name)
        if record is not None:
            found.append(_job_body(context, name, record))
    return 200, page(context, found)


def job_cancel(context: Context) -> tuple[int, Any, dict[str, str]]:
    name = context.params["name"]
    store = context.emulator.store
    record = store.get_job(context.scope, name)
    if record is None:
        raise not_found(f"job {name!r}")
    for step in store.children(context.scope, name):  # a pipeline is canceled through its steps
        _cancel(store, context.scope, step)
    if not store.children(context.scope, name):
        _cancel(store, context.scope, name)
    operation = f"{context.emulator.base_url}{context.workspace_id}/operationResults/cancel-{name}?api-version={context.query['api-version']}"
    return 202, None, {"Location": operation, "Retry-After": "0"}


def _cancel(store: Store, scope: str, name: str) -> None:
    record = store.get_job(scope, name)
    if record is None:
        return
    if record["status"] not in TERMINAL and not store.set_status(
        scope, name, "Canceled", only_from=("NotStarted", "Queued"), ended=now()
    ):
        store.set_status(scope, name, "CancelRequested", only_from=("Starting", "Preparing", "Running", "Finalizing"))


def operation_result(context: Context) -> Answer:
    operation = context.params["operation"]
    if not operation.startswith("cancel-"):
        raise not_found(f"operation {operation!r}")
    record = context.emulator.store.get_job(context.scope, operation.removeprefix("cancel-"))
    if record is None:
        raise not_found(f"job of operation {operation!r}")
    if record["status"] in TERMINAL:
        return 200, {}
    return (
        202,
        None,
        {
            "Location": f"{context.emulator.base_url}{context.path}?api-version={context.query['api-version']}",
            "Retry-After": "0",
        },
    )


# ---------------------------------------------------------------- run history and data plane
def run_details(context: Context) -> tuple[int, Any]:
    record = context.emulator.store.get_job(context.scope, context.params["run"])
    if record is None:
        raise not_found(f"run {context.params['run']!r}")
    return 200, _details(context, context.params["run"], record)


def run(context: Context) -> tuple[int, Any]:
    record = context.emulator.store.get_job(context.scope, context.params["run"])
    if record is None:
        raise not_found(f"run {context.params['run']!r}")
    return 200, _run(context, context.params["run"], record)


def run_children(context: Context) -> tuple[int, Any]:
    """Run history's children of a run (what `jobs.list(parent_job_name=...)` reads): a batch job's step."""
    store = context.emulator.store
    if store.get_job(context.scope, context.params["run"]) is None:
        raise not_found(f"run {context.params['run']!r}")
    documents = []
    for child in store.children(context.scope, context.params["run"]):
        record = store.get_job(context.scope, child)
        if record is not None:
            documents.append(_run(context, child, record))
    return 200, {"value": documents, "continuationToken": None, "nextLink": None}


def run_data(context: Context) -> tuple[int, Any]:
    run_id = str(context.json().get("runId") or "")
    record = context.emulator.store.get_job(context.scope, run_id)
    if record is None:
        raise not_found(f"run {run_id!r}")
    return 200, {
        "runMetadata": _run(context, run_id, record),
        "runDefinition": None,
        "jobSpecification": None,
        "systemSettings": None,
    }


def resolved_uris(context: Context) -> tuple[int, Any]:
    ids = context.json().get("values") or []
    return 200, {"values": {asset_id: _resolve_output_asset(context, asset_id) for asset_id in ids}}


def register(routes: Routes) -> None:
    history = r"/history/v1\.0{WS}(?:/experiments/[^/]+|/experimentids/[^/]+)?"
    table: list[tuple[str, str, Handler]] = [
        ("GET", "{WS}/jobs", job_list),
        ("GET", "{WS}/jobs/(?P<name>[^/]+)", job),
        ("PUT", "{WS}/jobs/(?P<name>[^/]+)", job),
        ("POST", "{WS}/jobs/(?P<name>[^/]+)/cancel", job_cancel),
        ("GET", "{WS}/operationResults/(?P<operation>[^/]+)", operation_result),
        ("GET", history + "/runs/(?P<run>[^/]+)/children", run_children),
        ("GET", history + "/runs/(?P<run>[^/]+)/details", run_details),
        ("GET", history + "/runs/(?P<run>[^/]+)", run),
        ("POST", history + "/rundata", run_data),
        ("POST", r"/data/v1\.0{WS}/dataversion/batchGetResolvedUris", resolved_uris),
    ]
    for method, pattern, handler in table:
        routes.add(method, pattern, handler)
