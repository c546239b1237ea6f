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

from infra.azureml.batch import AzureMLBatch
from infra.azureml.client import make_client
from infra.azureml.endpoints import AzureMLBundles, AzureMLEndpoints
from infra.azureml.jobs import AzureMLJobs
from infra.azureml.monitoring import AzureMLMonitoring
from infra.azureml.registry import AzureMLRegistry
from infra.azureml.workspace import AzureMLWorkspace
from infra.settings import Settings
from infra.storage import Storage

__all__ = ["AzureMLBackend", "AzureMLBundles", "AzureMLEndpoints", "AzureMLJobs", "AzureMLRegistry"]


class AzureMLBackend:
    """Jobs, registry, bundles, endpoints, batch and the workspace on Azure ML; storage as configured (Azure Blob or
    a folder), as with the local backend."""

    name = "azureml"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client = make_client(settings)
        self.jobs = AzureMLJobs(self.client, settings)
        self.registry = AzureMLRegistry(self.client, settings)
        self.endpoints = AzureMLEndpoints(self.client, settings)
        self.bundles = AzureMLBundles(self.client, settings)
        self.batch = AzureMLBatch(self.client, settings, self.bundles, self.jobs)
        self.workspace = AzureMLWorkspace(self.client, settings, self.endpoints, self.jobs)
        self.monitoring = AzureMLMonitoring(self.client, settings)
        self.storage = Storage(settings)
