"""The cleanup flow (a weekly janitor): idle deployments removed, old versions archived, idle compute scaled to 0;
on request, the endpoint stopped and everything provision created deleted. A second run finds nothing to do."""

from __future__ import annotations

from flows._flow import flow
from infra.factory import open_backend
from infra.settings import load_settings
from infra.telemetry import annotate
from tasks.cleanup import (
    archive_old_versions,
    delete_workspace,
    remove_idle_deployments,
    scale_down_idle_compute,
    stop_endpoint,
)
from tasks.provision import publish_changes


@flow(name="cleanup")
def cleanup(keep_versions: int = 5, stop_endpoint_server: bool = False, delete_everything: bool = False) -> list[str]:
    """Remove endpoint deployments at 0 % traffic and archive versions beyond the newest `keep_versions`
    (never the serving or champion version), and scale idle compute to 0. `stop_endpoint_server` stops the
    local endpoint; `delete_everything` (the CLI's `--teardown`) also deletes what provision created."""
    if keep_versions < 1:
        raise ValueError(f"keep_versions must be at least 1, got {keep_versions}")
    annotate({"mlops.flow": "cleanup"})
    settings = load_settings()
    backend = open_backend(settings)
    # Idle deployments and old versions
    changes = remove_idle_deployments(backend, settings.endpoint_name)
    changes += archive_old_versions(backend, settings.model_name, settings.endpoint_name, keep_versions)
    changes += scale_down_idle_compute(backend)
    # On request: the endpoint, then everything
    if stop_endpoint_server or delete_everything:
        changes += stop_endpoint(backend, settings.endpoint_name)
    if delete_everything:
        changes += delete_workspace(backend)
    else:
        publish_changes("cleanup", changes)
    return changes
