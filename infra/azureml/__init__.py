"""The Azure ML backend: training as command jobs and the model registry, through azure-ai-ml's `MLClient`.

The only package that imports `azure.ai.ml`. Every client comes from `client.make_client(settings)`:
Azure with `DefaultAzureCredential`, or the local emulator (`infra.azureml_emulator`) when
`MLOPS_AZUREML_EMULATOR` is set. Online endpoints, packages and batch scoring on Azure ML are not
built yet: `endpoints.get` reads an endpoint, and every other endpoint, package or batch operation
raises `BackendError` saying so (use the local backend for them).
"""

from __future__ import annotations

import os

# The SDK records its cloud in AZUREML_CURRENT_CLOUD, and child processes inherit it. An emulator cloud
# named there is unknown to a new process until its client registers it again, and importing
# azure.ai.ml with an unknown cloud set fetches Azure's cloud list (a network call) and then fails.
# So an emulator cloud inherited from a parent is dropped before the SDK is imported.
if os.environ.get("AZUREML_CURRENT_CLOUD", "").startswith("MlopsEmulator"):
    del os.environ["AZUREML_CURRENT_CLOUD"]

from typing import Any, NoReturn

from azure.ai.ml.entities import ManagedOnlineEndpoint
from azure.core.exceptions import ResourceNotFoundError

from infra.azureml.client import describe_target, make_client, translated
from infra.azureml.jobs import AzureMLJobs
from infra.azureml.registry import AzureMLRegistry
from infra.backend import DeploymentInfo, EndpointState
from infra.errors import BackendError
from infra.settings import Settings
from infra.storage import Storage

__all__ = ["AzureMLBackend", "AzureMLJobs", "AzureMLRegistry"]


def _not_yet(what: str) -> NoReturn:
    msg = f"{what} on Azure ML is not built yet; run it with the local backend (unset MLOPS_BACKEND)"
    raise BackendError(msg)


class AzureMLEndpoints:
    """Reads an online endpoint's state; creating and changing endpoints on Azure ML is not built yet."""

    def __init__(self, backend: AzureMLBackend) -> None:
        self.backend = backend

    def get(self, name: str) -> EndpointState | None:
        client = self.backend.client
        with translated(self.backend.settings, f"reading online endpoint {name}"):
            try:
                endpoint: ManagedOnlineEndpoint = client.online_endpoints.get(name)
            except ResourceNotFoundError:
                return None
            models = {d.name: _model_id(str(d.model)) for d in client.online_deployments.list(name)}
        traffic = endpoint.traffic or {}
        return EndpointState(
            name=name,
            url=str(endpoint.scoring_uri or "").removesuffix("/score"),
            running=endpoint.provisioning_state == "Succeeded",
            deployments={
                d: DeploymentInfo(model=models.get(d, "?"), traffic=int(share)) for d, share in traffic.items()
            },
        )

    def __getattr__(self, operation: str) -> Any:
        if operation.startswith("__"):
            raise AttributeError(operation)  # introspection (copy, pickle, hasattr) sees an ordinary object
        _not_yet(f"the endpoint operation {operation!r}")


def _model_id(reference: str) -> str:
    """`name:version` of a deployment's model, given as an ARM id (`.../models/<name>/versions/<v>`) or `azureml:name:version`."""
    parts = reference.rstrip("/").split("/")
    if len(parts) >= 3 and parts[-2] == "versions":
        return f"{parts[-3]}:{parts[-1]}"
    return reference.removeprefix("azureml:")


class _NotYet:
    def __init__(self, what: str) -> None:
        self.what = what

    def __getattr__(self, operation: str) -> Any:
        if operation.startswith("__"):
            raise AttributeError(operation)
        _not_yet(f"{self.what} ({operation})")


class AzureMLWorkspace:
    def __init__(self, backend: AzureMLBackend) -> None:
        self.backend = backend

    def ensure(self) -> list[str]:
        """Check the workspace answers (it is not created from here: see the README's Azure ML section)."""
        settings = self.backend.settings
        with translated(settings, "reading the workspace"):
            self.backend.client.workspaces.get(settings.azure_workspace_name)
        return []

    def delete(self) -> list[str]:
        settings = self.backend.settings
        msg = (
            f"deleting the {describe_target(settings)} is left to you: "
            f"`az ml workspace delete -n {settings.azure_workspace_name} -g {settings.azure_resource_group}`"
        )
        raise BackendError(msg)


class AzureMLBackend:
    """Jobs and registry on Azure ML; storage as configured (Azure Blob or a folder), as with the local backend."""

    name = "azureml"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client = make_client(settings)
        self.jobs = AzureMLJobs(self.client, settings)
        self.registry = AzureMLRegistry(self.client, settings)
        self.endpoints = AzureMLEndpoints(self)
        self.packages = _NotYet("packaging a model")
        self.batch = _NotYet("batch scoring")
        self.workspace = AzureMLWorkspace(self)
        self.storage = Storage(settings)
