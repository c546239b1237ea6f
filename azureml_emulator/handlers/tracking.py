"""MLflow tracking: the subset of MLflow's REST API a training job's `mlflow.log_params` / `log_metrics` call and
`mlops status` reads back, on the path azureml-mlflow uses.

Sources, in order:
- the path: azureml-mlflow 1.62.0.post6 `_store/azureml_reststore.py` (`get_host_creds`) builds the base URL
  as `https://<host>/mlflow/v2.0` + the workspace's ARM path for MLflow 2.x and 3.x (v1.0 for MLflow 1.x) and
  asks for a token of scope `https://management.azure.com/.default`; MLflow's REST store appends
  `/api/2.0/mlflow/<verb>`. The workspace's `mlFlowTrackingUri` gives the same host under `azureml://`.
- what a job is told: azureml-mlflow's `get_service_context_from_tracking_url_mlflow_env_vars` reads
  `MLFLOW_TRACKING_URI`, `MLFLOW_TRACKING_TOKEN`, `MLFLOW_RUN_ID`, `MLFLOW_EXPERIMENT_NAME` and
  `MLFLOW_EXPERIMENT_ID`, which Azure ML sets in a job's process (Microsoft Learn, "Configure MLflow for Azure
  Machine Learning": in jobs on compute clusters "the tracking URI ... is automatically configured"). The run
  is the job: its id is the job's name (the job's `services.Tracking` entry points here).
- the bodies and errors: MLflow's REST API reference (`runs/get`, `runs/update`, `runs/log-batch`,
  `runs/log-metric`, `runs/log-parameter`, `runs/set-tag`; errors as `{"error_code", "message"}`). No Azure
  recording holds MLflow traffic, so Azure's own error bodies on these paths are not known: MLflow's are likely.

A run's status follows its job (a job's process cannot finish its own job by `runs/update`: the update is kept
and answered back, the job's state stays the runner's). Parameters are immutable, as MLflow's are: logging a
parameter again with another value answers 400 `INVALID_PARAMETER_VALUE`.
"""

from __future__ import annotations

import calendar
import json
import threading
import time
from datetime import datetime
from typing import Any

from azureml_emulator.core.context import Context
from azureml_emulator.core.routing import Answer, Handler, Routes

RUNS = "mlflowRuns"
_LOCK = threading.Lock()  # log-batch reads, merges and writes one run's data
_STATUS = {"Completed": "FINISHED", "Failed": "FAILED", "Canceled": "KILLED", "CancelRequested": "KILLED"}


