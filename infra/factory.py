"""The one place that picks a backend: `open_backend(settings)` builds the one `MLOPS_BACKEND` names.

It lives apart from `infra.backend` (the protocol and its values) so that both adapters import the
protocol and nothing imports an adapter back.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from infra.backend import Backend, Registry, TrainSpec
from infra.settings import Settings


def open_backend(settings: Settings) -> Backend:
    """Build the backend chosen by `MLOPS_BACKEND`: `local` (this machine) or `azureml` (azure-ai-ml's MLClient)."""
    match settings.backend:
        case "local":
            from infra.local import LocalBackend

            return LocalBackend(settings)
        case "azureml":
            from infra.azureml import AzureMLBackend

            return AzureMLBackend(settings)


def train_ahead(settings: Settings, spec: TrainSpec, keep: Callable[[], bool], stop: threading.Event) -> bool:
    """Run `spec`'s training job before the flow that will ask for it, while `keep()` decides beside it whether
    the job is wanted (and stopping it once `stop` is set); whether it trained and was kept. Only where jobs run on
    this machine (`local`: `LocalJobs.train_ahead`, without building the whole backend); on Azure ML a job is the
    flow's to submit."""
    if settings.backend != "local":
        return False
    from infra.local import workspace_jobs

    return workspace_jobs(settings).train_ahead(spec, keep, stop)


def open_shared_registry(target: Settings | None = None) -> Registry:
    """The registry the environments share. Into an Azure ML workspace (`target` on azureml): the Azure ML registry
    `MLOPS_AZUREML_REGISTRY_NAME` names, reached with the target's credential and cloud. Otherwise (`[shared]
    registry` of environments.toml, `MLOPS_SHARED_REGISTRY`, else `<checkout>/.mlops-shared`): on this machine, a
    local registry outside any one workspace. Both keep the same rules (consecutive versions, tags, properties,
    idempotent on content)."""
    if target is not None and target.backend == "azureml":
        from infra.azureml import shared_registry

        return shared_registry(target)
    from infra.environments import load_environments
    from infra.local import LocalRegistry

    return LocalRegistry(load_environments().shared_registry / "registry.db")
