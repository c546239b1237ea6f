"""The status of Azure ML's long-running operations, which the SDK's pollers read (`core.operations` records them)."""

from __future__ import annotations

from typing import Any

from azureml_emulator.core.arm import PROVIDER
from azureml_emulator.core.context import Context
from azureml_emulator.core.errors import ArmError
from azureml_emulator.core.operations import read_operation, retry_after
from azureml_emulator.core.routing import Answer, Handler, Routes


def operation_status(context: Context) -> tuple[int, Any, dict[str, str]]:
    body, left = read_operation(context)
    return 200, body, retry_after(left)


def operation_result(context: Context) -> Answer:
    body, left = read_operation(context)
    if left > 0:
        query = "&".join(f"{k}={v}" for k, v in context.query.items())
        return 202, None, {"Location": f"{context.emulator.base_url}{context.path}?{query}", **retry_after(left)}
    if body["status"] == "Failed":
        raise ArmError(400, body["error"]["code"], body["error"]["message"])
    return 200, None


def register(routes: Routes) -> None:
    operations = f"/subscriptions/(?P<sub>[^/]+)/providers/{PROVIDER}/locations/[^/]+"
    table: list[tuple[str, str, Handler]] = [
        ("GET", operations + "/mfeOperationsStatus/(?P<operation>[^/]+)", operation_status),
        ("GET", operations + "/mfeOperationResults/(?P<operation>[^/]+)", operation_result),
        ("GET", operations + "/workspaceOperationsStatus/(?P<operation>[^/]+)", operation_status),
    ]
    for method, pattern, handler in table:
        routes.add(method, pattern, handler)
