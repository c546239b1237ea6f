"""Compute clusters (AmlCompute): stored and answered as Azure ML does; jobs run in the emulator's own processes,
not on their nodes."""

from __future__ import annotations

import re
from typing import Any

from azureml_emulator.core import bodies
from azureml_emulator.core.arm import COMPUTES, LOCATION, system_data
from azureml_emulator.core.context import Context, arm_id
from azureml_emulator.core.errors import ArmError, not_found
from azureml_emulator.core.operations import operation, read_or_delete
from azureml_emulator.core.routing import Answer, Handler, Routes
from azureml_emulator.core.store import now


def compute(context: Context) -> Answer:
    """GET, PUT or DELETE an AmlCompute cluster.

    Long because: the service validates a cluster's name, size and scale settings in one pass before answering, and
    the checks are kept in that order."""
    name, store = context.params["compute"], context.emulator.store
    existing = store.get_asset(context.scope, COMPUTES, name)
    answer = read_or_delete(
        context, existing, f"compute {name!r}", lambda: store.delete_asset(context.scope, COMPUTES, name)
    )
    if answer is not None:
        return answer
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9\-]{1,22}", name):
        raise ArmError(
            400, "BadArgument", f"compute name {name!r}: 2-23 letters, digits or '-', starting with a letter"
        )
    request = context.json()
    properties = dict(request.get("properties") or {})
    if properties.get("computeType") != "AmlCompute":
        raise ArmError(
            400, "BadArgument", f"computeType {properties.get('computeType')!r}: the emulator has AmlCompute"
        )
    inner = dict(properties.get("properties") or {})
    scale = dict(inner.get("scaleSettings") or {})
    low, high = int(scale.get("minNodeCount") or 0), int(scale.get("maxNodeCount") or 1)
    if not 0 <= low <= high:
        raise ArmError(400, "BadArgument", f"scale settings: min nodes {low} must be 0..max nodes {high}")
    inner.setdefault("vmSize", "STANDARD_DS3_V2")
    inner.setdefault("vmPriority", "Dedicated")
    inner["scaleSettings"] = {
        "minNodeCount": low,
        "maxNodeCount": high,
        "nodeIdleTimeBeforeScaleDown": scale.get("nodeIdleTimeBeforeScaleDown") or "PT2M",
    }
    state = bodies.body("compute_state")
    state |= {"allocationStateTransitionTime": now(), "currentNodeCount": low, "targetNodeCount": low}
    state["nodeStateCounts"]["idleNodeCount"] = low
    inner.update(state)
    # Azure answers the admin account without its password: `adminUserPassword` null in the recorded GET
    # (compute/e2etests/test_compute.pyTestComputetest_aml_compute_create_and_delete.json); never echoed
    credentials = {"adminUserName": "azureuser", "adminUserSshPublicKey": ""} | dict(
        inner.get("userAccountCredentials") or {}
    )
    inner["userAccountCredentials"] = credentials | {"adminUserPassword": None}
    inner.setdefault("remoteLoginPortPublicAccess", "NotSpecified")
    inner.setdefault("enableNodePublicIp", True)
    body = bodies.body("compute")
    body |= {
        "id": arm_id(context, "computes", name),
        "name": name,
        "location": request.get("location") or LOCATION,
        "tags": request.get("tags") or {},
        "identity": request.get("identity"),
        "systemData": system_data((existing or {}).get("systemData", {}).get("createdAt") or now(), now()),
    }
    body["properties"] |= {
        "createdOn": (existing or {}).get("properties", {}).get("createdOn") or now(),
        "modifiedOn": now(),
        "computeLocation": request.get("location") or LOCATION,
        "description": properties.get("description"),
        "properties": inner,
    }
    store.put_asset(context.scope, COMPUTES, name, "", body)
    return (201 if existing is None else 200), body, operation(context)


def compute_nodes(context: Context) -> tuple[int, Any]:
    """A cluster's nodes: none run here (jobs run in the emulator's own processes, not on nodes)."""
    name = context.params["compute"]
    if context.emulator.store.get_asset(context.scope, COMPUTES, name) is None:
        raise not_found(f"compute {name!r}")
    return 200, {"nodes": [], "nextLink": None}


def computes(context: Context) -> tuple[int, Any]:
    return 200, {"value": context.emulator.store.list_assets(context.scope, COMPUTES)}


def register(routes: Routes) -> None:
    table: list[tuple[str, str, Handler]] = [
        ("GET", "{WS}/computes", computes),
        *((m, "{WS}/computes/(?P<compute>[^/]+)", compute) for m in ("GET", "PUT", "DELETE")),
        ("POST", "{WS}/computes/(?P<compute>[^/]+)/listNodes", compute_nodes),
    ]
    for method, pattern, handler in table:
        routes.add(method, pattern, handler)
