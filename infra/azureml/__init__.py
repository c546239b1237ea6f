"""The Azure ML backend: jobs, registry, online and batch endpoints and provisioning, through azure-ai-ml's `MLClient`.

The only package that imports `azure.ai.ml`. Every client comes from `client.make_client(settings)`:
Azure with `DefaultAzureCredential`, or the local emulator (`azureml_emulator`) when
`MLOPS_AZUREML_EMULATOR` is set. Bundles and managed online endpoints are in `endpoints.py`, batch
endpoints in `batch.py`, the workspace and its compute in `workspace.py`; every entity sent is
built in `entities.py`, which also writes its YAML.
"""

from __future__ import annotations

import os

# The SDK records its cloud in AZUREML_CURRENT_CLOUD, and child processes inherit it. An emulator cloud
# named there is unknown to a new process until its client registers it again, and importing
# azure.ai.ml with an unknown cloud set fetches Azure's cloud list (a network call) and then fails.
# So an emulator cloud inherited from a parent is dropped before the SDK is imported.
if os.environ.get("AZUREML_CURRENT_CLOUD", "").startswith("MlopsEmulator"):
    del os.environ["AZUREML_CURRENT_CLOUD"]

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from infra.azureml.backend import AzureMLBackend
    from infra.azureml.endpoints import AzureMLBundles, AzureMLEndpoints
    from infra.azureml.jobs import AzureMLJobs
    from infra.azureml.registry import AzureMLRegistry, AzureMLSharedRegistry, shared_registry

__all__ = [
    "AzureMLBackend",
    "AzureMLBundles",
    "AzureMLEndpoints",
    "AzureMLJobs",
    "AzureMLRegistry",
    "AzureMLSharedRegistry",
    "shared_registry",
]

# Loaded when first used, not with the package: the settings (`infra.azureml.settings`, which `infra.settings`
# composes) must not pay for azure-ai-ml (over a second) on every command, nor import the adapter back.
_MODULES = {
    "AzureMLBackend": "infra.azureml.backend",
    "AzureMLEndpoints": "infra.azureml.endpoints",
    "AzureMLJobs": "infra.azureml.jobs",
    "AzureMLBundles": "infra.azureml.endpoints",
    "AzureMLRegistry": "infra.azureml.registry",
    "AzureMLSharedRegistry": "infra.azureml.registry",
    "shared_registry": "infra.azureml.registry",
}


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return getattr(importlib.import_module(_MODULES[name]), name)
    raise AttributeError(f"module 'infra.azureml' has no attribute {name!r}")
