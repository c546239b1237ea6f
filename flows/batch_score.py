"""The batch-score flow: pick the model → fetch and cut the input → score mini-batches in parallel → write once,
reconcile every row → copy to the dated output."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner

from flows._flow import flow
from infra.factory import open_backend
from infra.settings import load_settings
from infra.telemetry import annotate
from tasks.batch import (
    OUTPUT_FILE,
    BatchSummary,
    announce_batch_scored,
    assemble_output,
    batch_passes,
    check_batch,
    fetch_inputs,
    plan_mini_batches,
    publish_batch_summary,
    publish_output,
    score_all,
    select_batch_model,
    summarize_batch,
)

MAX_PARALLELISM = 64


@flow(name="batch-score", task_runner=ThreadPoolTaskRunner(max_workers=MAX_PARALLELISM))  # type: ignore[arg-type]
def batch_score(
    input: str | None = None,
    output: str | None = None,
    model_name: str | None = None,
    model_version: int | None = None,
    model_tag_name: str | None = None,
    model_tag_value: str | None = None,
    mini_batch_size: int = 250_000,
    parallelism: int = 2,
    error_threshold: int = 0,
) -> BatchSummary:
    """Score a CSV file or folder, local or `blob://container/path` (default: the diabetes features), with a model
    version (default: the one serving the endpoint, else the champion). More failed mini-batches than
    `error_threshold` (-1: no limit) fail the run; rows in must equal rows out plus rows failed."""
    if not 1 <= parallelism <= MAX_PARALLELISM or mini_batch_size < 1:
        raise ValueError(
            f"parallelism must be 1..{MAX_PARALLELISM} and mini_batch_size at least 1, got {parallelism} and {mini_batch_size}"
        )
    started = time.monotonic()
    annotate({"mlops.flow": "batch-score"})
    settings = load_settings()
    backend = open_backend(settings)
    work = settings.home / "batch" / f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{(flow_run.get_id() or 'local')[:8]}"
    # Model and input
    model = select_batch_model(
        backend, settings, model_name or settings.model_name, model_version, model_tag_name, model_tag_value
    )
    files = fetch_inputs(backend, settings, input, work)
    batches = plan_mini_batches(backend, files, mini_batch_size)
    # Score mini-batches in parallel: here, or in one batch job of the platform (Azure ML), as the backend does it
    scored = score_all(backend, model, batches, work, parallelism, error_threshold)
    # Write once, and account for every row
    result = assemble_output(backend, scored[0], batches[0].columns, work / OUTPUT_FILE)
    summary = summarize_batch(backend, model, files, batches, scored, time.monotonic() - started)
    if not batch_passes(summary, error_threshold):
        publish_batch_summary(summary)
    check_batch(summary, error_threshold)
    # Copy to the output
    summary = summary.model_copy(
        update={
            "output": publish_output(backend, settings, result, output or settings.batch_output),
            "scored": str(result),
        }
    )
    publish_batch_summary(summary)
    announce_batch_scored(summary, model)
    return summary
