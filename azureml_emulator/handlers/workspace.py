"""Workspaces: GET, PATCH and DELETE, discovery, and creation the way `workspaces.begin_create` calls Azure.

`begin_create` does not PUT the workspace: it submits an ARM template deployment
(`Microsoft.Resources/deployments`) whose parameters name the workspace and the storage account, key
vault, App Insights and container registry to create beside it. The emulator reads those
parameters (the template itself is not evaluated), creates the workspace and records the
dependent resources, which `begin_delete(delete_dependent_resources=True)` then deletes one by one
with generic ARM DELETEs. Operations finish before the answer; the first poll reads the outcome.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from azureml_emulator.core import bodies
from azureml_emulator.core.arm import (
    LOCATION,
    OPERATIONS,
    OPERATIONS_SCOPE,
    PROVIDER,
    system_data,
    workspace_guid,
)
from azureml_emulator.core.context import Context
from azureml_emulator.core.endpoint_servers import stop_scope_endpoints
from azureml_emulator.core.errors import ArmError, not_found
from azureml_emulator.core.routing import Answer, Handler, Routes
from azureml_emulator.core.store import now

META, DEPENDENTS, DEPLOYMENTS = "workspaceMeta", "armResources", "armDeployments"
SOFT_DELETED = "softDeletedWorkspaces"  # names held after a delete without forceToPurge
_WORKSPACE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-]{2,32}")
_DEPENDENT_TYPES = {
    "storageAccount": "Microsoft.Storage/storageAccounts",
    "keyVault": "Microsoft.Keyvault/vaults",
    "applicationInsights": "Microsoft.insights/components",
    "containerRegistry": "Microsoft.ContainerRegistry/registries",
}


def _group(context: Context) -> str:
    return f"{context.params['sub']}/{context.params['rg']}"


def _value(parameters: dict[str, Any], name: str) -> Any:
    entry = parameters.get(name)
    return entry.get("value") if isinstance(entry, dict) else None


def workspace(context: Context) -> tuple[int, Any]:
    base = context.emulator.base_url
    p = context.params
    created = context.emulator.store.workspace_created(context.scope) or now()
    group = f"/subscriptions/{p['sub']}/resourceGroups/{p['rg']}/providers"
    meta = workspace_meta(context)  # what a workspace deployment created; a pre-created one has the defaults
    body = bodies.body("workspace")
    body |= {
        "id": context.workspace_id,
        "name": p["ws"],
        "location": meta.get("location", "eastus"),
        "tags": meta.get("tags", {}),
        "systemData": system_data(created),
    }
    body["identity"] |= {
        "principalId": workspace_guid("principal" + context.scope),
        "tenantId": workspace_guid("tenant"),
    }
    body["properties"] |= {
        "friendlyName": meta.get("friendlyName", p["ws"]),
        "description": meta.get("description", "a workspace of the local Azure ML emulator"),
        "storageAccount": meta.get("storageAccount", f"{group}/Microsoft.Storage/storageAccounts/mlopsemulator"),
        "keyVault": meta.get("keyVault", f"{group}/Microsoft.Keyvault/vaults/mlopsemulator"),
        "applicationInsights": meta.get("applicationInsights", f"{group}/Microsoft.insights/components/mlopsemulator"),
        "containerRegistry": meta.get("containerRegistry"),
        "creationTime": created,
        "workspaceId": workspace_guid(context.scope),
        "discoveryUrl": f"{base}/discovery",
        "mlFlowTrackingUri": f"azureml://127.0.0.1:{context.emulator.port}/mlflow/v1.0{context.workspace_id}",
        "tenantId": workspace_guid("tenant"),
    }
    if context.emulator.identity_datastores:
        # the workspace property that makes its system datastores identity-based (recorded in the workspace body of
        # online_services/e2etests/test_online_deployment.py...json: /work/shared/reference/azure-fidelity.md row 14)
        body["properties"]["systemDatastoresAuthMode"] = "identity"
    return 200, body


def discovery(context: Context) -> tuple[int, Any]:
    """Every service of the workspace is this server; the studio is its `/emulator` page."""
    base = context.emulator.base_url
    services = dict.fromkeys(bodies.body("discovery"), base)
    return 200, {**services, "studio": f"{base}/emulator"}


def arm_deployment(context: Context) -> Answer:
    """GET or PUT an ARM template deployment (how the SDK creates a workspace and its resources).

    Long because: a PUT reads the template's parameters, creates each resource it names and answers as ARM does;
    the steps share the request's values and read as one sequence."""
    name, store = context.params["deployment"], context.emulator.store
    deployment_id = (
        f"/subscriptions/{context.params['sub']}/resourceGroups/{context.params['rg']}"
        f"/providers/Microsoft.Resources/deployments/{name}"
    )
    if context.method == "GET":
        found = store.get_asset(_group(context), DEPLOYMENTS, name)
        if found is None:
            raise not_found(f"deployment {name!r}")
        return 200, found
    properties = context.json().get("properties") or {}
    parameters = properties.get("parameters") or {}
    declared = (properties.get("template") or {}).get("parameters") or {}
    workspace = _value(parameters, "workspaceName")
    if isinstance(workspace, str) and store.get_asset(_group(context), SOFT_DELETED, workspace.lower()) is not None:
        # Microsoft Learn, "Workspace soft deletion": "You can't reuse the name of a soft-deleted workspace until
        # the retention period passes or you permanently delete the workspace" (14 days by default).
        raise ArmError(
            409,
            "Conflict",
            f"workspace {workspace!r} is soft-deleted: its name is held for the 14-day retention period; "
            "recover it, or delete it permanently (permanently_delete=True) to use the name again",
        )
    if not isinstance(workspace, str) or not _WORKSPACE_NAME.fullmatch(workspace):
        raise ArmError(
            400,
            "InvalidTemplateDeployment",
            f"workspace name {workspace!r} is invalid: 3-33 letters, digits, '-' or '_', starting with a letter or digit",
        )
    scope = f"{_group(context)}/{workspace}"
    group_id = f"/subscriptions/{context.params['sub']}/resourceGroups/{context.params['rg']}/providers"
    dependents = {}
    for role, kind in _DEPENDENT_TYPES.items():
        option = _value(parameters, f"{role}Option")
        resource = _value(parameters, f"{role}Name")
        if option == "new" and resource:
            dependents[role] = f"{group_id}/{kind}/{resource}"
        elif option == "existing" and resource:
            dependents[role] = str(resource)
    for resource_id in dependents.values():
        store.put_asset(_group(context), DEPENDENTS, resource_id.lower(), "", {"id": resource_id, "created": now()})
    store.add_workspace(scope)
    store.put_asset(
        scope,
        META,
        workspace,
        "",
        {
            "location": _value(parameters, "location") or LOCATION,
            "description": _value(parameters, "description"),
            "friendlyName": _value(parameters, "friendlyName") or workspace,
            "tags": _value(parameters, "tagValues") or {},
            **dependents,
        },
    )
    body = bodies.body("arm_deployment")
    body |= {"id": deployment_id, "name": name}
    body["properties"] |= {
        "templateHash": str(uuid.uuid4().int)[:20],
        "parameters": {  # ARM echoes each parameter with its type, as the template declares it
            k: {"type": _parameter_type(declared.get(k), _value(parameters, k)), "value": _value(parameters, k)}
            for k in parameters
        },
        "timestamp": now(),
        "correlationId": str(uuid.uuid4()),
        "outputResources": [{"id": f"{group_id}/{PROVIDER}/workspaces/{workspace}"}]
        + [{"id": d} for d in dependents.values()],
    }
    store.put_asset(_group(context), DEPLOYMENTS, name, "", body)
    # The PUT's 201 answers the deployment Accepted; its later GET, once done, Succeeded (recorded:
    # workspace/e2etests/test_workspace.pyTestWorkspacetest_workspace_create_and_delete.json, entry 1)
    answer = {**body, "properties": {**body["properties"], "provisioningState": "Accepted"}}
    # the poll's URL names the group "resourcegroups", as Azure's header does (recorded, entry 1: Azure-AsyncOperation)
    status_path = deployment_id.replace("/resourceGroups/", "/resourcegroups/")
    status = f"{context.emulator.base_url}{status_path}/operationStatuses/{uuid.uuid4().int % 10**20}?api-version={context.query['api-version']}"
    return 201, answer, {"Azure-AsyncOperation": status, "Retry-After": "0"}