class TrackingError(Exception):
    """An error answered in MLflow's format."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _answer(call: Handler) -> Handler:
    def handler(context: Context) -> Answer:
        try:
            return call(context)
        except TrackingError as exc:
            return exc.status, {"error_code": exc.code, "message": exc.message}

    return handler


def _millis(stamp: str | None) -> int | None:
    if not stamp:
        return None
    parsed = datetime.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")
    return calendar.timegm(parsed.timetuple()) * 1000 + int(stamp[20:23] or 0)


def _request(context: Context) -> dict[str, Any]:
    if context.method == "GET":
        return dict(context.query)
    try:
        document = json.loads(context.body or b"{}")
    except ValueError as exc:
        raise TrackingError(400, "MALFORMED_REQUEST", f"the request body is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise TrackingError(400, "MALFORMED_REQUEST", "the request body must be a JSON object")
    return document


def _run_id(request: dict[str, Any]) -> str:
    run_id = request.get("run_id") or request.get("run_uuid")
    if not run_id or not isinstance(run_id, str):
        raise TrackingError(400, "INVALID_PARAMETER_VALUE", "Missing value for required parameter 'run_id'.")
    return run_id


def _job(context: Context, run_id: str) -> dict[str, Any]:
    job = context.emulator.store.get_job(context.scope, run_id)
    if job is None:
        raise TrackingError(404, "RESOURCE_DOES_NOT_EXIST", f"Run '{run_id}' not found.")
    return job


def _data(context: Context, run_id: str) -> dict[str, Any]:
    return context.emulator.store.get_asset(context.scope, RUNS, run_id) or {"metrics": [], "params": {}, "tags": {}}


def _run(context: Context, run_id: str) -> dict[str, Any]:
    job = _job(context, run_id)
    data = _data(context, run_id)
    properties = job["body"].get("properties") or {}
    info = {
        "run_id": run_id,
        "run_uuid": run_id,
        "run_name": properties.get("displayName") or run_id,
        "experiment_id": str(properties.get("experimentName") or "Default"),
        "user_id": "",
        "status": _STATUS.get(job["status"], "RUNNING"),
        "start_time": _millis(job["started"] or job["created"]),
        "end_time": _millis(job["ended"]),
        "artifact_uri": f"azureml://experiments/{properties.get('experimentName')}/runs/{run_id}/artifacts",
        "lifecycle_stage": "active",
    }
    latest: dict[str, dict[str, Any]] = {}
    for metric in data["metrics"]:  # runs/get gives each metric's latest value (MLflow: highest step, then time)
        known = latest.get(metric["key"])
        if known is None or (metric["step"], metric["timestamp"]) >= (known["step"], known["timestamp"]):
            latest[metric["key"]] = metric
    return {
        "info": {k: v for k, v in info.items() if v is not None},
        "data": {
            "metrics": list(latest.values()),
            "params": [{"key": k, "value": v} for k, v in data["params"].items()],
            "tags": [{"key": k, "value": v} for k, v in data["tags"].items()],
        },
        "inputs": {},
    }


@_answer
def get_run(context: Context) -> Answer:
    return 200, {"run": _run(context, _run_id(_request(context)))}


@_answer
def update_run(context: Context) -> Answer:
    request = _request(context)
    run_id = _run_id(request)
    _job(context, run_id)
    with _LOCK:
        data = _data(context, run_id)
        data["updates"] = [*data.get("updates", []), {k: request.get(k) for k in ("status", "end_time", "run_name")}]
        context.emulator.store.put_asset(context.scope, RUNS, run_id, "", data)
    return 200, {"run_info": _run(context, run_id)["info"]}


def _metric(item: Any) -> dict[str, Any]:
    if not isinstance(item, dict) or not isinstance(item.get("key"), str):
        raise TrackingError(400, "INVALID_PARAMETER_VALUE", f"a metric needs a key: {item!r}")
    try:
        value = float(item["value"])
    except (KeyError, TypeError, ValueError):
        raise TrackingError(400, "INVALID_PARAMETER_VALUE", f"metric {item.get('key')!r}: no numeric value") from None
    return {
        "key": item["key"],
        "value": value,
        "timestamp": int(item.get("timestamp") or time.time() * 1000),
        "step": int(item.get("step") or 0),
    }


def _pairs(items: Any, what: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in items or []:
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise TrackingError(400, "INVALID_PARAMETER_VALUE", f"a {what} needs a key: {item!r}")
        pairs[item["key"]] = str(item.get("value", ""))
    return pairs


def _log(context: Context, run_id: str, metrics: list[Any], params: Any, tags: Any) -> Answer:
    job = _job(context, run_id)
    if _STATUS.get(job["status"]) == "KILLED":
        raise TrackingError(400, "INVALID_STATE", f"The run {run_id} must be in the 'active' state.")
    logged, named, tagged = [_metric(m) for m in metrics], _pairs(params, "param"), _pairs(tags, "tag")
    with _LOCK:
        data = _data(context, run_id)
        for key, value in named.items():
            if key in data["params"] and data["params"][key] != value:
                raise TrackingError(
                    400,
                    "INVALID_PARAMETER_VALUE",
                    f"Changing param values is not allowed. Param with key='{key}' was already logged with "
                    f"value='{data['params'][key]}' for run ID='{run_id}'. Attempted logging new value '{value}'.",
                )
        data["metrics"] += logged
        data["params"] |= named
        data["tags"] |= tagged
        context.emulator.store.put_asset(context.scope, RUNS, run_id, "", data)
    return 200, {}


@_answer
def log_batch(context: Context) -> Answer:
    request = _request(context)
    return _log(context, _run_id(request), request.get("metrics") or [], request.get("params"), request.get("tags"))


@_answer
def log_metric(context: Context) -> Answer:
    request = _request(context)
    return _log(context, _run_id(request), [request], [], [])


@_answer
def log_parameter(context: Context) -> Answer:
    request = _request(context)
    return _log(context, _run_id(request), [], [request], [])


@_answer
def set_tag(context: Context) -> Answer:
    request = _request(context)
    return _log(context, _run_id(request), [], [], [request])


def register(routes: Routes) -> None:
    base = r"/mlflow/v[12]\.0{WS}/api/2\.0/mlflow/runs/"
    table: list[tuple[str, str, Handler]] = [
        ("GET", base + "get", get_run),
        ("POST", base + "update", update_run),
        ("POST", base + "log-batch", log_batch),
        ("POST", base + "log-metric", log_metric),
        ("POST", base + "log-parameter", log_parameter),
        ("POST", base + "set-tag", set_tag),
    ]
    for method, pattern, handler in table:
        routes.add(method, pattern, handler)
