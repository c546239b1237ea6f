"""The provision flow: a ready workspace (folders and registry), and blob containers and blocks when configured.

Idempotent: a second run changes nothing and says so.
"""

from __future__ import annotations

from flows._flow import flow
from infra.factory import open_backend
from infra.settings import load_settings
from infra.telemetry import annotate
from tasks.provision import ensure_containers, ensure_workspace, publish_changes, register_blob_blocks


@flow(name="provision")
def provision() -> list[str]:
    """Create what the pipeline needs where it runs; return the changes (empty when all was in place)."""
    annotate({"mlops.flow": "provision"})
    settings = load_settings()
    backend = open_backend(settings)
    # Workspace and registry
    changes = ensure_workspace(backend)
    # Blob storage, when configured
    if settings.blob_configured:
        changes += ensure_containers(backend, settings)
        changes += register_blob_blocks(backend, settings)
    publish_changes("provision", changes)
    return changes