def _parameter_type(declaration: Any, value: Any) -> str:
    """A parameter's type as ARM echoes it: the template's declared type, capitalized ("String", "Array", "Object";
    recorded: test_workspace_create_and_delete.json, entry 1), else its value's."""
    if isinstance(declaration, dict) and isinstance(declaration.get("type"), str):
        return str(declaration["type"]).capitalize()
    return {str: "String", list: "Array", bool: "Bool", int: "Int"}.get(type(value), "Object")


def arm_operation_status(context: Context) -> tuple[int, Any]:
    if context.emulator.store.get_asset(_group(context), DEPLOYMENTS, context.params["deployment"]) is None:
        raise not_found(f"deployment {context.params['deployment']!r}")
    return 200, {"status": "Succeeded"}


def arm_deployment_operations(context: Context) -> tuple[int, Any]:
    """The deployment's operations (the SDK lists them to print progress): none left, as it has finished."""
    if context.emulator.store.get_asset(_group(context), DEPLOYMENTS, context.params["deployment"]) is None:
        raise not_found(f"deployment {context.params['deployment']!r}")
    return 200, {"value": []}


def dependent_resource(context: Context) -> tuple[int, Any]:
    """A storage account, key vault, App Insights or registry a workspace deployment created: GET or DELETE."""
    resource_id = context.path
    store = context.emulator.store
    found = store.get_asset(_group(context), DEPENDENTS, resource_id.lower())
    if context.method == "DELETE":
        if found is None:
            return 204, None
        store.delete_asset(_group(context), DEPENDENTS, resource_id.lower())
        return 200, None
    if found is None:
        raise not_found(f"resource {resource_id}")
    return 200, {"id": found["id"], "name": found["id"].rsplit("/", 1)[-1], "location": LOCATION, "properties": {}}


