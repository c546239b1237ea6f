"""The one interface between the pipeline and the platform it runs on, and the values that cross it.

A `Backend` groups operations the way Azure ML's `MLClient` does: `jobs` (training runs) and
`registry` (model versions and aliases); endpoints, batch scoring, storage and provisioning join
it as the pipeline grows. `open_backend(settings)` is the only place that picks an implementation.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict

from infra.errors import ConfigError
from infra.settings import Settings


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True)


class TrainSpec(_Value):
    """A training run to perform. `job_name` is deterministic so a retried run re-attaches instead of repeating."""

    job_name: str
    data: Path
    parameters: dict[str, Any]
    timeout_seconds: float = 3600


class TrainOutput(_Value):
    """A finished training run: the folder with the model, metrics, environment lock and training record."""

    job_name: str
    outputs: Path
    metrics: dict[str, float]
    environment: dict[str, Any]
    training: dict[str, Any]
    log: Path
    reattached: bool = False


class ModelVersion(_Value):
    """One registered model version, as Azure ML's registry describes it."""

    name: str
    version: int
    content_hash: str
    path: str
    tags: dict[str, str]
    properties: dict[str, str]
    created_time: datetime
    archived: bool = False

    @property
    def id(self) -> str:
        return f"{self.name}:{self.version}"


class Registration(_Value):
    """The answer to a registration: the version, and whether it was created now or already held these bytes."""

    model: ModelVersion
    created: bool


class Jobs(Protocol):
    def train(self, spec: TrainSpec) -> TrainOutput:
        """Run `python -m model.train` on the spec and return its outputs (re-attaching to a finished run)."""
        ...


class Registry(Protocol):
    def register(self, name: str, source: Path, *, tags: dict[str, str], properties: dict[str, str]) -> Registration:
        """Register the folder `source` as the next version of `name`, unless these bytes are already a version."""
        ...

    def get(self, name: str, version: int) -> ModelVersion:
        """One version; `MissingResourceError` if it does not exist."""
        ...

    def list(self, name: str | None = None, *, include_archived: bool = False) -> list[ModelVersion]:
        """Versions ordered by name and version."""
        ...

    def set_alias(self, name: str, alias: str, version: int) -> None:
        """Point `alias` (for example `champion`) at an existing version."""
        ...

    def get_alias(self, name: str, alias: str) -> ModelVersion | None:
        """The version an alias points at, or None."""
        ...

    def aliases(self, name: str) -> dict[str, int]:
        """Every alias of a model and its version."""
        ...


class Backend(Protocol):
    @property
    def name(self) -> str:
        """`local` or `azureml`."""
        ...

    @property
    def jobs(self) -> Jobs: ...

    @property
    def registry(self) -> Registry: ...


def open_backend(settings: Settings) -> Backend:
    """Build the backend chosen by `MLOPS_BACKEND`."""
    match settings.backend:
        case "local":
            from infra.local import LocalBackend

            return LocalBackend(settings)
        case "azureml":
            msg = (
                "MLOPS_BACKEND=azureml: the Azure ML backend is not part of this release yet; "
                "unset MLOPS_BACKEND to use the local backend"
            )
            raise ConfigError(msg)
