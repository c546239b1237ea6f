"""What online and batch endpoints share: endpoint names, the endpoint a request addresses, deployments' assets."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from azureml_emulator.core.arm import BATCH, ONLINE, OPERATIONS_SCOPE, TAKEN, asset_reference, curated_environment
from azureml_emulator.core.context import Context
from azureml_emulator.core.errors import ArmError, not_found
from azureml_emulator.core.operations import public, read_or_delete
from azureml_emulator.core.registries import REGISTRY_ASSET, registry_model
from azureml_emulator.core.routing import Answer

_ENDPOINT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9\-]{1,30}[A-Za-z0-9]")


def check_endpoint_name(name: str) -> None:
    if not _ENDPOINT_NAME.fullmatch(name):
        raise ArmError(
            400,
            "BadArgument",
            f"endpoint name {name!r} is invalid: 3-32 characters, letters, digits and '-', starting with a "
            "letter and not ending with '-'",
        )


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


def endpoint_or_404(context: Context, kind: str = ONLINE) -> dict[str, Any]:
    """The stored body of the endpoint the request names (`kind`: ONLINE or BATCH)."""
    name = context.params["endpoint"]
    found = context.emulator.store.get_asset(context.scope, kind, name)
    if found is None:
        raise not_found(f"{'online' if kind == ONLINE else 'batch'} endpoint {name!r}")
    return found


def list_deployments(context: Context, endpoint_kind: str, kind: str) -> tuple[int, Any]:
    """The deployments (`kind`) of the endpoint the request names."""
    endpoint = endpoint_or_404(context, endpoint_kind)
    found = context.emulator.store.list_assets(context.scope, kind)
    return 200, {"value": [public(d) for d in found if d["_emulator"]["endpoint"] == endpoint["name"]]}


def _asset_body(context: Context, reference: str, kind: str, what: str) -> dict[str, Any]:
    if kind == "models" and REGISTRY_ASSET.fullmatch(reference):
        # a registry's model, named by its registry id as the SDK sends it (operations/_operation_orchestrator.py
        # keeps `azureml://registries/...` as it is; Microsoft Learn, "Share models across workspaces with
        # registries": deploy with `model=azureml://registries/<registry>/models/<name>/versions/<v>`)
        found = registry_model(context.emulator.store, reference)
        if found is None:
            raise ArmError(400, "BadArgument", f"{what} {reference!r} does not exist in its registry")
        return found
    parsed = asset_reference(reference.removeprefix("azureml:"))
    if parsed is None or parsed[0] != kind:
        raise ArmError(400, "BadArgument", f"{what} {reference!r} is not an asset id of kind {kind}")
    body = context.emulator.store.get_asset(context.scope, *parsed)
    if body is None:
        raise ArmError(400, "BadArgument", f"{what} {reference!r} does not exist in workspace {context.params['ws']!r}")
    return body


def deployment_assets(
    context: Context, properties: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The model, code and environment a deployment names, which must exist ({} for a curated environment)."""
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


def endpoint_request(
    context: Context, name: str, existing: dict[str, Any] | None, remove: Callable[[], Any], *, batch: bool
) -> Answer | None:
    """What an online or batch endpoint request does before its own body: a GET or DELETE answered
    (`read_or_delete`), else, for a PUT, the name checked (its form, and in the region when the endpoint is new)."""
    kind = "batch endpoint" if batch else "online endpoint"
    answer = read_or_delete(context, existing, f"{kind} {name!r}", remove)
    if answer is not None:
        return answer
    check_endpoint_name(name)
    if existing is None:
        check_region_name(context, name, batch=batch)
    return None
