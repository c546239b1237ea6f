"""Online endpoints and their deployments, keys, tokens and logs.

Each emulated online endpoint is one local endpoint server (`core.endpoint_servers`), over HTTPS with the
emulator's certificate, on its own port from `--endpoint-port` upward: its deployments are real
`score.py` bundles assembled from the code and model assets, and traffic, mirror traffic and keys
are the server's. Writes are long-running operations (`core.operations`).
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from azureml_emulator.core import bodies
from azureml_emulator.core.arm import LOCATION, ONLINE, ONLINE_DEPLOYMENTS, PROVIDER, system_data, workspace_guid
from azureml_emulator.core.context import Context, arm_id
from azureml_emulator.core.endpoint_servers import endpoint_folder, free_port, lock, runtime
from azureml_emulator.core.endpoints import (
    check_endpoint_name,
    deployment_assets,
    endpoint_or_404,
    endpoint_request,
    list_deployments,
)
from azureml_emulator.core.errors import ArmError
from azureml_emulator.core.operations import (
    busy_seconds,
    busy_state,
    mark_busy,
    operation,
    public,
    read_or_delete,
    refuse_while_busy,
)
from azureml_emulator.core.routing import Answer, Handler, Routes
from azureml_emulator.core.storage import MissingFiles, blob_location, copy_blobs
from azureml_emulator.core.store import now
from infra.backend import Bundle
from infra.errors import MLOpsError

_AUTH_MODES = {"key": "Key", "amltoken": "AMLToken", "aadtoken": "AADToken"}


# ---------------------------------------------------------------- online endpoints
def online_endpoint(context: Context) -> Answer:
    """GET, PUT or DELETE a managed online endpoint, and the local endpoint server behind it.

    Long because: a PUT builds the recorded body, starts or updates the server, applies traffic and mirror traffic
    and answers with the long-running operation, in the order the service does; each step needs the one before."""
    name = context.params["endpoint"]
    store = context.emulator.store
    existing = store.get_asset(context.scope, ONLINE, name)

    def remove() -> None:
        assert existing is not None
        with lock(context.scope + "/" + name):
            runtime(context.emulator, context.scope, name, existing["_emulator"]["port"]).stop(name)
            for deployment in store.list_assets(context.scope, ONLINE_DEPLOYMENTS):
                if deployment["_emulator"]["endpoint"] == name:
                    store.delete_asset(context.scope, ONLINE_DEPLOYMENTS, deployment["_emulator"]["key"])
            store.delete_asset(context.scope, ONLINE, name)
            shutil.rmtree(endpoint_folder(context.emulator, context.scope, name), ignore_errors=True)

    answer = endpoint_request(context, name, existing, remove, batch=False)
    if answer is not None:
        return answer
    request = context.json()
    properties = request.get("properties") or {}
    mode = _AUTH_MODES.get(str(properties.get("authMode", "Key")).lower())
    if mode is None:
        raise ArmError(400, "BadArgument", f"authMode {properties.get('authMode')!r}: use Key, AMLToken or AADToken")
    refuse_while_busy(existing, f"Cannot update endpoint {name} because it is in {{state}} provisioning state.")
    with lock(context.scope + "/" + name):
        created_now = existing is None
        if existing is None:
            port = free_port(context.emulator)
            created = now()
            existing = {"_emulator": {"port": port}, **bodies.body("online_endpoint")}
            existing |= {
                "id": arm_id(context, "onlineEndpoints", name),
                "name": name,
                "location": request.get("location") or LOCATION,
                "systemData": system_data(created),
            }
            existing["identity"] |= {
                "principalId": workspace_guid("endpoint" + context.scope + name),
                "tenantId": workspace_guid("tenant"),
            }
            existing["properties"] |= {
                "authMode": mode,
                "scoringUri": f"https://127.0.0.1:{port}/score",
                "swaggerUri": f"https://127.0.0.1:{port}/swagger.json",
                "properties": {"azureml.onlineendpointid": arm_id(context, "onlineEndpoints", name).lower()},
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
    return (201 if error is None else 200), public(existing, written=True), headers


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
    return 200, {"value": [public(b) for b in context.emulator.store.list_assets(context.scope, ONLINE)]}


def list_keys(context: Context) -> tuple[int, Any]:
    found = endpoint_or_404(context)
    if found["properties"]["authMode"] != "Key":
        raise ArmError(
            400, "BadArgument", f"endpoint {found['name']!r} uses {found['properties']['authMode']}, not keys"
        )
    keys = _keys(context, found)
    return 200, {"primaryKey": keys["primary"], "secondaryKey": keys["secondary"]}


def _keys(context: Context, found: dict[str, Any]) -> dict[str, str]:
    """The endpoint's scoring keys, as its endpoint server keeps them."""
    return runtime(context.emulator, context.scope, found["name"], found["_emulator"]["port"]).keys(found["name"])


