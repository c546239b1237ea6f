"""The local workspace: the folders and registry of `MLOPS_HOME`, created by provision and removed by cleanup."""

from __future__ import annotations

import shutil

from infra.errors import MLOpsError
from infra.local.registry import LocalRegistry
from infra.services.processes import alive
from infra.settings import Settings

FOLDERS = ("data", "jobs", "packages", "endpoints", "batch", "batch-output", "artifacts")


class LocalWorkspace:
    """Creates and deletes `settings.home`; every call says what it changed (nothing, the second time)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def ensure(self) -> list[str]:
        home = self.settings.home
        changes = [] if home.is_dir() else [f"created workspace {home}"]
        for name in FOLDERS:
            folder = home / name
            if not folder.is_dir():
                folder.mkdir(parents=True)
                changes.append(f"created {folder}")
        if not self.settings.registry_path.is_file():
            changes.append(f"created registry {self.settings.registry_path}")
        LocalRegistry(self.settings.registry_path).create()
        return changes

    def reserve_names(self) -> list[str]:
        """Local endpoint names are this machine's alone: nothing to reserve."""
        return []

    def tidy(self) -> list[str]:
        """Nothing to release locally: the endpoint is stopped on request (`cleanup --stop-endpoint`)."""
        return []

    def delete(self) -> list[str]:
        """Delete the whole workspace; refused while `mlops up`'s server runs from it."""
        home = self.settings.home
        pid_file = self.settings.platform_dir / "server.pid"
        if pid_file.is_file() and pid_file.read_text().strip().isdigit() and alive(int(pid_file.read_text())):
            raise MLOpsError(
                f"the local platform runs from {home}: stop it with `mlops down` before deleting the workspace"
            )
        if not home.exists():
            return []
        shutil.rmtree(home)
        return [f"deleted workspace {home}"]
