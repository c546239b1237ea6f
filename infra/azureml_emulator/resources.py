"""The emulator's ARM and data-plane handlers: workspaces, datastores, assets, jobs and run history.

Bodies carry the defaults the real service adds (checked against recorded real responses in
`tests/azureml/test_emulator_shapes.py`). Requests are validated the way the service does: an
api-version, a bearer token, name rules, required fields, references that must exist.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from infra.azureml_emulator.store import now

if TYPE_CHECKING:
    from infra.azureml_emulator.server import Emulator

PROVIDER = "Microsoft.MachineLearningServices"
ASSET_KINDS = ("codes", "data", "environments", "models")
TERMINAL = ("Completed", "Failed", "Canceled", "NotResponding", "Paused")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,254}")
_JOB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-]{0,254}")
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,29}")
# Environments: Azure accepts the 32-hex versions of anonymous environments (recorded 201s:
# batch_services/...test_mlflow_batch_endpoint_create_and_update.json, command_job/...test_ray_command_job.json).
# No maximum is documented; 30 is the data asset limit Azure has been seen to enforce (azureml-assets#295,
# "Argument 'version' exceeded maximum length of 30 for DatasetId"), so the other kinds keep it.
_ENVIRONMENT_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,31}")
_API_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}(-preview)?|v?\d+\.\d+(\.\d+)?")
_IMMUTABLE = {"codes": "codeUri", "data": "dataUri", "environments": "image", "models": "modelUri"}
_PAGE = 100
BLOB_CONTAINER = "azureml-blobstore"
ARTIFACT_CONTAINER = "azureml"


class ArmError(Exception):
    """An error answer in ARM's format."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}

    def payload(self) -> dict[str, Any]:
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "target": None,
                "details": [],
                "additionalInfo": [],
            }
        }


def not_found(what: str) -> ArmError:
    return ArmError(404, "UserError", f"{what} not found", {"x-ms-error-code": "ResourceNotFound"})