def regenerate_keys(context: Context) -> tuple[int, Any, dict[str, str]]:
    found = endpoint_or_404(context)
    kind = str(context.json().get("keyType", "")).lower()
    if kind not in ("primary", "secondary"):
        raise ArmError(400, "BadArgument", "keyType must be Primary or Secondary")
    name = found["name"]
    with lock(context.scope + "/" + name):
        served = runtime(context.emulator, context.scope, name, found["_emulator"]["port"])
        served.ensure(name)  # the endpoint's server replaces its own key (its management API), without a restart
        # azure-ai-ml sends the current key as keyValue, and expects a new one: only another value is taken as given
        wanted = context.json().get("keyValue")
        given = str(wanted) if wanted and wanted != served.keys(name)[kind] else None
        served.regenerate_key(name, kind, given)
    return 202, None, operation(context)


def token(context: Context) -> tuple[int, Any]:
    found = endpoint_or_404(context)
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
def online_deployment(context: Context) -> Answer:
    """GET, PUT or DELETE an online deployment: its assets checked, its bundle built and loaded on the server.

    Long because: the service checks a deployment's model, environment, code and scale settings in one pass, then
    provisions; kept in that order, the error a caller sees first is the one Azure would answer."""
    endpoint = endpoint_or_404(context)
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
        with lock(context.scope + "/" + endpoint["name"]):
            state = served.get(endpoint["name"])
            if state is not None and name in state.deployments:
                served.remove_deployment(endpoint["name"], name)
            store.delete_asset(context.scope, ONLINE_DEPLOYMENTS, key)

    answer = read_or_delete(context, existing, f"deployment {name!r} of endpoint {endpoint['name']!r}", remove)
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
    model, code, _ = deployment_assets(context, properties)  # the environment is checked, not built
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
        "id": arm_id(context, "onlineEndpoints", endpoint["name"], "deployments", name),
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
    with lock(context.scope + "/" + endpoint["name"]):
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
    return (201 if existing is None else 200), public(body, written=True), headers


def online_deployments(context: Context) -> tuple[int, Any]:
    return list_deployments(context, ONLINE, ONLINE_DEPLOYMENTS)


def deployment_logs(context: Context) -> tuple[int, Any]:
    """The endpoint server's log lines about this deployment (the SDK's `get_logs`)."""
    endpoint = endpoint_or_404(context)
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
    """The deployment's files as the server loads them: `code/` (the code asset), `model/<folder>/` (or
    `model/<file>` for a single-file model), `bundle.json`."""
    folder = (
        endpoint_folder(context.emulator, context.scope, endpoint) / "bundles" / f"{deployment}-{uuid.uuid4().hex[:8]}"
    )
    try:
        container, prefix = blob_location(context.emulator, str(code["properties"]["codeUri"]))
        copy_blobs(context.emulator, container, prefix, folder / "code")
        model_uri = str(model["properties"]["modelUri"])
        container, prefix = blob_location(context.emulator, model_uri)
        if context.emulator.store.get_blob(container, prefix) is not None:
            # a single-file model (Azure takes one: model/e2etests/test_model.py TestModeltest_model_archive_restore_
            # version.json, entry 5, modelUri .../model.pkl) sits in AZUREML_MODEL_DIR itself (Microsoft Learn,
            # "Specify model to deploy for use in online endpoint": `os.path.join(AZUREML_MODEL_DIR, "sample_m1.pkl")`)
            copy_blobs(context.emulator, container, prefix, folder / "model", single=True)
        else:
            name = Path(prefix.rstrip("/")).name or "model"
            copy_blobs(context.emulator, container, prefix, folder / "model" / name)
    except MissingFiles as exc:
        raise ArmError(400, "BadArgument", str(exc)) from None
    script = str(properties["codeConfiguration"]["scoringScript"])
    if not (folder / "code" / script).is_file():
        raise ArmError(400, "BadArgument", f"scoring script {script!r} is not in the code asset")
    manifest = {"model": _model_id(model), "scoring_script": script, "deployment": deployment}
    (folder / "bundle.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return Bundle(model=manifest["model"], path=folder, environment={})


def register(routes: Routes) -> None:
    online = "{WS}/onlineEndpoints/(?P<endpoint>[^/]+)"
    table: list[tuple[str, str, Handler]] = [
        ("GET", "{WS}/onlineEndpoints", online_endpoints),
        *((m, online, online_endpoint) for m in ("GET", "PUT", "DELETE")),
        ("POST", online + "/listKeys", list_keys),
        ("POST", online + "/regenerateKeys", regenerate_keys),
        ("POST", online + "/token", token),
        ("GET", online + "/deployments", online_deployments),
        *((m, online + "/deployments/(?P<deployment>[^/]+)", online_deployment) for m in ("GET", "PUT", "DELETE")),
        ("POST", online + "/deployments/(?P<deployment>[^/]+)/getLogs", deployment_logs),
    ]
    for method, pattern, handler in table:
        routes.add(method, pattern, handler)
