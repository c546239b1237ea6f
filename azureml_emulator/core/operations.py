"""Azure ML's long-running operations, and the state a resource shows while one runs.

Writes answer 201/202 with `Azure-AsyncOperation` (`.../mfeOperationsStatus/<id>`) and `Location`
(`.../mfeOperationResults/<id>`), as the service does; the work is done before the answer, so the
first poll already reads the outcome. A failed operation keeps the resource (provisioningState
`Failed`), as Azure ML does, and its poll carries the error.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from azureml_emulator.core import bodies
from azureml_emulator.core.arm import LOCATION, OPERATIONS, OPERATIONS_SCOPE, PROVIDER
from azureml_emulator.core.context import Context
from azureml_emulator.core.errors import ArmError, not_found
from azureml_emulator.core.routing import Answer
from azureml_emulator.core.store import now

# Recorded (online_services/e2etests/...test_online_deployment.json, eastus, 2025-02-25), each operation's own
# startTime to endTime: the endpoint 50.6 s, the deployment 389.7 s (its image already built), a traffic update
# 70.1 s. Every PUT answers provisioningState `Creating` with a null scoring URI, the traffic update of an
# existing endpoint too, and `x-ms-async-operation-timeout: PT30M`; the operation's status reads `Updating`
# (endTime 0001-01-01, percentComplete 0.0) until `Succeeded`; no Retry-After anywhere.
# With `--lro-scale F` an operation takes F times as long. F = 0 (the default): the work is done before the
# answer, and the first poll reads the outcome. Deletes, batch endpoints and computes finish at once at any
# scale (the recording ends before its delete does). The endpoint server takes the change at once either way.
RECORDED_SECONDS = {"endpoint-create": 50.6, "endpoint-update": 70.1, "deployment": 389.7}


def busy_seconds(context: Context, kind: str) -> float:
    """How long an operation of `kind` takes on this emulator (0: done at once)."""
    return float(RECORDED_SECONDS[kind] * context.emulator.lro_scale)


def mark_busy(body: dict[str, Any], state: str, seconds: float) -> None:
    """Show `body` in provisioning state `state` (`Creating`, `Updating`) for `seconds`, then its stored state."""
    if seconds > 0:
        body["_emulator"]["busy"] = {"state": state, "until": time.time() + seconds}
    else:
        body["_emulator"].pop("busy", None)


def busy_state(body: dict[str, Any]) -> str | None:
    """The provisioning state an operation in progress shows, or None when none is."""
    busy = body.get("_emulator", {}).get("busy")
    return str(busy["state"]) if busy and busy["until"] > time.time() else None


def refuse_while_busy(body: dict[str, Any] | None, message: str) -> None:
    """A write to an endpoint or deployment with an operation still in flight is refused. The text is Azure's, as
    a customer reported it (azure-sdk-for-net#36961: "Cannot create a deployment in endpoint <name> because it is
    in Updating provisioning state"); the status, 409 Conflict, is ARM's for a resource whose provisioning state
    is not terminal (not in a recording: likely). No Retry-After: none is known on Azure's answer, and with one
    azure-core's RetryPolicy would send the write again by itself (it retries any error that has one), hiding
    whether the client copes."""
    state = busy_state(body) if body is not None else None
    if state is not None:
        raise ArmError(409, "Conflict", message.format(state=state))


def operation(
    context: Context, *, error: str | None = None, code: str = "BadRequest", seconds: float = 0.0
) -> dict[str, str]:
    """Record an operation, finished or finishing in `seconds`; return the headers that point the SDK's poller
    at it. `x-ms-async-operation-timeout: PT30M` is on every recorded endpoint and deployment write."""
    identifier = str(uuid.uuid4())
    body = bodies.body("operation_status")
    body |= {
        "id": f"/subscriptions/{context.params['sub']}/providers/{PROVIDER}/locations/{LOCATION}/mfeOperationsStatus/{identifier}",
        "name": identifier,
        "status": "Failed" if error else "Succeeded",
        "startTime": now(),
        "endTime": now(),
        "_readyAt": time.time() + seconds,
    }
    if error:
        body["error"] = {"code": code, "message": error, "details": []}
    context.emulator.store.put_asset(OPERATIONS_SCOPE, OPERATIONS, identifier, "", body)
    base = (
        f"{context.emulator.base_url}/subscriptions/{context.params['sub']}/providers/{PROVIDER}/locations/{LOCATION}"
    )
    version = context.query.get("api-version", "2023-04-01")
    return {
        "Azure-AsyncOperation": f"{base}/mfeOperationsStatus/{identifier}?api-version={version}",
        "Location": f"{base}/mfeOperationResults/{identifier}?api-version={version}",
        "x-ms-async-operation-timeout": "PT30M",
        **retry_after(seconds),
    }


def retry_after(seconds: float) -> dict[str, str]:
    """Azure sends no Retry-After on these operations, and the SDK then polls every 5 to 30 s. At a scaled time
    the emulator says when to look again (what is left, at least 50 ms), so tests do not wait a real interval."""
    return {"Retry-After": f"{max(seconds, 0.05):.2f}" if seconds > 0 else "0"}


def read_operation(context: Context) -> tuple[dict[str, Any], float]:
    """The public body of the request's operation as of now, and the seconds it has left."""
    body = context.emulator.store.get_asset(OPERATIONS_SCOPE, OPERATIONS, context.params["operation"])
    if body is None:
        raise not_found(f"operation {context.params['operation']!r}")
    left = float(body.pop("_readyAt", 0.0)) - time.time()
    if left > 0:
        running = bodies.body("operation_in_progress")
        return {**{k: body[k] for k in ("id", "name", "startTime")}, **running}, left
    return body, 0.0


def read_or_delete(
    context: Context, existing: dict[str, Any] | None, what: str, remove: Callable[[], Any]
) -> Answer | None:
    """GET: the stored body (404 when absent). DELETE: `remove()`, as a long-running operation (204 when absent).
    None for a write, which the caller handles."""
    if context.method == "GET":
        if existing is None:
            raise not_found(what)
        return 200, public(existing)
    if context.method == "DELETE":
        if existing is None:
            return 204, None
        remove()
        return 202, None, operation(context)
    return None


def public(body: dict[str, Any], *, written: bool = False) -> dict[str, Any]:
    """The body as Azure answers it now: no emulator fields, and while an operation runs, its state. A write's
    own answer (`written`) says `Creating` with no scoring URI, as recorded for a create and an update alike; a
    read meanwhile (not recorded) says `Creating` for a new resource and `Updating` for a changed one, which keeps
    its scoring URI."""
    result = {k: v for k, v in body.items() if k != "_emulator"}
    state = busy_state(body)
    if state is not None:
        state = "Creating" if written else state
        properties = result["properties"] = dict(result["properties"])
        properties["provisioningState"] = state
        if state == "Creating" and "scoringUri" in properties:
            properties["scoringUri"] = properties["swaggerUri"] = None
    return result
