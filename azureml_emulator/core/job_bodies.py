"""A job as the emulator stores it, shared by the jobs handlers, batch invocations and the job runner: the
request with the defaults the service adds, where its outputs go, and its time limit."""

from __future__ import annotations

import re
from typing import Any

from azureml_emulator.core.arm import BLOB_CONTAINER

_DEFAULT_TIMEOUT = 3600.0


def prepare(name: str, body: dict[str, Any]) -> dict[str, Any]:
    """The stored body: the request with the defaults the service adds.

    Long because: the defaults the service adds to a job are many small field rules, listed in one place as
    the service returns them."""
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
        "_azureml.ClusterName": compute_name(properties.get("computeId")) or "",
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


def output_uri(scope: str, job: str, output: str) -> tuple[str, str, str]:
    """(uri, container, prefix) where a finished job's output is kept."""
    sub, rg, ws = scope.split("/")
    prefix = f"azureml/{job}/{output}/"
    uri = f"azureml://subscriptions/{sub}/resourcegroups/{rg}/workspaces/{ws}/datastores/workspaceblobstore/paths/{prefix}"
    return uri, BLOB_CONTAINER, prefix


def job_timeout(limits: Any) -> float:
    """Seconds from a job's `limits.timeout` (ISO 8601, `PT1H30M`, as the SDK sends it); an hour when unset."""
    value = (limits or {}).get("timeout")
    if isinstance(value, int | float):
        return float(value)
    match = re.fullmatch(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?", str(value or ""))
    if not value or match is None:
        return _DEFAULT_TIMEOUT
    days, hours, minutes, seconds = (float(part or 0) for part in match.groups())
    return days * 86400 + hours * 3600 + minutes * 60 + seconds or _DEFAULT_TIMEOUT


def compute_name(compute_id: object) -> str | None:
    return str(compute_id).rstrip("/").rsplit("/", 1)[-1] if compute_id else None