@dataclass
class Context:
    """One request, with the workspace it addresses."""

    emulator: Emulator
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    params: dict[str, str]

    def check_request(self, *, anonymous: bool) -> None:
        if anonymous:
            return
        version = self.query.get("api-version")
        if version is None:
            raise ArmError(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        if not _API_VERSION.fullmatch(version):
            raise ArmError(400, "InvalidApiVersionParameter", f"The api-version '{version}' is invalid.")
        authorization = self.headers.get("authorization", "")
        if not authorization.lower().startswith("bearer ") or not authorization[7:].strip():
            raise ArmError(
                401,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
                {"WWW-Authenticate": 'Bearer authorization_uri="https://login.microsoftonline.com/common"'},
            )
        if "ws" in self.params and self.emulator.store.workspace_created(self.scope) is None:
            raise ArmError(
                404,
                "ResourceNotFound",
                f"The Resource '{PROVIDER}/workspaces/{self.params['ws']}' under resource group "
                f"'{self.params['rg']}' was not found.",
            )

    def json(self) -> dict[str, Any]:
        if not self.body:
            return {}
        try:
            document = json.loads(self.body)
        except ValueError as exc:
            raise ArmError(400, "UserError", f"the request body is not JSON: {exc}") from None
        if not isinstance(document, dict):
            raise ArmError(400, "UserError", "the request body must be a JSON object")
        return document

    @property
    def scope(self) -> str:
        return f"{self.params['sub']}/{self.params['rg']}/{self.params['ws']}"

    @property
    def workspace_id(self) -> str:
        return (
            f"/subscriptions/{self.params['sub']}/resourceGroups/{self.params['rg']}"
            f"/providers/{PROVIDER}/workspaces/{self.params['ws']}"
        )

    def long_uri(self, datastore: str, path: str) -> str:
        p = self.params
        return f"azureml://subscriptions/{p['sub']}/resourcegroups/{p['rg']}/workspaces/{p['ws']}/datastores/{datastore}/paths/{path}"


def workspace_guid(scope: str) -> str:
    return str(uuid.UUID(hashlib.sha256(scope.encode()).hexdigest()[:32]))


def system_data(created: str, modified: str | None = None) -> dict[str, Any]:
    return {
        "createdAt": created,
        "createdBy": "mlops-emulator",
        "createdByType": "User",
        "lastModifiedAt": modified or created,
        "lastModifiedBy": "mlops-emulator",
        "lastModifiedByType": "User",
    }


# ---------------------------------------------------------------- workspace, discovery, datastores
def workspace(context: Context) -> tuple[int, Any]:
    from infra.azureml_emulator.provisioning import workspace_meta

    base = context.emulator.base_url
    p = context.params
    created = context.emulator.store.workspace_created(context.scope) or now()
    group = f"/subscriptions/{p['sub']}/resourceGroups/{p['rg']}/providers"
    meta = workspace_meta(context)  # what a workspace deployment created; a pre-created one has the defaults
    return 200, {
        "id": context.workspace_id,
        "name": p["ws"],
        "type": f"{PROVIDER}/workspaces",
        "location": meta.get("location", "eastus"),
        "tags": meta.get("tags", {}),
        "etag": None,
        "kind": "Default",
        "sku": {"name": "Basic", "tier": "Basic"},
        "identity": {
            "type": "SystemAssigned",
            "principalId": workspace_guid("principal" + context.scope),
            "tenantId": workspace_guid("tenant"),
        },
        "properties": {
            "friendlyName": meta.get("friendlyName", p["ws"]),
            "description": meta.get("description", "a workspace of the local Azure ML emulator"),
            "storageAccount": meta.get("storageAccount", f"{group}/Microsoft.Storage/storageAccounts/mlopsemulator"),
            "keyVault": meta.get("keyVault", f"{group}/Microsoft.Keyvault/vaults/mlopsemulator"),
            "applicationInsights": meta.get(
                "applicationInsights", f"{group}/Microsoft.insights/components/mlopsemulator"
            ),
            "containerRegistry": meta.get("containerRegistry"),
            "hbiWorkspace": False,
            "provisioningState": "Succeeded",
            "creationTime": created,
            "workspaceId": workspace_guid(context.scope),
            "discoveryUrl": f"{base}/discovery",
            "mlFlowTrackingUri": f"azureml://127.0.0.1:{context.emulator.port}/mlflow/v1.0{context.workspace_id}",
            "publicNetworkAccess": "Enabled",
            "v1LegacyMode": False,
            "storageHnsEnabled": False,
            "enableDataIsolation": False,
            "systemDatastoresAuthMode": "accesskey",
            "notebookInfo": None,
            "tenantId": workspace_guid("tenant"),
            "imageBuildCompute": None,
            "managedNetwork": {
                "changeableIsolationModes": ["AllowInternetOutbound", "AllowOnlyApprovedOutbound"],
                "isolationMode": "Disabled",
                "enableNetworkMonitor": False,
                "enableFirewallLog": False,
            },
            "allowRoleAssignmentOnRG": True,
            "softDeleteEnabled": False,
            "linkedModelInventoryArmId": None,
            "privateLinkCount": 0,
            "ipAllowlist": [],
            "networkAcls": {"defaultAction": "Allow", "bypass": "", "ipRules": [], "resourceAccessRules": []},
            "serverlessComputeSettings": None,
            "EnableSoftwareBillOfMaterials": False,
            "sasGetterUri": "",
            "enableServiceSideCMKEncryption": False,
        },
        "systemData": system_data(created),
    }


def discovery(context: Context) -> tuple[int, Any]:
    base = context.emulator.base_url
    services = (
        "api",
        "catalog",
        "experimentation",
        "history",
        "hyperdrive",
        "labeling",
        "modelmanagement",
        "pipelines",
    )
    return 200, {**dict.fromkeys(services, base), "studio": f"{base}/emulator"}


def _datastore_body(context: Context, name: str) -> dict[str, Any]:
    container = {"workspaceblobstore": BLOB_CONTAINER, "workspaceartifactstore": ARTIFACT_CONTAINER}.get(name)
    if container is None:
        raise not_found(f"datastore {name!r}")
    from infra.azureml_emulator.server import STORAGE_SUFFIX

    return {
        "id": f"{context.workspace_id}/datastores/{name}",
        "name": name,
        "type": f"{PROVIDER}/workspaces/datastores",
        "properties": {
            "description": None,
            "tags": None,
            "properties": None,
            "isDefault": name == "workspaceblobstore",
            "credentials": {"credentialsType": "AccountKey"},
            "intellectualProperty": None,
            "subscriptionId": context.params["sub"],
            "resourceGroup": context.params["rg"],
            "datastoreType": "AzureBlob",
            "accountName": context.emulator.storage_account(),
            "containerName": container,
            "endpoint": STORAGE_SUFFIX,
            "protocol": "https",
            "serviceDataAccessAuthIdentity": "WorkspaceSystemAssignedIdentity",
        },
        "systemData": system_data(context.emulator.store.workspace_created(context.scope) or now()),
    }


def datastore(context: Context) -> tuple[int, Any]:
    return 200, _datastore_body(context, context.params["name"])


def datastores(context: Context) -> tuple[int, Any]:
    return 200, {"value": [_datastore_body(context, name) for name in ("workspaceartifactstore", "workspaceblobstore")]}


def datastore_secrets(context: Context) -> tuple[int, Any]:
    _datastore_body(context, context.params["name"])
    return 200, {"secretsType": "AccountKey", "key": "ZW11bGF0b3Itc3RvcmFnZS1rZXk="}


# ---------------------------------------------------------------- assets
def _asset_type(kind: str, *, version: bool) -> str:
    return f"{PROVIDER}/workspaces/{kind}" + ("/versions" if version else "")


def _check_name(name: str, what: str) -> None:
    if not _NAME.fullmatch(name):
        raise ArmError(
            400,
            "UserError",
            f"{what} name {name!r} is invalid: it must start with a letter or digit and hold only letters, digits, '-', '_' or '.' (at most 255)",
        )


def asset_container(context: Context) -> tuple[int, Any]:
    kind, name = context.params["kind"], context.params["name"]
    if context.method == "PUT":
        _check_name(name, kind)
        properties = context.json().get("properties", {})
        existing = context.emulator.store.get_asset(context.scope, kind, name)
        body = _container_body(context, kind, name, existing, properties)
        context.emulator.store.put_asset(context.scope, kind, name, "", body)
        return (200 if existing else 201), body
    found = context.emulator.store.get_asset(context.scope, kind, name)
    if found is None:
        raise not_found(f"{kind} container {name!r}")
    return 200, found


def _container_body(
    context: Context, kind: str, name: str, existing: dict[str, Any] | None, properties: dict[str, Any]
) -> dict[str, Any]:
    stamp = now()
    old = (existing or {}).get("properties", {})
    merged = {
        "description": properties.get("description", old.get("description")),
        "tags": properties.get("tags", old.get("tags", {})) or {},
        "properties": properties.get("properties", old.get("properties", {})) or {},
        "isArchived": bool(properties.get("isArchived", old.get("isArchived", False))),
        "latestVersion": old.get("latestVersion"),
        "nextVersion": old.get("nextVersion", "1"),
        "provisioningState": "Succeeded",
    }
    created = (existing or {}).get("systemData", {}).get("createdAt", stamp)
    return {
        "id": f"{context.workspace_id}/{kind}/{name}",
        "name": name,
        "type": _asset_type(kind, version=False),
        "properties": merged,
        "systemData": system_data(created, stamp),
    }


def asset_containers(context: Context) -> tuple[int, Any]:
    kind = context.params["kind"]
    return 200, _page(context, context.emulator.store.list_assets(context.scope, kind))


def asset_versions(context: Context) -> tuple[int, Any]:
    kind, name = context.params["kind"], context.params["name"]
    store = context.emulator.store
    wanted_hash = context.query.get("hash")
    if kind == "codes" and wanted_hash:  # anonymous code has a random name: the service matches the hash workspace-wide
        names = [str(container["name"]) for container in store.list_assets(context.scope, kind)]
    else:
        names = [name]
    versions = [v for n in names for v in reversed(store.list_assets(context.scope, kind, n))]  # newest first
    if kind == "models" and not versions:
        raise ArmError(
            404, "UserError", f"Could not find model {name!r}: ModelNotFound", {"x-ms-error-code": "ModelNotFound"}
        )
    view = context.query.get("listViewType", "ActiveOnly")
    if view == "ActiveOnly":
        versions = [v for v in versions if not v["properties"].get("isArchived")]
    elif view == "ArchivedOnly":
        versions = [v for v in versions if v["properties"].get("isArchived")]
    if wanted_hash:
        versions = [v for v in versions if v["properties"].get("properties", {}).get("hash_sha256") == wanted_hash]
    order = context.query.get("$orderBy", "")
    if order.lower().startswith("createdtime") and not order.lower().endswith("desc"):
        versions.reverse()
    if "$top" in context.query:
        versions = versions[: int(context.query["$top"])]
    return 200, _page(context, versions)


def _page(context: Context, items: list[dict[str, Any]]) -> dict[str, Any]:
    start = int(context.query.get("$skipToken") or 0)
    page: dict[str, Any] = {"value": items[start : start + _PAGE]}
    if start + _PAGE < len(items):
        query = "&".join(f"{k}={v}" for k, v in context.query.items() if k != "$skipToken")
        page["nextLink"] = f"{context.emulator.base_url}{context.path}?{query}&$skipToken={start + _PAGE}"
    return page


def asset_version(context: Context) -> tuple[int, Any] | tuple[int, Any, dict[str, str]]:
    kind, name, version = context.params["kind"], context.params["name"], context.params["version"]
    store = context.emulator.store
    existing = store.get_asset(context.scope, kind, name, version)
    if context.method == "GET":
        if existing is None:
            raise not_found(f"{kind} {name!r} version {version!r}")
        return 200, existing
    _check_name(name, kind)
    longest = 32 if kind == "environments" else 30
    if not (_ENVIRONMENT_VERSION if kind == "environments" else _VERSION).fullmatch(version):
        raise ArmError(
            400, "UserError", f"version {version!r} is invalid: letters, digits, '-', '_' or '.', at most {longest}"
        )
    properties = dict(context.json().get("properties") or {})
    if not properties:
        raise ArmError(400, "UserError", "the request body needs 'properties'")
    properties = _normalise(context, kind, properties)
    field = _IMMUTABLE[kind]
    if existing is not None and existing["properties"].get(field) != properties.get(field) and field != "image":
        # Azure: a UserError, "Asset paths cannot be updated." (azure-ai-ml 1.35 keys `AssetPathException` on
        # that text: `_artifacts/_constants.py` ASSET_PATH_ERROR, `operations/_model_operations.py`), not a 409
        raise ArmError(400, "UserError", "Asset paths cannot be updated.")
    if existing is not None and existing["properties"].get(field) != properties.get(field):
        raise ArmError(
            409,
            "UserError",
            f"{kind} {name!r} version {version!r} already exists with a different {field}; versions are immutable "
            "(only tags, description and archiving change)",
        )
    stamp = now()
    created = existing["systemData"]["createdAt"] if existing else stamp
    body = {
        "id": f"{context.workspace_id}/{kind}/{name}/versions/{version}",
        "name": version,
        "type": _asset_type(kind, version=True),
        "properties": properties,
        "systemData": system_data(created, stamp),
    }
    store.put_asset(context.scope, kind, name, version, body)
    container = store.get_asset(context.scope, kind, name)
    container_body = _container_body(context, kind, name, container, {})
    container_body["properties"]["latestVersion"] = version
    if version.isdigit():
        container_body["properties"]["nextVersion"] = str(int(version) + 1)
    store.put_asset(context.scope, kind, name, "", container_body)
    if existing is not None:
        return 200, body
    return (
        201,
        body,
        {"Location": f"{context.emulator.base_url}{context.path}?api-version={context.query['api-version']}"},
    )


def _normalise(context: Context, kind: str, properties: dict[str, Any]) -> dict[str, Any]:
    """Check the fields the service requires and add the defaults it returns."""
    defaults: dict[str, Any] = {
        "description": None,
        "tags": {},
        "properties": {},
        "isArchived": False,
        "isAnonymous": False,
    }
    out = {**defaults, **{k: v for k, v in properties.items() if v is not None or k == "description"}}
    out["tags"] = {str(k): str(v) for k, v in (out["tags"] or {}).items()}  # the service keeps string maps
    out["properties"] = {str(k): str(v) for k, v in (out["properties"] or {}).items()}
    if kind == "codes":
        if not out.get("codeUri"):
            raise ArmError(400, "UserError", "a code version needs 'codeUri'")
        out["provisioningState"] = "Succeeded"
    elif kind == "data":
        if not out.get("dataUri") or out.get("dataType") not in ("uri_file", "uri_folder", "mltable"):
            raise ArmError(
                400, "UserError", "a data version needs 'dataUri' and a 'dataType' of uri_file, uri_folder or mltable"
            )
        out["dataUri"] = _long_datastore_uri(context, out["dataUri"])
        out |= {
            "autoDeleteSetting": out.get("autoDeleteSetting"),
            "stage": out.get("stage"),
            "intellectualProperty": None,
        }
    elif kind == "environments":
        if not out.get("image") and not out.get("build"):
            raise ArmError(400, "UserError", "an environment version needs 'image' or 'build'")
        out |= {
            "properties": {**out["properties"], "azureml.labels": "latest"},
            "environmentType": "UserCreated",
            "osType": out.get("osType") or "Linux",
            "autoRebuild": out.get("autoRebuild") or "Disabled",
            "provisioningState": "Succeeded",
            "stage": "Development",
            "autoDeleteSetting": None,
            "intellectualProperty": None,
        }
    elif kind == "models":
        if not out.get("modelUri"):
            raise ArmError(400, "UserError", "a model version needs 'modelUri'")
        out["modelUri"], job_name = _resolve_model_uri(context, out["modelUri"])
        out |= {
            "flavors": out.get("flavors") or {},
            "modelType": out.get("modelType") or "custom_model",
            "jobName": job_name or out.get("jobName"),
            "provisioningState": "Succeeded",
            "stage": "Archived" if out["isArchived"] else "Development",
            "autoDeleteSetting": None,
            "intellectualProperty": None,
        }
    return out


def _long_datastore_uri(context: Context, uri: str) -> str:
    short = re.fullmatch(r"azureml://datastores/([^/]+)/paths/(.*)", uri)
    return context.long_uri(short.group(1), short.group(2)) if short else uri


def _resolve_model_uri(context: Context, uri: str) -> tuple[str, str | None]:
    """A job output (`azureml://jobs/<job>/outputs/<output>/paths/<path>`) becomes its datastore path, as the service resolves it."""
    job_uri = re.fullmatch(r"azureml://jobs/([^/]+)/outputs/([^/]+)(?:/paths/(.*))?", uri)
    if job_uri is None:
        return _long_datastore_uri(context, uri).replace("/resourcegroups/", "/resourceGroups/"), None
    job_name, output, path = job_uri.groups()
    job = context.emulator.store.get_job(context.scope, job_name)
    if job is None:
        raise ArmError(400, "UserError", f"model path {uri}: job {job_name!r} does not exist")
    if job["status"] != "Completed":
        raise ArmError(400, "UserError", f"model path {uri}: job {job_name!r} is {job['status']}, not Completed")
    resolved = job["body"]["properties"].get("outputs", {}).get(output, {}).get("uri")
    if not resolved:
        raise ArmError(400, "UserError", f"model path {uri}: job {job_name!r} has no output {output!r}")
    full = resolved.rstrip("/") + ("/" + path if path else "")
    return full.replace("/resourcegroups/", "/resourceGroups/"), job_name


def start_pending_upload(context: Context) -> tuple[int, Any]:
    kind, name, version = context.params["kind"], context.params["name"], context.params["version"]
    _check_name(name, kind)
    container = f"{uuid.uuid4()}-{kind}"
    blob_uri = f"{context.emulator.blob_base}/{container}"
    p = context.params
    return 200, {
        "blobReferenceForConsumption": {
            "blobUri": blob_uri,
            "storageAccountArmId": f"/subscriptions/{p['sub']}/resourceGroups/{p['rg']}/providers/Microsoft.Storage/storageAccounts/mlopsemulator",
            "credential": {"credentialType": "SAS", "sasUri": f"{blob_uri}?sv=2021-10-04&sr=c&sp=rcwl&sig=emulator"},
        },
        "pendingUploadId": str(uuid.uuid4()),
        "pendingUploadType": "None",
        "version": version,
    }


# ---------------------------------------------------------------- jobs
def job(context: Context) -> tuple[int, Any] | tuple[int, Any, dict[str, str]]:
    from infra.azureml_emulator import jobs

    name = context.params["name"]
    store = context.emulator.store
    if context.method == "GET":
        record = store.get_job(context.scope, name)
        if record is None:
            raise not_found(f"job {name!r}")
        return 200, jobs.job_body(context, name, record)
    if not _JOB_NAME.fullmatch(name):
        raise ArmError(
            400,
            "UserError",
            f"job name {name!r} is invalid: letters, digits, '-' or '_', starting with a letter or digit (at most 255)",
        )
    body = context.json()
    jobs.validate(context, body)
    existing = store.get_job(context.scope, name)
    if existing is not None:  # a job runs once: a second PUT may change its tags and names, never re-run it
        updated = existing["body"]
        for field in ("tags", "displayName", "description"):
            if field in body.get("properties", {}):
                updated["properties"][field] = body["properties"][field]
        store.update_job_body(context.scope, name, updated)
        return 200, jobs.job_body(context, name, store.get_job(context.scope, name) or existing)
    stored = jobs.prepare(name, body)
    store.insert_job(context.scope, name, stored)
    record = store.get_job(context.scope, name)
    assert record is not None
    return (
        201,
        jobs.job_body(context, name, record),
        {"Location": f"{context.emulator.base_url}{context.path}?api-version={context.query['api-version']}"},
    )


def job_list(context: Context) -> tuple[int, Any]:
    from infra.azureml_emulator import jobs

    store = context.emulator.store
    bodies = []
    for name in reversed(store.list_jobs(context.scope)):
        record = store.get_job(context.scope, name)
        if record is not None:
            bodies.append(jobs.job_body(context, name, record))
    return 200, _page(context, bodies)


def job_cancel(context: Context) -> tuple[int, Any, dict[str, str]]:
    name = context.params["name"]
    store = context.emulator.store
    record = store.get_job(context.scope, name)
    if record is None:
        raise not_found(f"job {name!r}")
    for step in store.children(context.scope, name):  # a pipeline is canceled through its steps
        _cancel(store, context.scope, step)
    if not store.children(context.scope, name):
        _cancel(store, context.scope, name)
    operation = f"{context.emulator.base_url}{context.workspace_id}/operationResults/cancel-{name}?api-version={context.query['api-version']}"
    return 202, None, {"Location": operation, "Retry-After": "0"}


def _cancel(store: Any, scope: str, name: str) -> None:
    record = store.get_job(scope, name)
    if record is None:
        return
    if record["status"] not in TERMINAL and not store.set_status(
        scope, name, "Canceled", only_from=("NotStarted", "Queued"), ended=now()
    ):
        store.set_status(scope, name, "CancelRequested", only_from=("Starting", "Preparing", "Running", "Finalizing"))


def operation_result(context: Context) -> tuple[int, Any] | tuple[int, Any, dict[str, str]]:
    operation = context.params["operation"]
    if not operation.startswith("cancel-"):
        raise not_found(f"operation {operation!r}")
    record = context.emulator.store.get_job(context.scope, operation.removeprefix("cancel-"))
    if record is None:
        raise not_found(f"job of operation {operation!r}")
    if record["status"] in TERMINAL:
        return 200, {}
    return (
        202,
        None,
        {
            "Location": f"{context.emulator.base_url}{context.path}?api-version={context.query['api-version']}",
            "Retry-After": "0",
        },
    )


# ---------------------------------------------------------------- run history and data plane
def run_details(context: Context) -> tuple[int, Any]:
    from infra.azureml_emulator import jobs

    record = context.emulator.store.get_job(context.scope, context.params["run"])
    if record is None:
        raise not_found(f"run {context.params['run']!r}")
    return 200, jobs.run_details(context, context.params["run"], record)


def run(context: Context) -> tuple[int, Any]:
    from infra.azureml_emulator import jobs

    record = context.emulator.store.get_job(context.scope, context.params["run"])
    if record is None:
        raise not_found(f"run {context.params['run']!r}")
    return 200, jobs.run_document(context, context.params["run"], record)


def run_children(context: Context) -> tuple[int, Any]:
    """Run history's children of a run (what `jobs.list(parent_job_name=...)` reads): a batch job's step."""
    from infra.azureml_emulator import jobs

    store = context.emulator.store
    if store.get_job(context.scope, context.params["run"]) is None:
        raise not_found(f"run {context.params['run']!r}")
    documents = []
    for child in store.children(context.scope, context.params["run"]):
        record = store.get_job(context.scope, child)
        if record is not None:
            documents.append(jobs.run_document(context, child, record))
    return 200, {"value": documents, "continuationToken": None, "nextLink": None}


def run_data(context: Context) -> tuple[int, Any]:
    from infra.azureml_emulator import jobs

    run_id = str(context.json().get("runId") or "")
    record = context.emulator.store.get_job(context.scope, run_id)
    if record is None:
        raise not_found(f"run {run_id!r}")
    return 200, {
        "runMetadata": jobs.run_document(context, run_id, record),
        "runDefinition": None,
        "jobSpecification": None,
        "systemSettings": None,
    }


def resolved_uris(context: Context) -> tuple[int, Any]:
    from infra.azureml_emulator import jobs

    ids = context.json().get("values") or []
    return 200, {"values": {asset_id: jobs.resolve_output_asset(context, asset_id) for asset_id in ids}}


def emulator_health(context: Context) -> tuple[int, Any]:
    return 200, {"status": "ok", "url": context.emulator.base_url, "home": str(context.emulator.home)}


def emulator_requests(context: Context) -> tuple[int, Any]:
    return 200, {"value": context.emulator.store.requests(bodies=context.query.get("bodies") == "true")}


def register(route: Callable[[str, str], Callable[[Any], Any]]) -> None:
    """Add every route to the server's table."""
    kinds = "(?P<kind>" + "|".join(ASSET_KINDS) + ")"
    history = r"/history/v1\.0{WS}(?:/experiments/[^/]+|/experimentids/[^/]+)?"
    table: list[tuple[str, str, Callable[[Context], Any]]] = [
        ("GET", "/emulator/health", emulator_health),
        ("GET", "/emulator/requests", emulator_requests),
        ("GET", "/discovery", discovery),
        ("GET", "{WS}", workspace),
        ("GET", "{WS}/datastores", datastores),
        ("GET", "{WS}/datastores/(?P<name>[^/]+)", datastore),
        ("POST", "{WS}/datastores/(?P<name>[^/]+)/listSecrets", datastore_secrets),
        ("GET", "{WS}/" + kinds, asset_containers),
        ("GET", "{WS}/" + kinds + "/(?P<name>[^/]+)", asset_container),
        ("PUT", "{WS}/" + kinds + "/(?P<name>[^/]+)", asset_container),
        ("GET", "{WS}/" + kinds + "/(?P<name>[^/]+)/versions", asset_versions),
        ("GET", "{WS}/" + kinds + "/(?P<name>[^/]+)/versions/(?P<version>[^/]+)", asset_version),
        ("PUT", "{WS}/" + kinds + "/(?P<name>[^/]+)/versions/(?P<version>[^/]+)", asset_version),
        (
            "POST",
            "{WS}/" + kinds + "/(?P<name>[^/]+)/versions/(?P<version>[^/]+)/startPendingUpload",
            start_pending_upload,
        ),
        ("GET", "{WS}/jobs", job_list),
        ("GET", "{WS}/jobs/(?P<name>[^/]+)", job),
        ("PUT", "{WS}/jobs/(?P<name>[^/]+)", job),
        ("POST", "{WS}/jobs/(?P<name>[^/]+)/cancel", job_cancel),
        ("GET", "{WS}/operationResults/(?P<operation>[^/]+)", operation_result),
        ("GET", history + "/runs/(?P<run>[^/]+)/children", run_children),
        ("GET", history + "/runs/(?P<run>[^/]+)/details", run_details),
        ("GET", history + "/runs/(?P<run>[^/]+)", run),
        ("POST", history + "/rundata", run_data),
        ("POST", r"/data/v1\.0{WS}/dataversion/batchGetResolvedUris", resolved_uris),
    ]
    for method, pattern, handler in table:
        route(method, pattern)(handler)
