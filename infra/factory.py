"""The one place that picks a backend: `open_backend(settings)` builds the one `MLOPS_BACKEND` names.

It lives apart from `infra.backend` (the protocol and its values) so that both adapters import the
protocol and nothing imports an adapter back.
"""

from __future__ import annotations

from infra.backend import Backend
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
