"""Tasks of the janitor: idle endpoint deployments, old model versions, the endpoint, the whole workspace."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from infra.backend import Backend


@task(name="remove-idle-deployments", cache_policy=NO_CACHE)
def remove_idle_deployments(backend: Backend, endpoint: str) -> list[str]:
    """Remove the endpoint's deployments that take no traffic (left by an interrupted rollout)."""
    state = backend.endpoints.get(endpoint)
    if state is None or not state.running:
        return []
    idle = [name for name, info in state.deployments.items() if info.traffic == 0]
    for name in idle:
        backend.endpoints.remove_deployment(endpoint, name)
    return [f"removed deployment {name} (0 % traffic) from {endpoint}" for name in idle]


@task(name="archive-old-versions", cache_policy=NO_CACHE)
def archive_old_versions(backend: Backend, model_name: str, endpoint: str, keep: int) -> list[str]:
    """Archive all but the newest `keep` versions; never one with an alias (`champion`, `serving`) or a deployment."""
    protected = set(backend.registry.aliases(model_name).values())  # champion, serving
    state = backend.endpoints.get(endpoint)
    for info in state.deployments.values() if state else []:
        name, _, version = info.model.rpartition(":")
        if name == model_name:
            protected.add(int(version))
    versions = [m.version for m in backend.registry.list(model_name)]
    old = [v for v in versions[: max(0, len(versions) - keep)] if v not in protected]
    changes = [f"archived {model_name}:{v}" for v in old if backend.registry.archive(model_name, v)]
    get_run_logger().info(
        "archived %d version(s); never archived (aliases or deployed): %s", len(changes), sorted(protected)
    )
    return changes


@task(name="scale-down-idle-compute", cache_policy=NO_CACHE)
def scale_down_idle_compute(backend: Backend) -> list[str]:
    """Idle compute back to 0 nodes (Azure ML clusters kept warm); nothing on the local backend."""
    return backend.workspace.tidy()


@task(name="stop-endpoint", cache_policy=NO_CACHE)
def stop_endpoint(backend: Backend, endpoint: str) -> list[str]:
    """Stop the local endpoint's server (its deployments and traffic are kept for the next start)."""
    return [f"stopped endpoint {endpoint}"] if backend.endpoints.stop(endpoint) else []


@task(name="delete-workspace", cache_policy=NO_CACHE)
def delete_workspace(backend: Backend) -> list[str]:
    """Delete what provision created: the local workspace (registry, files, bundles, outputs), or on Azure ML the
    endpoints, clusters and the workspace with its storage and key vault."""
    return backend.workspace.delete()
