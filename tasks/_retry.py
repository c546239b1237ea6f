"""The retry rule shared by tasks that call the backend: retry transient failures only."""

from __future__ import annotations

from typing import Any

from infra.errors import TransientBackendError


def retry_if_transient(task: Any, task_run: Any, state: Any) -> bool:  # noqa: ARG001 - Prefect's hook signature
    """Prefect `retry_condition_fn`: True when the failure is a `TransientBackendError`."""
    try:
        state.result()
    except TransientBackendError:
        return True
    except Exception:  # noqa: BLE001 - every other failure is final
        return False
    return False
