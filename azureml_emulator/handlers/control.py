"""The emulator's own routes, not Azure's: its health and request log (`mlops emulator status`, the tests), and
endpoint names marked as held by someone else in the region, and whether the caller holds a data role on the
storage account."""

from __future__ import annotations

from typing import Any

from azureml_emulator.core.arm import DATA_ROLE, OPERATIONS_SCOPE, TAKEN
from azureml_emulator.core.context import Context
from azureml_emulator.core.errors import ArmError
from azureml_emulator.core.routing import Handler, Routes
from azureml_emulator.core.store import now


def emulator_health(context: Context) -> tuple[int, Any]:
    return 200, {"status": "ok", "url": context.emulator.base_url, "home": str(context.emulator.home)}


def emulator_requests(context: Context) -> tuple[int, Any]:
    return 200, {"value": context.emulator.store.requests(bodies=context.query.get("bodies") == "true")}


def take_endpoint_name(context: Context) -> tuple[int, Any]:
    """Mark a name as held by someone else in the region (`core.endpoints.check_region_name` refuses it)."""
    context.emulator.store.put_asset(OPERATIONS_SCOPE, TAKEN, context.params["name"].lower(), "", {"taken": now()})
    return 200, {"name": context.params["name"], "taken": True}


def storage_data_role(context: Context) -> tuple[int, Any]:
    """Whether the caller's token holds a data role ("Storage Blob Data Contributor") on the storage account:
    `{"granted": false}` makes the blob service refuse bearer tokens with 403 (see `core/blobs.py`)."""
    granted = context.json().get("granted")
    if not isinstance(granted, bool):
        raise ArmError(400, "BadRequest", "the body needs 'granted': true or false")
    context.emulator.store.put_asset(OPERATIONS_SCOPE, DATA_ROLE, "caller", "", {"granted": granted})
    return 200, {"granted": granted}


def register(routes: Routes) -> None:
    table: list[tuple[str, str, Handler]] = [
        ("GET", "/emulator/health", emulator_health),
        ("GET", "/emulator/requests", emulator_requests),
        ("PUT", "/emulator/taken-endpoint-names/(?P<name>[^/]+)", take_endpoint_name),
        ("PUT", "/emulator/storage-data-role", storage_data_role),
    ]
    for method, pattern, handler in table:
        routes.add(method, pattern, handler)
