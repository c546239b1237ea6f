"""The local backend as one object: everything on this machine, no cloud, files under `MLOPS_HOME`."""

from __future__ import annotations

from infra.backend import ModelVersion
from infra.common.bundles import BundleBuilder
from infra.endpoint_server import EndpointConfig, LocalEndpoints
from infra.local.batch import SCORED_FOLDER, LocalBatch
from infra.local.jobs import workspace_jobs
from infra.local.registry import LocalRegistry
from infra.local.workspace import LocalWorkspace
from infra.settings import Settings
from infra.storage import Storage


class LocalMonitoring:
    """Here the `monitor` flow is the drift monitor itself: there is no platform monitor to keep in place."""

    def ensure(self, model: ModelVersion, thresholds: dict[str, float]) -> str | None:  # noqa: ARG002
        return None


class LocalBackend:
    """Training jobs as subprocesses, a SQLite model registry, bundles, endpoint processes and batch scoring
    in threads, under `settings.home`; storage is a folder, or Azure Blob Storage when configured."""

    name = "local"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.jobs = workspace_jobs(settings)
        self.registry = LocalRegistry(settings.registry_path)
        self.bundles = BundleBuilder(settings.home / "packages", settings.package)
        self.endpoints = LocalEndpoints(settings.home / "endpoints", EndpointConfig.from_settings(settings))
        self.batch = LocalBatch(
            settings.package, scored=settings.home / "batch" / SCORED_FOLDER if settings.batch_reuse_scored else None
        )
        self.workspace = LocalWorkspace(settings)
        self.monitoring = LocalMonitoring()
        self.storage = Storage(settings)
