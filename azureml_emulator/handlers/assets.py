"""Datastores, and the assets of a workspace: codes, data, environments and models (containers and versions).

Bodies carry the defaults the real service adds (checked against recorded real responses in
`tests/azureml_emulator/test_shapes.py`). Requests are validated the way the service does: a
name, required fields, references that must exist, versions that do not change.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from azureml_emulator.core import bodies, sas
from azureml_emulator.core.arm import DATASTORE_CONTAINERS, PROVIDER, STORAGE_ACCOUNT, STORAGE_SUFFIX, system_data
from azureml_emulator.core.context import Context, page, version_page
from azureml_emulator.core.errors import ArmError, not_found
from azureml_emulator.core.routing import Answer, Handler, Routes
from azureml_emulator.core.store import now

ASSET_KINDS = ("codes", "data", "environments", "models")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,254}")
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,29}")
# Environments: Azure accepts the 32-hex versions of anonymous environments (recorded 201s:
# batch_services/...test_mlflow_batch_endpoint_create_and_update.json, command_job/...test_ray_command_job.json).
# No maximum is documented; 30 is the data asset limit Azure has been seen to enforce (azureml-assets#295,
# "Argument 'version' exceeded maximum length of 30 for DatasetId"), so the other kinds keep it.
_ENVIRONMENT_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,31}")
_IMMUTABLE = {"codes": "codeUri", "data": "dataUri", "environments": "image", "models": "modelUri"}


# ---------------------------------------------------------------- datastores
def _datastore_body(context: Context, name: str) -> dict[str, Any]:
    container = DATASTORE_CONTAINERS.get(name)
    if container is None:
        raise not_found(f"datastore {name!r}")
    body = bodies.body("datastore")
    body |= {
        "id": f"{context.workspace_id}/datastores/{name}",
        "name": name,
        "systemData": system_data(context.emulator.store.workspace_created(context.scope) or now()),
    }
    body["properties"] |= {
        "isDefault": name == "workspaceblobstore",
        "subscriptionId": context.params["sub"],
        "resourceGroup": context.params["rg"],
        "accountName": context.emulator.storage_account(),
        "containerName": container,
        "endpoint": STORAGE_SUFFIX,
    }
    if context.emulator.identity_datastores:
        # an identity-based datastore, as Azure records one (model/e2etests/test_model.py
        # TestModeltest_model_archive_restore_version.json at 05fad99, entry 1); the workspace's other system
        # datastores are likely alike (its systemDatastoresAuthMode is "identity")
        body["properties"]["credentials"] = {"credentialsType": "None"}
    return body


def datastore(context: Context) -> tuple[int, Any]:
    return 200, _datastore_body(context, context.params["name"])


def datastores(context: Context) -> tuple[int, Any]:
    return 200, {"value": [_datastore_body(context, name) for name in ("workspaceartifactstore", "workspaceblobstore")]}


def datastore_secrets(context: Context) -> tuple[int, Any]:
    """The datastore's secret, in the form asked for, as Azure answers each:

    - an identity-based datastore has none: 400 UserError "No secrets for credentials of type None."
      (model/e2etests/test_model.py TestModeltest_model_archive_restore_version.json at 05fad99, entry 2);
    - `expirableSecret: true` (azure-ai-ml >= 1.2x asks so): an account SAS, `secretsType: Sas`, expiring after
      `expireAfterHours` (dataset/e2etests/test_data.py TestDatatest_create_uri_file.json at 0f205ad, entry 2,
      which asked for 1 hour; the SAS's fields are in `core/sas.py`);
    - no body (azure-ai-ml 1.12): the account key, `secretsType: AccountKey` (the same recording at 2238c1b,
      entry 2).
    """
    _datastore_body(context, context.params["name"])
    if context.emulator.identity_datastores:
        raise ArmError(400, "UserError", "No secrets for credentials of type None.")
    request = context.json()
    if request.get("expirableSecret") is True:
        hours = request.get("expireAfterHours") or 1
        if not isinstance(hours, int | float) or isinstance(hours, bool) or hours <= 0:
            raise ArmError(400, "UserError", f"expireAfterHours {hours!r} is invalid: a positive number of hours")
        return 200, {"secretsType": "Sas", "sasToken": sas.account_sas(hours=float(hours))}
    return 200, bodies.body("datastore_secrets")


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
    return 200, page(context, context.emulator.store.list_assets(context.scope, kind))


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
    if wanted_hash:
        versions = [v for v in versions if v["properties"].get("properties", {}).get("hash_sha256") == wanted_hash]
    return 200, version_page(context, versions)


def asset_version(context: Context) -> Answer:
    """GET, PUT or DELETE one version of a data, model, code or environment asset.

    Long because: the service's checks of an asset version (name, length, immutability, datastore paths) run in
    its order, which decides which error a caller sees first; split, that order would be spread over helpers."""
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
    """Check the fields the service requires and add the defaults it returns.

    Long because: each asset kind's required fields and returned defaults are listed in one place, as the
    service answers them."""
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
    body = bodies.body("pending_upload")
    body["blobReferenceForConsumption"] |= {
        "blobUri": blob_uri,
        "storageAccountArmId": f"/subscriptions/{p['sub']}/resourceGroups/{p['rg']}/providers/Microsoft.Storage/storageAccounts/{STORAGE_ACCOUNT}",
    }
    # a service SAS for the new container, read and write, which the blob service checks (how long Azure's lasts is
    # not recorded: 24 hours here)
    token = sas.service_sas(container, hours=24, permissions="rcwl")
    body["blobReferenceForConsumption"]["credential"]["sasUri"] = f"{blob_uri}?{token}"
    body |= {"pendingUploadId": str(uuid.uuid4()), "version": version}
    return 200, body


def register(routes: Routes) -> None:
    kinds = "(?P<kind>" + "|".join(ASSET_KINDS) + ")"
    table: list[tuple[str, str, Handler]] = [
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
    ]
    for method, pattern, handler in table:
        routes.add(method, pattern, handler)