def workspace_change(context: Context) -> tuple[int, Any, dict[str, str]]:
    """PATCH (tags, description, friendly name) or DELETE of a workspace, as long-running operations."""
    store = context.emulator.store
    if context.method == "DELETE":
        stop_scope_endpoints(context.emulator, context.scope)
        store.delete_workspace(context.scope)
        if context.query.get("forceToPurge", "").lower() != "true":  # azure-ai-ml: permanently_delete=False
            store.put_asset(_group(context), SOFT_DELETED, context.params["ws"].lower(), "", {"deleted": now()})
    else:
        request = context.json()
        meta = store.get_asset(context.scope, META, context.params["ws"]) or {}
        properties = request.get("properties") or {}
        meta.update({k: properties[k] for k in ("description", "friendlyName") if k in properties})
        if "tags" in request:
            meta["tags"] = request["tags"] or {}
        store.put_asset(context.scope, META, context.params["ws"], "", meta)
    identifier = str(uuid.uuid4())
    store.put_asset(OPERATIONS_SCOPE, OPERATIONS, identifier, "", {"status": "Succeeded", "percentComplete": 100.0})
    base = (
        f"{context.emulator.base_url}/subscriptions/{context.params['sub']}/providers/{PROVIDER}/locations/{LOCATION}"
    )
    status = f"{base}/workspaceOperationsStatus/{identifier}?api-version={context.query['api-version']}"
    return (
        202,
        None,
        {"Azure-AsyncOperation": status + "&type=async", "Location": status + "&type=location", "Retry-After": "0"},
    )


def workspace_meta(context: Context) -> dict[str, Any]:
    """What the workspace's deployment recorded (dependent resources, tags), or {} for a pre-created one."""
    return context.emulator.store.get_asset(context.scope, META, context.params["ws"]) or {}


def register(routes: Routes) -> None:
    group = "/subscriptions/(?P<sub>[^/]+)/resource[gG]roups/(?P<rg>[^/]+)"
    deployment = group + "/providers/Microsoft\\.Resources/deployments/(?P<deployment>[^/]+)"
    kinds = "|".join(re.escape(kind) for kind in _DEPENDENT_TYPES.values())
    table: list[tuple[str, str, Handler]] = [
        ("GET", "/discovery", discovery),
        ("GET", "{WS}", workspace),
        ("PUT", deployment, arm_deployment),
        ("GET", deployment, arm_deployment),
        ("GET", deployment + "/operationStatuses/[^/]+", arm_operation_status),
        ("GET", group + "/deployments/(?P<deployment>[^/]+)/operations", arm_deployment_operations),
        ("GET", deployment + "/operations", arm_deployment_operations),
        ("PATCH", "{WS}", workspace_change),
        ("DELETE", "{WS}", workspace_change),
        ("GET", f"(?i:{group}/providers/(?:{kinds})/[^/]+)", dependent_resource),
        ("DELETE", f"(?i:{group}/providers/(?:{kinds})/[^/]+)", dependent_resource),
    ]
    for method, pattern, handler in table:
        routes.add(method, pattern, handler)
