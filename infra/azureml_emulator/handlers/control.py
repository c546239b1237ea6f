"""The emulator's own routes, not Azure's: its health and request log (`mlops emulator status`, the tests), and
endpoint names marked as held by someone else in the region."""

from __future__ import annotations

from typing import Any

from infra.azureml_emulator.core.arm import OPERATIONS_SCOPE, TAKEN
from infra.azureml_emulator.core.context import Context
from infra.azureml_emulator.core.routing import Handler, Routes
from infra.azureml_emulator.core.store import now


def emulator_health(context: Context) -> tuple[int, Any]:
    return 200, {"status": "ok", "url": context.emulator.base_url, "home": str(context.emulator.home)}


def emulator_requests(context: Context) -> tuple[int, Any]:
    return 200, {"value": context.emulator.store.requests(bodies=context.query.get("bodies") == "true")}


def take_endpoint_name(context: Context) -> tuple[int, Any]:
    """Mark a name as held by someone else in the region (`core.endpoints.check_region_name` refuses it)."""
    context.emulator.store.put_asset(OPERATIONS_SCOPE, TAKEN, context.params["name"].lower(), "", {"taken": now()})
    return 200, {"name": context.params["name"], "taken": True}


def register(routes: Routes) -> None:
    table: list[tuple[str, str, Handler]] = [
        ("GET", "/emulator/health", emulator_health),
        ("GET", "/emulator/requests", emulator_requests),
        ("PUT", "/emulator/taken-endpoint-names/(?P<name>[^/]+)", take_endpoint_name),
    ]
    for method, pattern, handler in table:
        routes.add(method, pattern, handler)
