"""Azure ML registries as azure-ai-ml reaches them with `MLClient(credential, registry_name=...)`: the registry's
discovery, then its model routes on the registry's own endpoint (`<primaryRegionResourceProviderUri>mferp/
managementfrontend`, api-version 2021-10-01-dataplanepreview).

Every shape here follows one recording of the SDK's own test against a real registry, model/e2etests/test_model.py
TestModeltest_create_get_download_model_registry.json (azure-sdk-assets, 2024-05-03; "the recording" below), and the
SDK's calls in `azure/ai/ml/_utils/_registry_utils.py` and `operations/_model_operations.py`:

    GET  /registrymanagement/v1.0/registries/{r}/discovery               the registry's region and endpoint (entry 0)
    GET  {REG}/models/{n}/versions[?$orderBy=createdtime desc&$top=1]    200 {"value": []} for a new name (entry 1)
    PUT  {REG}/tempdatarefs/{n}/versions/{v}                             where the version's files go: a container
                                                                         and a SAS to write it (entry 2)
    PUT  {REG}/models/{n}/versions/{v}                                   202 + Location, a long-running operation
    GET  /assetstore/v1.0/operations/{id}                                its status: 200 {"assetId"} when done
    GET  {REG}/models/{n}/versions/{v}, GET {REG}/models[/{n}]           the version, the containers
    POST {REG}/datarefs/{n}/versions/{v}                                 a SAS to read the version's files

`{REG}` = /mferp/managementfrontend/subscriptions/{s}/resourceGroups/{rg}/providers/
Microsoft.MachineLearningServices/registries/{r}. Files go to the emulator's blob service, as a workspace's do.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from azureml_emulator.core import sas
from azureml_emulator.core.arm import LOCATION, OPERATIONS_SCOPE, STORAGE_ACCOUNT, system_data
from azureml_emulator.core.context import Context, page, version_page
from azureml_emulator.core.errors import ArmError, not_found
from azureml_emulator.core.registries import get_registry, registry_scope
from azureml_emulator.core.routing import Answer, Handler, Routes
from azureml_emulator.core.storage import MissingFiles, blob_location
from azureml_emulator.core.store import now

REGISTRY = (
    r"/mferp/managementfrontend/subscriptions/(?P<sub>[^/]+)/resource[gG]roups/(?P<rg>[^/]+)"
    r"/providers/Microsoft\.MachineLearningServices/registries/(?P<reg>[^/]+)"
)
OPERATIONS = "registryOperations"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,254}")
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,29}")
_CONTAINER_PREFIX = re.compile(r"[^a-z0-9]")


def _registry(context: Context) -> dict[str, Any]:
    """The registry the request names; the discovery and the routes answer 404 for one the emulator does not hold
    (the status and text are the emulator's: no recording shows an unknown registry)."""
    found = get_registry(context.emulator.store, context.params["reg"])
    if found is None:
        raise ArmError(404, "NotFound", f"registry {context.params['reg']!r} does not exist")
    return found


def discovery(context: Context) -> tuple[int, Any]:
    """The registry's discovery document, keys and values as recorded (entry 0); the SDK takes the registry's
    subscription and resource group from it, and its endpoint from `primaryRegionResourceProviderUri` (with no
    workspace location given, `RegistryDiscovery._get_registry_details`)."""
    found = _registry(context)
    base = context.emulator.base_url
    return 200, {
        "registryId": found["registryId"],
        "registryName": found["name"],
        "tenantId": "00000000-0000-0000-0000-000000000000",
        "primaryRegion": LOCATION,
        "regions": [LOCATION],
        "subscriptionId": found["subscriptionId"],
        "resourceGroup": found["resourceGroup"],
        "workspaceName": None,
        "primaryRegionResourceProviderUri": f"{base}/",
        "registryFqdns": {LOCATION: {"uri": base}},
        "intellectualPropertyPublisher": None,
    }


def _asset_id(context: Context, name: str, version: str | None = None) -> str:
    # ids name the registry in lower case, as recorded (entries 9 and 10: `azureml://registries/testfeed/...`)
    asset = f"azureml://registries/{context.params['reg'].lower()}/models/{name}"
    return asset if version is None else f"{asset}/versions/{version}"


def _check_name_version(name: str, version: str) -> None:
    """The workspace's rules for an asset's name and version (`handlers/assets.py`), taken to hold in a registry."""
    if not _NAME.fullmatch(name):
        raise ArmError(400, "UserError", f"model name {name!r} is invalid: letters, digits, '-', '_' or '.'")
    if not _VERSION.fullmatch(version):
        raise ArmError(
            400, "UserError", f"version {version!r} is invalid: letters, digits, '-', '_' or '.', at most 30"
        )


def _sas_reference(context: Context, container: str, permissions: str) -> dict[str, Any]:
    """`blobReferenceForConsumption`, as recorded (entries 2 and 11): the container's URI, the storage account's id
    and a service SAS for the container (recorded `sr=c`, `sp=rcwl` to write, `sp=rl` to read)."""
    blob_uri = f"{context.emulator.blob_base}/{container}"
    token = sas.service_sas(container, hours=24, permissions=permissions)
    p = context.params
    return {
        "blobUri": blob_uri,
        "storageAccountArmId": f"/subscriptions/{p['sub']}/resourceGroups/{p['rg']}/providers/Microsoft.Storage"
        f"/storageAccounts/{STORAGE_ACCOUNT}",
        "credential": {"credentialType": "SAS", "sasUri": f"{blob_uri}?{token}"},
    }


def temporary_data_reference(context: Context) -> tuple[int, Any]:
    """Where a new version's files go (entry 2): a container of its own and a SAS to write it. A version that
    exists already answers 409, which the SDK takes as "skip the upload" (`get_sas_uri_for_registry_asset`)."""
    _registry(context)
    name, version = context.params["name"], context.params["version"]
    _check_name_version(name, version)
    request = context.json()
    if str(request.get("assetId", "")).lower() != _asset_id(context, name, version).lower():
        raise ArmError(400, "UserError", f"assetId {request.get('assetId')!r} does not name model {name}:{version}")
    if context.emulator.store.get_asset(registry_scope(context.params["reg"]), "models", name, version) is not None:
        raise ArmError(409, "Conflict", f"Asset already exists: {_asset_id(context, name, version)}")
    prefix = _CONTAINER_PREFIX.sub("", context.params["reg"].lower())[:26]
    reference = _sas_reference(context, f"{prefix}-{uuid.uuid4()}", "rcwl")
    return 200, {
        "blobReferenceForConsumption": reference,
        "imageReferenceForConsumption": None,
        "temporaryDataReferenceId": str(uuid.uuid4()),
        "temporaryDataReferenceType": None,
    }


def data_reference(context: Context) -> tuple[int, Any]:
    """A SAS to read a version's files (entry 11: body `{assetId, blobUri}`, answer the container's reference)."""
    body = _version_or_404(context)
    uri = str(context.json().get("blobUri") or body["properties"]["modelUri"])
    try:
        container, _ = blob_location(context.emulator, uri)
    except MissingFiles as exc:
        raise ArmError(400, "UserError", str(exc)) from None
    reference = _sas_reference(context, container, "rl")
    reference["blobUri"] = uri
    return 200, {"blobReferenceForConsumption": reference}


def _version_or_404(context: Context) -> dict[str, Any]:
    _registry(context)
    name, version = context.params["name"], context.params["version"]
    found = context.emulator.store.get_asset(registry_scope(context.params["reg"]), "models", name, version)
    if found is None:
        raise not_found(f"model {name!r} version {version!r} in registry {context.params['reg']!r}")
    return found


def model_version(context: Context) -> Answer:
    """GET a version (entry 9's body), or PUT one: 202 with `Location` on the asset store's operations and
    `x-ms-async-operation-timeout: PT1H`, as recorded (entry 7; its body there is the JSON text `null`, here
    empty). Its files must be in the emulator's storage (the service copies them; not recorded)."""
    if context.method == "GET":
        return 200, _version_or_404(context)
    _registry(context)
    name, version = context.params["name"], context.params["version"]
    _check_name_version(name, version)
    properties = dict(context.json().get("properties") or {})
    uri = str(properties.get("modelUri") or "")
    if not uri:
        raise ArmError(400, "UserError", "a model version needs 'modelUri'")
    try:
        container, prefix = blob_location(context.emulator, uri)
    except MissingFiles as exc:
        raise ArmError(400, "UserError", f"modelUri {uri}: {exc}") from None
    store = context.emulator.store
    if store.get_blob(container, prefix) is None and not store.list_blobs(container, prefix.rstrip("/") + "/"):
        raise ArmError(400, "UserError", f"modelUri {uri} holds no files")
    scope = registry_scope(context.params["reg"])
    existing = store.get_asset(scope, "models", name, version)
    if existing is not None and existing["properties"]["modelUri"] != uri:
        # as a workspace answers it (handlers/assets.py: azure-ai-ml keys AssetPathException on this text)
        raise ArmError(400, "UserError", "Asset paths cannot be updated.")
    stamp = now()
    body = {
        "id": _asset_id(context, name, version),
        "name": name,
        "type": "models",
        "properties": _version_properties(properties),
        "systemData": system_data(existing["systemData"]["createdAt"] if existing else stamp, stamp),
    }
    store.put_asset(scope, "models", name, version, body)
    _touch_container(context, name, version, stamp)
    operation = str(uuid.uuid4())
    store.put_asset(OPERATIONS_SCOPE, OPERATIONS, operation, "", {"assetId": body["id"]})
    location = f"{context.emulator.base_url}/assetstore/v1.0/operations/{operation}"
    return 202, None, {"Location": location, "x-ms-async-operation-timeout": "PT1H"}


def _version_properties(properties: dict[str, Any]) -> dict[str, Any]:
    """A version's properties as the recorded GET returns them (entry 9): the request's, with the service's own
    fields (`originAssetId`, `jobName`, `intellectualProperty`) and string maps for tags and properties."""
    return {
        "description": properties.get("description"),
        "tags": {str(k): str(v) for k, v in (properties.get("tags") or {}).items()},
        "properties": {str(k): str(v) for k, v in (properties.get("properties") or {}).items()},
        "isArchived": bool(properties.get("isArchived", False)),
        "isAnonymous": bool(properties.get("isAnonymous", False)),
        "flavors": properties.get("flavors") or {},
        "modelType": properties.get("modelType") or "custom_model",
        "modelUri": properties["modelUri"],
        "originAssetId": None,
        "jobName": properties.get("jobName"),
        "intellectualProperty": None,
    }


def _touch_container(context: Context, name: str, version: str, stamp: str) -> None:
    """The model's container: its latest and next version (the SDK's ArmModelContainer; not recorded here)."""
    scope = registry_scope(context.params["reg"])
    store = context.emulator.store
    old = store.get_asset(scope, "models", name)
    created = old["systemData"]["createdAt"] if old else stamp
    store.put_asset(
        scope,
        "models",
        name,
        "",
        {
            "id": _asset_id(context, name),
            "name": name,
            "type": "models",
            "properties": {
                "description": None,
                "tags": {},
                "properties": {},
                "isArchived": False,
                "latestVersion": version,
                "nextVersion": str(int(version) + 1) if version.isdigit() else None,
            },
            "systemData": system_data(created, stamp),
        },
    )


def operation_status(context: Context) -> tuple[int, Any]:
    """The PUT's operation (entry 8): 200 with the asset's id once done (the emulator's are done at once, so the
    recorded first 202 is not answered)."""
    found = context.emulator.store.get_asset(OPERATIONS_SCOPE, OPERATIONS, context.params["operation"])
    if found is None:
        raise not_found(f"operation {context.params['operation']!r}")
    return 200, found


def model_versions(context: Context) -> tuple[int, Any]:
    """A model's versions, newest first, with `$orderBy`, `$top` and `listViewType`; a name with none answers
    200 `{"value": []}`, as recorded (entry 1), where a workspace answers 404."""
    _registry(context)
    versions = list(
        reversed(
            context.emulator.store.list_assets(registry_scope(context.params["reg"]), "models", context.params["name"])
        )
    )
    return 200, version_page(context, versions)


def model_container(context: Context) -> tuple[int, Any]:
    _registry(context)
    found = context.emulator.store.get_asset(registry_scope(context.params["reg"]), "models", context.params["name"])
    if found is None:
        raise not_found(f"model {context.params['name']!r} in registry {context.params['reg']!r}")
    return 200, found


def model_containers(context: Context) -> tuple[int, Any]:
    _registry(context)
    return 200, page(context, context.emulator.store.list_assets(registry_scope(context.params["reg"]), "models"))


def register(routes: Routes) -> None:
    versions = REGISTRY + "/models/(?P<name>[^/]+)/versions"
    table: list[tuple[str, str, Handler]] = [
        ("GET", "/registrymanagement/v1.0/registries/(?P<reg>[^/]+)/discovery", discovery),
        ("GET", REGISTRY + "/models", model_containers),
        ("GET", REGISTRY + "/models/(?P<name>[^/]+)", model_container),
        ("GET", versions, model_versions),
        *((m, versions + "/(?P<version>[^/]+)", model_version) for m in ("GET", "PUT")),
        ("PUT", REGISTRY + "/tempdatarefs/(?P<name>[^/]+)/versions/(?P<version>[^/]+)", temporary_data_reference),
        ("POST", REGISTRY + "/datarefs/(?P<name>[^/]+)/versions/(?P<version>[^/]+)", data_reference),
        ("GET", "/assetstore/v1.0/operations/(?P<operation>[^/]+)", operation_status),
    ]
    for method, pattern, handler in table:
        routes.add(method, pattern, handler)
