"""Tasks of provisioning: the workspace, the blob containers and the prefect-azure blocks. Each says what it changed."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect_azure import AzureBlobStorageCredentials
from prefect_azure.blob_storage import AzureBlobStorageContainer

from infra.backend import Backend
from infra.settings import Settings
from tasks._retry import retry_if_transient

CREDENTIALS_BLOCK = "mlops-blob-credentials"
CONTAINER_BLOCKS = {"input": "mlops-scoring-input", "output": "mlops-scoring-output"}


@task(name="ensure-workspace", cache_policy=NO_CACHE)
def ensure_workspace(backend: Backend) -> list[str]:
    """The workspace folders and the model registry."""
    changes = backend.workspace.ensure()
    get_run_logger().info("workspace: %s", "; ".join(changes) or "nothing to do")
    return changes


@task(
    name="ensure-containers",
    retries=2,
    retry_delay_seconds=2,
    retry_condition_fn=retry_if_transient,
    cache_policy=NO_CACHE,
)
def ensure_containers(backend: Backend, settings: Settings) -> list[str]:
    """The scoring input and output blob containers."""
    names = [settings.scoring_input_container, settings.scoring_output_container]
    changes = [f"created blob container {name}" for name in names if backend.storage.ensure_container(name)]
    get_run_logger().info("containers %s: %s", ", ".join(names), "; ".join(changes) or "nothing to do")
    return changes


@task(name="register-blob-blocks", cache_policy=NO_CACHE)
def register_blob_blocks(backend: Backend, settings: Settings) -> list[str]:
    """prefect-azure blocks for the scoring containers (and the credentials, unless a saved block is named)."""
    changes: list[str] = []
    credentials = backend.storage.credentials()
    if not settings.blob_credentials_block:
        changes += _save_if_changed(CREDENTIALS_BLOCK, credentials, AzureBlobStorageCredentials)
    for role, container in (("input", settings.scoring_input_container), ("output", settings.scoring_output_container)):
        block = AzureBlobStorageContainer(container_name=container, credentials=credentials)
        changes += _save_if_changed(CONTAINER_BLOCKS[role], block, AzureBlobStorageContainer)
    get_run_logger().info("blocks: %s", "; ".join(changes) or "nothing to do")
    return changes


def _save_if_changed(name: str, block: Any, kind: Any) -> list[str]:
    try:
        existing = kind.load(name, _sync=True)  # sync even when a caller runs an event loop
    except ValueError:  # no block of that name
        existing = None
    if existing is not None and _same(existing, block):
        return []
    block.save(name, overwrite=True, _sync=True)
    return [f"{'updated' if existing else 'saved'} block {name}"]


def _same(saved: Any, wanted: Any) -> bool:
    """Whether a saved blob block already holds what we would save (secrets compared, never shown)."""
    if isinstance(wanted, AzureBlobStorageContainer):
        return (
            saved.container_name == wanted.container_name
            and saved.base_folder == wanted.base_folder
            and _same(saved.credentials, wanted.credentials)
        )

    def secret(credentials: Any) -> str | None:
        value = credentials.connection_string
        return None if value is None else str(value.get_secret_value())

    return secret(saved) == secret(wanted) and saved.account_url == wanted.account_url


@task(name="publish-changes", cache_policy=NO_CACHE)
def publish_changes(key: str, changes: list[str]) -> None:
    """A table artifact of what a provision or cleanup run changed."""
    rows = [{"change": change} for change in changes] or [{"change": "nothing to do: everything was already in place"}]
    create_table_artifact(table=rows, key=key, description=f"{len(changes)} change(s)")
