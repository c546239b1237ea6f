"""Azure ML registries the emulator holds: which exist (and in which subscription and resource group), where each
keeps its assets in the store, and the model versions an `azureml://registries/...` reference names.

A registry is not in a workspace: its assets are found by the registry's name alone (the SDK discovers the
registry's subscription and resource group from its name: `azure/ai/ml/_utils/_registry_utils.py`,
`RegistryDiscovery`), so they are kept under a scope of their own, `registry:<name>`. Names are matched without
case: the recorded service answers a request for registry `testFeed` with ids naming `testfeed`
(model/e2etests/test_model.py TestModeltest_create_get_download_model_registry.json, entries 9 and 10).
"""

from __future__ import annotations

import re
from typing import Any

from azureml_emulator.core.arm import OPERATIONS_SCOPE, workspace_guid
from azureml_emulator.core.store import Store, now

REGISTRIES = "registries"  # the store's kind for the registries themselves (in the operations scope)
# the emulator's own check of a registry name (letters, digits, "-", "_"; at most 33): not from a recording
_REGISTRY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-]{1,32}")
# `azureml://registries/<registry>/models/<name>/versions/<version>`, the SDK's REGISTRY_VERSION_PATTERN
# (azure/ai/ml/constants/_common.py), which deployments name as their model as it is (operations/
# _operation_orchestrator.py returns a registry id unchanged)
REGISTRY_ASSET = re.compile(
    r"azureml://registries/(?P<registry>[^/]+)/(?P<kind>models)/(?P<name>[^/]+)/versions/(?P<version>[^/]+)"
)


def registry_scope(name: str) -> str:
    """Where a registry's assets are kept in the store."""
    return f"registry:{name.lower()}"


def add_registry(store: Store, scope: str) -> None:
    """Hold registry `SUB/RG/NAME` (kept if it exists). A name Azure would refuse raises ValueError."""
    subscription, resource_group, name = scope.split("/")
    if not _REGISTRY_NAME.fullmatch(name):
        raise ValueError(f"registry name {name!r}: 2-33 letters, digits, '-' or '_', starting with a letter or digit")
    if store.get_asset(OPERATIONS_SCOPE, REGISTRIES, name.lower()) is None:
        body = {
            "name": name,
            "subscriptionId": subscription,
            "resourceGroup": resource_group,
            "registryId": workspace_guid(registry_scope(name)),
            "created": now(),
        }
        store.put_asset(OPERATIONS_SCOPE, REGISTRIES, name.lower(), "", body)


def get_registry(store: Store, name: str) -> dict[str, Any] | None:
    return store.get_asset(OPERATIONS_SCOPE, REGISTRIES, name.lower())


def registry_model(store: Store, reference: str) -> dict[str, Any] | None:
    """The stored body of the registry model version `reference` names, or None (not such a reference, or none)."""
    found = REGISTRY_ASSET.fullmatch(reference)
    if found is None:
        return None
    return store.get_asset(registry_scope(found["registry"]), found["kind"], found["name"], found["version"])
