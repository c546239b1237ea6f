"""Reading back what flows left on the Prefect server: artifacts, task runs and events."""

from __future__ import annotations

import time
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.events.filters import EventFilter, EventNameFilter


def artifacts_of(flow_run_id: UUID) -> dict[str, Any]:
    """The flow run's artifacts by key."""
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {artifact.key: artifact for artifact in found if artifact.key}


def logs_of(flow_run_id: UUID, timeout: float = 30.0) -> list[str]:
    """Every log message of a flow run and its task runs (waiting for the flow's last line to arrive)."""
    deadline = time.monotonic() + timeout
    while True:
        with get_client(sync_client=True) as client:
            logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])), limit=200)
        messages = [log.message for log in logs]
        if any(m.startswith("Finished in state") for m in messages) or time.monotonic() > deadline:
            return messages
        time.sleep(0.5)


def task_run_states(flow_run_id: UUID) -> dict[str, str]:
    """Each task run's final state name, by task name (the run name without its suffix)."""
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return {run.name.rsplit("-", 1)[0]: run.state.name for run in runs if run.state}


def task_runs_of(flow_run_id: UUID, prefix: str = "", at_least: int = 0, timeout: float = 30.0) -> dict[str, str]:
    """Each task run's state name, by its full run name (`score-mini-batch-3`). Prefect 3's server records task runs
    from their state events, after the flow run may already have ended: with `at_least`, wait (up to `timeout`) until
    that many runs whose names start with `prefix` are in a final state."""
    deadline = time.monotonic() + timeout
    while True:
        with get_client(sync_client=True) as client:
            runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
        found = {run.name: run.state.name for run in runs if run.state}
        final = [run for run in runs if run.name.startswith(prefix) and run.state and run.state.is_final()]
        if len(final) >= at_least or time.monotonic() > deadline:
            return found
        time.sleep(0.25)


def wait_for_events(
    event: str, count: int, payload: dict[str, Any], flow_run_id: UUID, timeout: float = 30.0
) -> list[Any]:
    """Poll the server until `count` events named `event`, emitted from inside flow run `flow_run_id`
    (the server is shared by the whole session) with `payload` in their payload, are stored."""
    deadline = time.monotonic() + timeout
    while True:
        with get_client(sync_client=True) as client:
            page = client.read_events(filter=EventFilter(event=EventNameFilter(name=[event])), limit=50)
        events = [
            e
            for e in page.events
            if all(e.payload.get(k) == v for k, v in payload.items())
            and f"prefect.flow-run.{flow_run_id}" in {related.id for related in e.related}
        ]
        if len(events) >= count or time.monotonic() > deadline:
            return events
        time.sleep(0.5)
