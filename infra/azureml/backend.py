"""The Azure ML backend as one object: jobs, registry, bundles, endpoints, batch and the workspace via `MLClient`."""

from __future__ import annotations

from infra.azureml.batch import AzureMLBatch
from infra.azureml.client import make_client
from infra.azureml.endpoints import AzureMLBundles, AzureMLEndpoints
from infra.azureml.jobs import AzureMLJobs
from infra.azureml.monitoring import AzureMLMonitoring
from infra.azureml.registry import AzureMLRegistry
from infra.azureml.workspace import AzureMLWorkspace
from infra.settings import Settings
from infra.storage import Storage


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
