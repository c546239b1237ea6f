"""Online and batch endpoints in the emulator, with Azure ML's long-running operations.

Each emulated online endpoint is one local endpoint server (`infra.local.endpoint`), over HTTPS with
the emulator's certificate, on its own port from `--endpoint-port` upward: its deployments are real
`score.py` bundles assembled from the code and model assets, and traffic, mirror traffic and keys
are the server's. A batch endpoint's invoke submits a job that the job runner really runs: the
deployment's scoring script over the input folder, mini-batch by mini-batch
(`infra.azureml_emulator.batch_driver`).

Writes answer 201/202 with `Azure-AsyncOperation` (`.../mfeOperationsStatus/<id>`) and `Location`
(`.../mfeOperationResults/<id>`), as the service does; the work is done before the answer, so the
first poll already reads the outcome. A failed operation keeps the resource (provisioningState
`Failed`), as Azure ML does, and its poll carries the error.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import infra
from infra.azureml_emulator.resources import (
    PROVIDER,
    ArmError,
    Context,
    not_found,
    system_data,
    workspace_guid,
)
from infra.azureml_emulator.store import now
from infra.backend import Bundle
from infra.errors import MLOpsError

ONLINE, ONLINE_DEPLOYMENTS = "onlineEndpoints", "onlineDeployments"
BATCH, BATCH_DEPLOYMENTS = "batchEndpoints", "batchDeployments"
COMPUTES = "computes"
SCHEDULES = "schedules"
OPERATIONS_SCOPE, OPERATIONS = "-", "operations"
LOCATION = "eastus"
_ENDPOINT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9\-]{1,30}[A-Za-z0-9]")
_AUTH_MODES = {"key": "Key", "amltoken": "AMLToken", "aadtoken": "AADToken"}
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock(key: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(key, threading.Lock())


def check_endpoint_name(name: str) -> None:
    if not _ENDPOINT_NAME.fullmatch(name):
        raise ArmError(
            400,
            "BadArgument",
            f"endpoint name {name!r} is invalid: 3-32 characters, letters, digits and '-', starting with a "
            "letter and not ending with '-'",
        )


TAKEN = "takenEndpointNames"  # names "someone else" holds in the region (`PUT /emulator/taken-endpoint-names/{name}`)


def check_region_name(context: Context, name: str, *, batch: bool) -> None:
    """An endpoint name is unique in its Azure region across every customer's workspaces, online and batch alike
    (one DNS name, `<name>.<region>.inference.ml.azure.com`). The emulator is one region: a name held by another
    of its workspaces, or marked taken, is refused with the error Azure gives. Online: azureml-examples PR 1931
    ("There is already an endpoint with this name, Endpoint name needs to be unique within a region. Try some
    other name."); batch: ansible azcollection PR 2231 ("(UserError) The specified endpoint name '...' is not
    available. Endpoint names must be unique within the region. Please choose a different name and try again.")."""
    store = context.emulator.store
    held = store.get_asset(OPERATIONS_SCOPE, TAKEN, name.lower()) is not None or any(
        scope != context.scope and other.lower() == name.lower()
        for kind in (ONLINE, BATCH)
        for scope, other, _ in store.all_assets(kind)
    )
    if not held:
        return
    if batch:
        raise ArmError(
            400,
            "UserError",
            f"The specified endpoint name '{name}' is not available. Endpoint names must be unique within the "
            "region. Please choose a different name and try again.",
        )
    raise ArmError(
        400,
        "BadRequest",
        "There is already an endpoint with this name, Endpoint name needs to be unique within a region. "
        "Try some other name.",
    )


def take_endpoint_name(context: Context) -> tuple[int, Any]:
    """The emulator's own route: mark a name as held by someone else in the region."""
    context.emulator.store.put_asset(OPERATIONS_SCOPE, TAKEN, context.params["name"].lower(), "", {"taken": now()})
    return 200, {"name": context.params["name"], "taken": True}


# ---------------------------------------------------------------- long-running operations
# Recorded (online_services/e2etests/...test_online_deployment.json, eastus, 2025-02-25), each operation's own
# startTime to endTime: the endpoint 50.6 s, the deployment 389.7 s (its image already built), a traffic update
# 70.1 s. Every PUT answers provisioningState `Creating` with a null scoring URI, the traffic update of an
# existing endpoint too, and `x-ms-async-operation-timeout: PT30M`; the operation's status reads `Updating`
# (endTime 0001-01-01, percentComplete 0.0) until `Succeeded`; no Retry-After anywhere.
# With `--lro-scale F` an operation takes F times as long. F = 0 (the default): the work is done before the
# answer, and the first poll reads the outcome. Deletes, batch endpoints and computes finish at once at any
# scale (the recording ends before its delete does). The endpoint server takes the change at once either way.
RECORDED_SECONDS = {"endpoint-create": 50.6, "endpoint-update": 70.1, "deployment": 389.7}
_IN_PROGRESS = "Updating"


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
    body: dict[str, Any] = {
        "id": f"/subscriptions/{context.params['sub']}/providers/{PROVIDER}/locations/{LOCATION}/mfeOperationsStatus/{identifier}",
        "name": identifier,
        "status": "Failed" if error else "Succeeded",
        "startTime": now(),
        "endTime": now(),
        "percentComplete": 100.0,
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
        **_retry_after(seconds),
    }


def _retry_after(seconds: float) -> dict[str, str]:
    """Azure sends no Retry-After on these operations, and the SDK then polls every 5 to 30 s. At a scaled time
    the emulator says when to look again (what is left, at least 50 ms), so tests do not wait a real interval."""
    return {"Retry-After": f"{max(seconds, 0.05):.2f}" if seconds > 0 else "0"}


def _operation(context: Context) -> tuple[dict[str, Any], float]:
    """The operation's public body as of now, and the seconds it has left."""
    body = context.emulator.store.get_asset(OPERATIONS_SCOPE, OPERATIONS, context.params["operation"])
    if body is None:
        raise not_found(f"operation {context.params['operation']!r}")
    left = float(body.pop("_readyAt", 0.0)) - time.time()
    if left > 0:
        running = {"endTime": "0001-01-01T00:00:00+00:00", "percentComplete": 0.0, "status": _IN_PROGRESS}
        return {**{k: body[k] for k in ("id", "name", "startTime")}, **running}, left
    return body, 0.0


def operation_status(context: Context) -> tuple[int, Any, dict[str, str]]:
    body, left = _operation(context)
    return 200, body, _retry_after(left)


def operation_result(context: Context) -> tuple[int, Any] | tuple[int, Any, dict[str, str]]:
    body, left = _operation(context)
    if left > 0:
        query = "&".join(f"{k}={v}" for k, v in context.query.items())
        return 202, None, {"Location": f"{context.emulator.base_url}{context.path}?{query}", **_retry_after(left)}
    if body["status"] == "Failed":
        raise ArmError(400, body["error"]["code"], body["error"]["message"])
    return 200, None


# ---------------------------------------------------------------- the servers behind online endpoints
def endpoint_folder(emulator: Any, scope: str, name: str) -> Path:
    return Path(emulator.home) / "endpoints" / hashlib.sha256(scope.encode()).hexdigest()[:12] / name


def runtime(emulator: Any, scope: str, name: str, port: int) -> Any:
    """The local endpoint server of one emulated endpoint (`infra.local.endpoint.LocalEndpoints`)."""
    from infra.azureml_emulator.tls import CERT_FILE, KEY_FILE
    from infra.local.endpoint import LocalEndpoints

    tls_dir = Path(emulator.home) / "tls"
    return LocalEndpoints(
        endpoint_folder(emulator, scope, name).parent,
        port=port,
        start_timeout=120,
        tls=(tls_dir / CERT_FILE, tls_dir / KEY_FILE),
        port_variable="MLOPS_AZUREML_EMULATOR_ENDPOINT_PORT",
    )


def _free_port(emulator: Any) -> int:
    """The lowest port from `--endpoint-port` that no emulated endpoint holds and nothing listens on."""
    taken = {int(body["_emulator"]["port"]) for _, _, body in emulator.store.all_assets(ONLINE)}
    port = emulator.endpoint_port
    while True:
        if port not in taken:
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    pass
                else:
                    return int(port)
        port += 1
        if port > 65535:
            raise ArmError(503, "ServiceUnavailable", "no free port for another online endpoint")


def start_endpoints(emulator: Any) -> list[str]:
    """At the emulator's start: start the server of every online endpoint (deployments and traffic restored)."""
    started = []
    for scope, name, body in emulator.store.all_assets(ONLINE):
        try:
            runtime(emulator, scope, name, body["_emulator"]["port"]).ensure(name)
            started.append(name)
        except MLOpsError as exc:
            print(f"online endpoint {name} did not start: {exc}", flush=True)  # noqa: T201 - its log
    return started


def stop_endpoints(emulator: Any) -> None:
    """At the emulator's stop: stop every online endpoint's server (they start again with it)."""
    for scope, name, body in emulator.store.all_assets(ONLINE):
        runtime(emulator, scope, name, body["_emulator"]["port"]).stop(name)


def stop_scope_endpoints(emulator: Any, scope: str) -> None:
    """A deleted workspace's online endpoints stop serving."""
    for endpoint_scope, name, body in emulator.store.all_assets(ONLINE):
        if endpoint_scope == scope:
            runtime(emulator, scope, name, body["_emulator"]["port"]).stop(name)


def _read_or_delete(
    context: Context, existing: dict[str, Any] | None, what: str, remove: Any
) -> tuple[int, Any] | tuple[int, Any, dict[str, str]] | None:
    """GET: the stored body (404 when absent). DELETE: `remove()`, as a long-running operation (204 when absent).
    None for a write, which the caller handles."""
    if context.method == "GET":
        if existing is None:
            raise not_found(what)
        return 200, _public(existing)
    if context.method == "DELETE":
        if existing is None:
            return 204, None
        remove()
        return 202, None, operation(context)
    return None


def _public(body: dict[str, Any], *, written: bool = False) -> dict[str, Any]:
    """The body as Azure answers it now: no emulator fields, and while an operation runs, its state. A write's
    own answer (`written`) says `Creating` with no scoring URI, as recorded for a create and an update alike; a
    read meanwhile (not recorded) says `Creating` for a new resource and `Updating` for a changed one, which keeps
    its scoring URI."""
    public = {k: v for k, v in body.items() if k != "_emulator"}
    state = busy_state(body)
    if state is not None:
        state = "Creating" if written else state
        properties = public["properties"] = dict(public["properties"])
        properties["provisioningState"] = state
        if state == "Creating" and "scoringUri" in properties:
            properties["scoringUri"] = properties["swaggerUri"] = None
    return public


def _arm_id(context: Context, *parts: str) -> str:
    return "/".join([context.workspace_id, *parts])


# ---------------------------------------------------------------- online endpoints
def online_endpoint(context: Context) -> tuple[int, Any] | tuple[int, Any, dict[str, str]]:
    name = context.params["endpoint"]
    store = context.emulator.store
    existing = store.get_asset(context.scope, ONLINE, name)

    def remove() -> None:
        assert existing is not None
        with _lock(context.scope + "/" + name):
            runtime(context.emulator, context.scope, name, existing["_emulator"]["port"]).stop(name)
            for deployment in store.list_assets(context.scope, ONLINE_DEPLOYMENTS):
                if deployment["_emulator"]["endpoint"] == name:
                    store.delete_asset(context.scope, ONLINE_DEPLOYMENTS, deployment["_emulator"]["key"])
            store.delete_asset(context.scope, ONLINE, name)
            shutil.rmtree(endpoint_folder(context.emulator, context.scope, name), ignore_errors=True)

    answer = _read_or_delete(context, existing, f"online endpoint {name!r}", remove)
    if answer is not None:
        return answer
    check_endpoint_name(name)
    if existing is None:
        check_region_name(context, name, batch=False)
    request = context.json()
    properties = request.get("properties") or {}
    mode = _AUTH_MODES.get(str(properties.get("authMode", "Key")).lower())
    if mode is None:
        raise ArmError(400, "BadArgument", f"authMode {properties.get('authMode')!r}: use Key, AMLToken or AADToken")
    refuse_while_busy(existing, f"Cannot update endpoint {name} because it is in {{state}} provisioning state.")
    with _lock(context.scope + "/" + name):
        created_now = existing is None
        if existing is None:
            port = _free_port(context.emulator)
            created = now()
            existing = {
                "_emulator": {"port": port},
                "id": _arm_id(context, "onlineEndpoints", name),
                "name": name,
                "type": f"{PROVIDER}/workspaces/onlineEndpoints",
                "kind": "Managed",
                "location": request.get("location") or LOCATION,
                "identity": {
                    "type": "SystemAssigned",
                    "principalId": workspace_guid("endpoint" + context.scope + name),
                    "tenantId": workspace_guid("tenant"),
                    "userAssignedIdentities": None,
                },
                "systemData": system_data(created),
                "properties": {
                    "authMode": mode,
                    "scoringUri": f"https://127.0.0.1:{port}/score",
                    "swaggerUri": f"https://127.0.0.1:{port}/swagger.json",
                    "provisioningState": "Succeeded",
                    "compute": None,
                    "publicNetworkAccess": "Enabled",
                    "traffic": {},
                    "mirrorTraffic": {},
                    "properties": {"azureml.onlineendpointid": _arm_id(context, "onlineEndpoints", name).lower()},
                },
            }
        served = runtime(context.emulator, context.scope, name, existing["_emulator"]["port"])
        error = None
        try:
            served.ensure(name)
            if "traffic" in properties and properties["traffic"] is not None:
                traffic = {k: int(v) for k, v in properties["traffic"].items()}
                mirror = {k: int(v) for k, v in (properties.get("mirrorTraffic") or {}).items()}
                _check_mirror(mirror)
                _check_deployments(context, name, set(traffic) | set(mirror))
                state = served.set_traffic(name, {d: traffic.get(d, 0) for d in _deployments(context, name)})
                existing["properties"]["traffic"] = {d: state.traffic()[d] for d in traffic if d in state.traffic()}
                try:
                    served.set_mirror(name, mirror)
                finally:  # what the server holds, also when it refused the mirror (a live deployment is not mirrored)
                    existing["properties"]["mirrorTraffic"] = {d: p for d, p in served.mirror(name).items() if p}
            else:
                existing["properties"]["mirrorTraffic"] = existing["properties"].get("mirrorTraffic", {})
        except ArmError:
            raise
        except MLOpsError as exc:
            error = str(exc)
        existing["tags"] = request.get("tags") or existing.get("tags") or {}
        existing["properties"]["description"] = properties.get("description")
        existing["properties"]["authMode"] = mode
        existing["systemData"] = system_data(existing["systemData"]["createdAt"], now())
        kind = "endpoint-create" if created_now else "endpoint-update"
        seconds = busy_seconds(context, kind)
        mark_busy(existing, "Creating" if created_now else "Updating", seconds)
        headers = operation(context, error=error, seconds=seconds)
        existing["properties"]["properties"]["AzureAsyncOperationUri"] = headers["Azure-AsyncOperation"]
        context.emulator.store.put_asset(context.scope, ONLINE, name, "", existing)
    return (201 if error is None else 200), _public(existing, written=True), headers


def _deployments(context: Context, endpoint: str) -> list[str]:
    return [
        d["name"]
        for d in context.emulator.store.list_assets(context.scope, ONLINE_DEPLOYMENTS)
        if d["_emulator"]["endpoint"] == endpoint
        and d["properties"]["provisioningState"] == "Succeeded"
        and busy_state(d) is None
    ]


def _check_deployments(context: Context, endpoint: str, names: set[str]) -> None:
    unknown = sorted(names - set(_deployments(context, endpoint)))
    if unknown:
        raise ArmError(
            400,
            "BadArgument",
            f"traffic names deployment(s) {', '.join(unknown)} that do not exist (or did not succeed) on "
            f"endpoint {endpoint!r}",
        )


def online_endpoints(context: Context) -> tuple[int, Any]:
    return 200, {"value": [_public(b) for b in context.emulator.store.list_assets(context.scope, ONLINE)]}


def _endpoint_or_404(context: Context, kind: str = ONLINE) -> dict[str, Any]:
    name = context.params["endpoint"]
    found = context.emulator.store.get_asset(context.scope, kind, name)
    if found is None:
        raise not_found(f"{'online' if kind == ONLINE else 'batch'} endpoint {name!r}")
    return found


def list_keys(context: Context) -> tuple[int, Any]:
    found = _endpoint_or_404(context)
    if found["properties"]["authMode"] != "Key":
        raise ArmError(
            400, "BadArgument", f"endpoint {found['name']!r} uses {found['properties']['authMode']}, not keys"
        )
    keys = _keys(context, found)
    return 200, {"primaryKey": keys["primary"], "secondaryKey": keys["secondary"]}


def _keys(context: Context, found: dict[str, Any]) -> dict[str, str]:
    served = runtime(context.emulator, context.scope, found["name"], found["_emulator"]["port"])
    keys: dict[str, str] = served.process(found["name"]).keys()
    return keys


def regenerate_keys(context: Context) -> tuple[int, Any, dict[str, str]]:
    import secrets

    found = _endpoint_or_404(context)
    kind = str(context.json().get("keyType", "")).lower()
    if kind not in ("primary", "secondary"):
        raise ArmError(400, "BadArgument", "keyType must be Primary or Secondary")
    name = found["name"]
    with _lock(context.scope + "/" + name):
        served = runtime(context.emulator, context.scope, name, found["_emulator"]["port"])
        process = served.process(name)
        keys = process.keys()
        # azure-ai-ml sends the current key as keyValue, and expects a new one: only another value is taken as given
        wanted = context.json().get("keyValue")
        keys[kind] = str(wanted) if wanted and wanted != keys[kind] else secrets.token_urlsafe(32)
        path = process.folder / "keys.json"
        temporary = path.with_suffix(".new")
        temporary.write_text(json.dumps(keys))
        temporary.chmod(0o600)
        temporary.replace(path)
        served.stop(name)  # the server reads its keys at start
        served.ensure(name)
    return 202, None, operation(context)


def token(context: Context) -> tuple[int, Any]:
    found = _endpoint_or_404(context)
    if found["properties"]["authMode"] != "AMLToken":
        raise ArmError(
            400, "BadArgument", f"endpoint {found['name']!r} uses {found['properties']['authMode']}, not tokens"
        )
    expiry = int(time.time()) + 3600
    return 200, {
        "accessToken": _keys(context, found)["primary"],
        "tokenType": "Bearer",
        "expiryTimeUtc": expiry,
        "refreshAfterTimeUtc": expiry - 1800,
    }


# ---------------------------------------------------------------- online deployments
def online_deployment(context: Context) -> tuple[int, Any] | tuple[int, Any, dict[str, str]]:
    endpoint = _endpoint_or_404(context)
    name, store = context.params["deployment"], context.emulator.store
    key = f"{endpoint['name']}/{name}"
    existing = store.get_asset(context.scope, ONLINE_DEPLOYMENTS, key)
    served = runtime(context.emulator, context.scope, endpoint["name"], endpoint["_emulator"]["port"])
    share = endpoint["properties"]["traffic"].get(name, 0)
    if context.method == "DELETE" and existing and share:
        raise ArmError(
            400,
            "BadArgument",
            f"deployment {name!r} takes {share} % of endpoint {endpoint['name']!r}'s traffic; move it first",
        )

    def remove() -> None:
        with _lock(context.scope + "/" + endpoint["name"]):
            state = served.get(endpoint["name"])
            if state is not None and name in state.deployments:
                served.remove_deployment(endpoint["name"], name)
            store.delete_asset(context.scope, ONLINE_DEPLOYMENTS, key)

    answer = _read_or_delete(context, existing, f"deployment {name!r} of endpoint {endpoint['name']!r}", remove)
    if answer is not None:
        return answer
    check_endpoint_name(name)
    refuse_while_busy(
        endpoint,
        f"Cannot create a deployment in endpoint {endpoint['name']} because it is in {{state}} provisioning state.",
    )
    refuse_while_busy(existing, f"Cannot update deployment {name} because it is in {{state}} provisioning state.")
    request = context.json()
    properties = dict(request.get("properties") or {})
    model, code, _ = _deployment_assets(context, properties)  # the environment is checked, not built
    sku = request.get("sku") or {}
    capacity = int(sku.get("capacity") or 1)
    if capacity < 1:
        raise ArmError(400, "BadArgument", f"instance count {capacity}: a deployment needs at least 1 instance")
    if not properties.get("instanceType"):
        raise ArmError(400, "BadArgument", "a managed online deployment needs an instanceType")
    properties.setdefault("scaleSettings", {"scaleType": "Default"})
    properties["scaleSettings"] = properties["scaleSettings"] or {"scaleType": "Default"}
    properties["requestSettings"] = {
        "maxQueueWait": "PT0S",
        "requestTimeout": "PT5S",
        "maxConcurrentRequestsPerInstance": 1,
        **(properties.get("requestSettings") or {}),
    }
    probe = {
        "failureThreshold": 30,
        "successThreshold": 1,
        "timeout": "PT2S",
        "period": "PT10S",
        "initialDelay": "PT10S",
    }
    properties["livenessProbe"] = {**probe, **(properties.get("livenessProbe") or {})}
    properties["readinessProbe"] = {**probe, **(properties.get("readinessProbe") or {})}
    parts = str(model["id"]).split("/")
    properties["environmentVariables"] = {
        "AZUREML_MODEL_DIR": f"/var/azureml-app/azureml-models/{parts[-3]}/{parts[-1]}",
        "AZUREML_ENTRY_SCRIPT": str((properties.get("codeConfiguration") or {}).get("scoringScript")),
        "AML_APP_ROOT": "/var/azureml-app/onlinescoring",
        **(properties.get("environmentVariables") or {}),
    }
    for field in ("description", "modelMountPath", "dataCollector"):
        properties.setdefault(field, None)
    properties.setdefault("appInsightsEnabled", False)
    properties.setdefault("egressPublicNetworkAccess", "Enabled")
    properties.setdefault("properties", {})
    body: dict[str, Any] = {
        "_emulator": {"endpoint": endpoint["name"], "key": key},
        "id": _arm_id(context, "onlineEndpoints", endpoint["name"], "deployments", name),
        "name": name,
        "type": f"{PROVIDER}/workspaces/onlineEndpoints/deployments",
        "kind": "Managed",
        "location": request.get("location") or endpoint["location"],
        "tags": request.get("tags") or {},
        "sku": {"name": "Default", "tier": "Standard", "capacity": capacity},
        "systemData": system_data((existing or {}).get("systemData", {}).get("createdAt") or now(), now()),
        "properties": {**properties, "endpointComputeType": "Managed", "provisioningState": "Updating"},
    }
    error = None
    with _lock(context.scope + "/" + endpoint["name"]):
        try:
            bundle = _assemble_bundle(context, endpoint["name"], name, model, code, properties)
            served.ensure(endpoint["name"])
            served.add_deployment(endpoint["name"], name, bundle)
        except (MLOpsError, OSError) as exc:
            error = f"deployment {name!r} failed to start: {exc}"
        body["properties"]["provisioningState"] = "Failed" if error else "Succeeded"
        seconds = busy_seconds(context, "deployment")
        mark_busy(body, "Creating" if existing is None else "Updating", seconds)
        headers = operation(context, error=error, code="DeploymentFailed", seconds=seconds)
        body["properties"]["properties"] = {
            **(body["properties"].get("properties") or {}),
            "AzureAsyncOperationUri": headers["Azure-AsyncOperation"],
        }
        store.put_asset(context.scope, ONLINE_DEPLOYMENTS, key, "", body)
    return (201 if existing is None else 200), _public(body, written=True), headers


def _list_deployments(context: Context, endpoint_kind: str, kind: str) -> tuple[int, Any]:
    endpoint = _endpoint_or_404(context, endpoint_kind)
    found = context.emulator.store.list_assets(context.scope, kind)
    return 200, {"value": [_public(d) for d in found if d["_emulator"]["endpoint"] == endpoint["name"]]}


def online_deployments(context: Context) -> tuple[int, Any]:
    return _list_deployments(context, ONLINE, ONLINE_DEPLOYMENTS)


def deployment_logs(context: Context) -> tuple[int, Any]:
    """The endpoint server's log lines about this deployment (the SDK's `get_logs`)."""
    endpoint = _endpoint_or_404(context)
    name = context.params["deployment"]
    tail = int(context.json().get("tail") or 100)
    log = endpoint_folder(context.emulator, context.scope, endpoint["name"]) / "server.log"
    lines = log.read_text(errors="replace").splitlines() if log.is_file() else []
    mine = [line for line in lines if f'"deployment":"{name}"' in line or not line.startswith("{")]
    return 200, {"content": "\n".join(mine[-tail:])}


def _check_mirror(mirror: dict[str, int]) -> None:
    """Microsoft Learn, "Safe rollout for online endpoints": "You can mirror traffic to only one deployment in an
    endpoint" and "The maximum percentage of traffic you can mirror is 50 percent" (REST: mirror traffic values
    "need to sum to utmost 50"). No refusal is recorded: the messages are the emulator's."""
    mirrored = {d: p for d, p in mirror.items() if p}
    if len(mirrored) > 1:
        raise ArmError(
            400, "BadArgument", f"mirror traffic goes to one deployment only; asked for {', '.join(sorted(mirrored))}"
        )
    if sum(mirrored.values()) > 50:
        raise ArmError(400, "BadArgument", f"mirror traffic sums to {sum(mirrored.values())}; at most 50 percent")


def _asset_body(context: Context, reference: str, kind: str, what: str) -> dict[str, Any]:
    from infra.azureml_emulator.jobs import asset_reference

    parsed = asset_reference(reference.removeprefix("azureml:"))
    if parsed is None or parsed[0] != kind:
        raise ArmError(400, "BadArgument", f"{what} {reference!r} is not an asset id of kind {kind}")
    body = context.emulator.store.get_asset(context.scope, *parsed)
    if body is None:
        raise ArmError(400, "BadArgument", f"{what} {reference!r} does not exist in workspace {context.params['ws']!r}")
    return body


def _deployment_assets(
    context: Context, properties: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    from infra.azureml_emulator.jobs import curated_environment

    model_ref = properties.get("model")
    if isinstance(model_ref, dict):  # batch deployments: {"referenceType": "Id", "assetId": ...}
        model_ref = model_ref.get("assetId")
    if not model_ref:
        raise ArmError(400, "BadArgument", "a deployment needs a model")
    model = _asset_body(context, str(model_ref), "models", "model")
    configuration = properties.get("codeConfiguration") or {}
    if not configuration.get("codeId") or not configuration.get("scoringScript"):
        raise ArmError(400, "BadArgument", "a deployment needs codeConfiguration with codeId and scoringScript")
    code = _asset_body(context, str(configuration["codeId"]), "codes", "code")
    if not properties.get("environmentId"):
        raise ArmError(400, "BadArgument", "a deployment needs an environmentId")
    if curated_environment(str(properties["environmentId"])):
        return model, code, {}
    environment = _asset_body(context, str(properties["environmentId"]), "environments", "environment")
    return model, code, environment


def _model_id(model: dict[str, Any]) -> str:
    parts = str(model["id"]).split("/")
    return f"{parts[-3]}:{parts[-1]}"


def _assemble_bundle(
    context: Context,
    endpoint: str,
    deployment: str,
    model: dict[str, Any],
    code: dict[str, Any],
    properties: dict[str, Any],
) -> Bundle:
    """The deployment's files as the server loads them: `code/` (the code asset), `model/<folder>/`, `bundle.json`."""
    from infra.azureml_emulator.runner import JobFailure, blob_location, copy_blobs

    folder = (
        endpoint_folder(context.emulator, context.scope, endpoint) / "bundles" / f"{deployment}-{uuid.uuid4().hex[:8]}"
    )
    try:
        container, prefix = blob_location(context.emulator, str(code["properties"]["codeUri"]))
        copy_blobs(context.emulator, container, prefix, folder / "code")
        model_uri = str(model["properties"]["modelUri"])
        container, prefix = blob_location(context.emulator, model_uri)
        copy_blobs(context.emulator, container, prefix, folder / "model" / (Path(prefix.rstrip("/")).name or "model"))
    except JobFailure as exc:
        raise ArmError(400, "BadArgument", str(exc)) from None
    script = str(properties["codeConfiguration"]["scoringScript"])
    if not (folder / "code" / script).is_file():
        raise ArmError(400, "BadArgument", f"scoring script {script!r} is not in the code asset")
    manifest = {"model": _model_id(model), "scoring_script": script, "deployment": deployment}
    (folder / "bundle.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return Bundle(model=manifest["model"], path=folder, environment={})


# ---------------------------------------------------------------- batch endpoints
def batch_endpoint(context: Context) -> tuple[int, Any] | tuple[int, Any, dict[str, str]]:
    name, store = context.params["endpoint"], context.emulator.store
    existing = store.get_asset(context.scope, BATCH, name)

    def remove() -> None:
        for deployment in store.list_assets(context.scope, BATCH_DEPLOYMENTS):
            if deployment["_emulator"]["endpoint"] == name:
                store.delete_asset(context.scope, BATCH_DEPLOYMENTS, deployment["_emulator"]["key"])
        store.delete_asset(context.scope, BATCH, name)

    answer = _read_or_delete(context, existing, f"batch endpoint {name!r}", remove)
    if answer is not None:
        return answer
    check_endpoint_name(name)
    if existing is None:
        check_region_name(context, name, batch=True)
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
    endpoint_id = _arm_id(context, "batchEndpoints", name)
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
    return (201 if existing is None else 200), _public(body), operation(context)


def batch_endpoints(context: Context) -> tuple[int, Any]:
    return 200, {"value": [_public(b) for b in context.emulator.store.list_assets(context.scope, BATCH)]}


def batch_deployment(context: Context) -> tuple[int, Any] | tuple[int, Any, dict[str, str]]:
    endpoint = _endpoint_or_404(context, BATCH)
    name, store = context.params["deployment"], context.emulator.store
    key = f"{endpoint['name']}/{name}"
    existing = store.get_asset(context.scope, BATCH_DEPLOYMENTS, key)
    if context.method == "DELETE" and existing and endpoint["properties"]["defaults"].get("deploymentName") == name:
        raise ArmError(400, "BadArgument", f"deployment {name!r} is the default of batch endpoint {endpoint['name']!r}")
    answer = _read_or_delete(
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
    _deployment_assets(context, properties)
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
        "id": _arm_id(context, "batchEndpoints", endpoint["name"], "deployments", name),
        "name": name,
        "type": f"{PROVIDER}/workspaces/batchEndpoints/deployments",
        "kind": "Model",
        "location": request.get("location") or endpoint["location"],
        "tags": request.get("tags") or {},
        "systemData": system_data((existing or {}).get("systemData", {}).get("createdAt") or now(), now()),
        "properties": {**properties, "deploymentType": "Model", "provisioningState": "Succeeded"},
    }
    store.put_asset(context.scope, BATCH_DEPLOYMENTS, key, "", body)
    return (201 if existing is None else 200), _public(body), operation(context)


def batch_deployments(context: Context) -> tuple[int, Any]:
    return _list_deployments(context, BATCH, BATCH_DEPLOYMENTS)


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
    """
    from infra.azureml_emulator import jobs

    if not context.headers.get("authorization", "").lower().startswith("bearer "):
        raise ArmError(
            401, "Unauthorized", "a batch endpoint takes an Azure AD token: send 'Authorization: Bearer <token>'"
        )
    if context.emulator.store.workspace_created(context.scope) is None:
        raise not_found(f"workspace {context.params['ws']!r}")
    endpoint = _endpoint_or_404(context, BATCH)
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
    model, _, _ = _deployment_assets(context, settings)
    name = str(request.get("name") or f"batchjob-{uuid.uuid4()}")
    retry = settings.get("retrySettings") or {}
    from infra.azureml_emulator.runner import job_timeout

    driver = [
        f'PYTHONPATH="$PYTHONPATH:{Path(infra.__file__).resolve().parents[1]}"',
        "python -m infra.azureml_emulator.batch_driver",
        f"--script {settings['codeConfiguration']['scoringScript']}",
        "--input ${{inputs.data}} --model ${{inputs.model}} --output ${{outputs.score}}",
        f"--output-action {str(settings['outputAction']).lower()}",
        f"--output-file {settings['outputFileName']}",
        f"--mini-batch-size {int(settings['miniBatchSize'])}",
        f"--max-concurrency {int(settings['maxConcurrencyPerInstance'])}",
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
    if not store.insert_pipeline(
        context.scope, name, jobs.prepare_pipeline(name, parent), {child: jobs.prepare(child, step)}
    ):
        raise ArmError(409, "Conflict", f"job {name!r} already exists")
    return 200, {
        "id": _arm_id(context, "batchEndpoints", endpoint["name"], "jobs", name),
        "name": name,
        "type": f"{PROVIDER}/workspaces/batchEndpoints/jobs",
        "properties": {"status": "NotStarted", "jobName": name, "deploymentName": deployment_name},
    }


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


# ---------------------------------------------------------------- computes
def compute(context: Context) -> tuple[int, Any] | tuple[int, Any, dict[str, str]]:
    name, store = context.params["compute"], context.emulator.store
    existing = store.get_asset(context.scope, COMPUTES, name)
    answer = _read_or_delete(
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
    inner.update(
        {
            "allocationState": "Steady",
            "allocationStateTransitionTime": now(),
            "currentNodeCount": low,
            "targetNodeCount": low,
            "nodeStateCounts": {
                "preparingNodeCount": 0,
                "runningNodeCount": 0,
                "idleNodeCount": low,
                "unusableNodeCount": 0,
                "leavingNodeCount": 0,
                "preemptedNodeCount": 0,
            },
            "errors": None,
            "subnet": None,
            "osType": "Linux",
            "virtualMachineImage": None,
            "isolatedNetwork": False,
            "enableBatchPrivateLink": False,
            "propertyBag": {},
        }
    )
    inner.setdefault(
        "userAccountCredentials", {"adminUserName": "azureuser", "adminUserPassword": None, "adminUserSshPublicKey": ""}
    )
    inner.setdefault("remoteLoginPortPublicAccess", "NotSpecified")
    inner.setdefault("enableNodePublicIp", True)
    body = {
        "id": _arm_id(context, "computes", name),
        "name": name,
        "type": f"{PROVIDER}/workspaces/computes",
        "location": request.get("location") or LOCATION,
        "tags": request.get("tags") or {},
        "identity": request.get("identity"),
        "systemData": system_data((existing or {}).get("systemData", {}).get("createdAt") or now(), now()),
        "properties": {
            "createdOn": (existing or {}).get("properties", {}).get("createdOn") or now(),
            "modifiedOn": now(),
            "resourceId": None,
            "provisioningWarnings": {},
            "computeType": "AmlCompute",
            "computeLocation": request.get("location") or LOCATION,
            "description": properties.get("description"),
            "provisioningState": "Succeeded",
            "provisioningErrors": None,
            "isAttachedCompute": False,
            "disableLocalAuth": True,
            "properties": inner,
        },
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


# ---------------------------------------------------------------- schedules (model monitors)
def schedule(context: Context) -> tuple[int, Any] | tuple[int, Any, dict[str, str]]:
    """A schedule as Azure ML keeps it. A monitor's target deployment and its signals' data assets must exist;
    the schedule is stored and answered back, and is not run here (its Spark job is Azure ML's own)."""
    name, store = context.params["schedule"], context.emulator.store
    existing = store.get_asset(context.scope, SCHEDULES, name)
    answer = _read_or_delete(
        context, existing, f"schedule {name!r}", lambda: store.delete_asset(context.scope, SCHEDULES, name)
    )
    if answer is not None:
        return answer
    request = context.json()
    properties = dict(request.get("properties") or {})
    action = properties.get("action") or {}
    if action.get("actionType") == "CreateMonitor" and properties.get("isEnabled", True):
        _check_monitor(context, action.get("monitorDefinition") or {})
    body = {
        "_emulator": {},
        "id": _arm_id(context, "schedules", name),
        "name": name,
        "type": f"{PROVIDER}/workspaces/schedules",
        "systemData": system_data((existing or {}).get("systemData", {}).get("createdAt") or now(), now()),
        "properties": {**properties, "isEnabled": properties.get("isEnabled", True), "provisioningState": "Succeeded"},
    }
    store.put_asset(context.scope, SCHEDULES, name, "", body)
    return (201 if existing is None else 200), _public(body), operation(context)


def _check_monitor(context: Context, definition: dict[str, Any]) -> None:
    """What an enabled monitor needs before its first run. The target deployment and every data asset must
    exist; and production data that is a `uri_folder` with no preprocessing component must be what the target
    deployment's data collector writes.

    The last rule is stricter than Azure's PUT, on purpose. Azure ML accepts such a schedule and then fails
    every scheduled run (each billed as a serverless Spark job): it reads a `uri_folder` without a
    `preprocessingComponentId` as Model Data Collector output (JSONL in date folders), and custom data needs a
    component that turns the data window into an MLTable. Source: Microsoft Learn, "Monitor performance of
    models deployed to production" (custom production data uses `pre_processing_component`), and the
    azureml-examples monitoring README ("remove the custom preprocessing component line only if your data is
    collected with MDC"). The emulator runs no schedule, so it refuses the configuration when it is written,
    where a test sees it. A disabled schedule never runs, so it is not checked (disabling one is a PUT of it).
    """
    target = (definition.get("monitoringTarget") or {}).get("deploymentId") or ""
    found = re.search(r"/onlineEndpoints/([^/]+)/deployments/([^/]+)$", target)
    deployment_id = f"{found[1]}/{found[2]}" if found else ""
    deployment = context.emulator.store.get_asset(context.scope, ONLINE_DEPLOYMENTS, deployment_id) if found else None
    if deployment is None:
        raise ArmError(
            400, "BadArgument", f"the monitoring target {target!r} is not an online deployment of this workspace"
        )
    collector = ((deployment.get("properties") or {}).get("dataCollector") or {}).get("collections") or {}
    for signal_name, signal in (definition.get("signals") or {}).items():
        production = signal.get("productionData") or {}
        productions = production if isinstance(production, list) else [production]
        for data in productions:
            if str(data.get("jobInputType", "")).lower() != "uri_folder" or data.get("preprocessingComponentId"):
                continue
            context_name = data.get("dataContext") or "model_inputs"
            mode = str((collector.get(context_name) or {}).get("dataCollectionMode", "")).lower()
            if mode != "enabled":
                raise ArmError(
                    400,
                    "UserError",
                    f"signal {signal_name!r}: production data {data.get('uri')!r} is a uri_folder with no "
                    f"preprocessing component, which Azure ML reads as data collector output, but "
                    f"{deployment_id} collects no {context_name!r} (its dataCollector has no enabled "
                    f"{context_name!r} collection): Azure ML accepts this schedule and fails every run of it "
                    "(the emulator refuses it instead)",
                )
        for role in ("productionData", "referenceData"):
            data = signal.get(role) or {}
            uri = data.get("uri") or ""
            asset = re.search(r"/data/([^/]+)/versions/([^/]+)$", uri)
            if asset is None or context.emulator.store.get_asset(context.scope, "data", asset[1], asset[2]) is None:
                raise ArmError(
                    400,
                    "BadArgument",
                    f"signal {signal_name!r}: {role} {uri!r} is not a data asset version of this workspace",
                )


def schedules(context: Context) -> tuple[int, Any]:
    return 200, {"value": [_public(b) for b in context.emulator.store.list_assets(context.scope, SCHEDULES)]}


def register(route: Any) -> None:
    op = f"/subscriptions/(?P<sub>[^/]+)/providers/{PROVIDER}/locations/[^/]+"
    online = "{WS}/onlineEndpoints/(?P<endpoint>[^/]+)"
    batch = "{WS}/batchEndpoints/(?P<endpoint>[^/]+)"
    table = [
        ("GET", op + "/mfeOperationsStatus/(?P<operation>[^/]+)", operation_status),
        ("GET", op + "/mfeOperationResults/(?P<operation>[^/]+)", operation_result),
        ("GET", op + "/workspaceOperationsStatus/(?P<operation>[^/]+)", operation_status),
        ("GET", "{WS}/onlineEndpoints", online_endpoints),
        *((m, online, online_endpoint) for m in ("GET", "PUT", "DELETE")),
        ("POST", online + "/listKeys", list_keys),
        ("POST", online + "/regenerateKeys", regenerate_keys),
        ("POST", online + "/token", token),
        ("GET", online + "/deployments", online_deployments),
        *((m, online + "/deployments/(?P<deployment>[^/]+)", online_deployment) for m in ("GET", "PUT", "DELETE")),
        ("POST", online + "/deployments/(?P<deployment>[^/]+)/getLogs", deployment_logs),
        ("GET", "{WS}/batchEndpoints", batch_endpoints),
        *((m, batch, batch_endpoint) for m in ("GET", "PUT", "DELETE")),
        ("GET", batch + "/deployments", batch_deployments),
        *((m, batch + "/deployments/(?P<deployment>[^/]+)", batch_deployment) for m in ("GET", "PUT", "DELETE")),
        ("POST", "/inference/batch/(?P<sub>[^/]+)/(?P<rg>[^/]+)/(?P<ws>[^/]+)/(?P<endpoint>[^/]+)/jobs", batch_invoke),
        ("GET", "{WS}/computes", computes),
        *((m, "{WS}/computes/(?P<compute>[^/]+)", compute) for m in ("GET", "PUT", "DELETE")),
        ("POST", "{WS}/computes/(?P<compute>[^/]+)/listNodes", compute_nodes),
        ("PUT", "/emulator/taken-endpoint-names/(?P<name>[^/]+)", take_endpoint_name),
        ("GET", "{WS}/schedules", schedules),
        *((m, "{WS}/schedules/(?P<schedule>[^/]+)", schedule) for m in ("GET", "PUT", "DELETE")),
    ]
    for method, pattern, handler in table:
        route(method, pattern)(handler)
