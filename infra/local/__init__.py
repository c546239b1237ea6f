"""The local backend: everything on this machine, no cloud. Files live under `MLOPS_HOME`."""

from __future__ import annotations

from infra.local.jobs import LocalJobs
from infra.local.registry import LocalRegistry
from infra.settings import Settings

__all__ = ["LocalBackend", "LocalJobs", "LocalRegistry"]


class LocalBackend:
    """Training jobs as subprocesses and a SQLite model registry, under `settings.home`."""

    name = "local"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        settings.home.mkdir(parents=True, exist_ok=True)
        self.jobs = LocalJobs(settings.home / "jobs")
        self.registry = LocalRegistry(settings.registry_path)
