"""Tasks of batch scoring: pick the model, fetch and cut the input, score mini-batches in parallel, reconcile, publish."""

from __future__ import annotations

import concurrent.futures
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast
from uuid import UUID

from prefect import get_run_logger, task
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event
from prefect.futures import PrefectConcurrentFuture
from pydantic import BaseModel, ConfigDict

from infra.backend import Backend, MiniBatch, MiniBatchResult, ModelVersion, Scored
from infra.common.train_inputs import write_sample_data
from infra.errors import MissingResourceError, MLOpsError, TransientBackendError
from infra.settings import Settings
from infra.storage import BlobLocation, parse_location
from tasks._events import chain_label
from tasks._retry import retry_if_transient
from tasks.evaluate import CHAMPION_ALIAS, serving_version

OUTPUT_FILE = "parallel_run_step.txt"  # MLOpsPython's ParallelRunStep output name
RECORD_FILE = "batch.json"  # beside it: the run's summary, with the model that scored (labels join on it)
SCORED_EVENT = "mlops.batch.scored"


class BatchScoringError(MLOpsError):
    """Batch scoring failed: more mini-batches failed than the error threshold allows, or rows went missing."""


class FailedMiniBatch(BaseModel):
    model_config = ConfigDict(frozen=True)

    index: int
    file: str
    first_row: int
    rows: int
    error: str


class BatchSummary(BaseModel):
    """What a batch-score run read, wrote and lost, and where the output went."""

    model_config = ConfigDict(frozen=True)

    model: str
    inputs: list[str]
    mini_batches: int
    rows_in: int
    rows_out: int
    rows_failed: int
    failures: list[FailedMiniBatch]
    seconds: float
    unaccounted: list[int] = []
    rows_reused: int = 0  # rows whose scores came from an earlier run's part (same bytes, same model)
    output: str | None = None
    scored: str | None = None  # the scored rows on this machine (the run's folder), which the drift monitor reads

    @property
    def rows_per_second(self) -> float:
        return self.rows_in / self.seconds if self.seconds > 0 else 0.0


@task(name="select-batch-model", cache_policy=NO_CACHE)
def select_batch_model(
    backend: Backend, settings: Settings, name: str, version: int | None, tag_name: str | None, tag_value: str | None
) -> ModelVersion:
    """A version by number, or the latest with a tag; by default the version serving the endpoint, else the champion."""
    if (tag_name is None) != (tag_value is None):
        given = f"model_tag_name={tag_name!r}" if tag_name is not None else f"model_tag_value={tag_value!r}"
        raise ValueError(f"model_tag_name and model_tag_value go together; only {given} was given")
    if version is not None:
        chosen = backend.registry.get(name, version)
    elif tag_name is not None:
        tagged = [m for m in backend.registry.list(name) if m.tags.get(tag_name) == tag_value]
        if not tagged:
            raise MissingResourceError(f"no version of model {name!r} has tag {tag_name}={tag_value!r}")
        chosen = tagged[-1]
    else:
        found = serving_version(backend, name, settings.endpoint_name) or backend.registry.get_alias(
            name, CHAMPION_ALIAS
        )
        if found is None:
            raise MissingResourceError(
                f"model {name!r} has no serving version and no champion: run `mlops train` first"
            )
        chosen = found
    get_run_logger().info("scoring with %s", chosen.id)
    return chosen


@task(
    name="fetch-inputs", retries=2, retry_delay_seconds=2, retry_condition_fn=retry_if_transient, cache_policy=NO_CACHE
)
def fetch_inputs(backend: Backend, settings: Settings, source: str | None, work: Path) -> list[Path]:
    """The input CSVs as local files. Without a source: the configured scoring input blob when blob storage is
    set up (seeded with the sample if absent), else the package's sample without its target (MLOpsPython's fallback)."""
    sample = settings.default_scoring_file
    if source is None and not sample.is_file():
        write_sample_data(settings.package, sample, for_scoring=True)
    if source is None and not settings.blob_configured:
        return [sample]
    location = (
        parse_location(source)
        if source
        else BlobLocation(settings.scoring_input_container, settings.scoring_input_filename)
    )
    try:
        files = backend.storage.fetch(location, work / "input")
    except MissingResourceError:
        if source is not None:
            raise
        where = backend.storage.publish(
            sample, BlobLocation(settings.scoring_input_container, ""), settings.scoring_input_filename
        )
        get_run_logger().info("no scoring input yet: uploaded the diabetes sample to %s", where)
        files = backend.storage.fetch(location, work / "input")
    get_run_logger().info("input: %d file(s) from %s", len(files), location)
    return files


@task(name="plan-mini-batches", cache_policy=NO_CACHE)
def plan_mini_batches(backend: Backend, files: list[Path], rows_per_batch: int) -> list[MiniBatch]:
    """Check the inputs' headers and cut them into mini-batches of about `rows_per_batch` rows."""
    batches = backend.batch.plan(files, rows_per_batch)
    get_run_logger().info("%d mini-batch(es) of about %d rows", len(batches), rows_per_batch)
    return batches


@task(
    name="score-mini-batch",
    task_run_name="score-mini-batch-{batch.index}",
    retries=2,
    retry_delay_seconds=1,
    retry_condition_fn=retry_if_transient,
    cache_policy=NO_CACHE,
)
def score_mini_batch(score: Callable[[MiniBatch], MiniBatchResult], batch: MiniBatch) -> MiniBatchResult:
    """Score one mini-batch into a part file (with the backend's `score`). Bad data fails it, naming the problem;
    I/O errors are retried."""
    try:
        return score(batch)
    except OSError as exc:
        raise TransientBackendError(f"{batch.describe()}: {exc}") from exc


@task(
    name="score-with-batch-job",
    retries=2,
    retry_delay_seconds=5,
    retry_condition_fn=retry_if_transient,
    cache_policy=NO_CACHE,
)
def score_with_batch_job(job: Callable[[], Scored], batches: list[MiniBatch]) -> Scored:  # noqa: ARG001
    """Score every mini-batch in one batch job of the platform (a retry re-attaches to the same job); `batches`
    are the mini-batches the job scores, as the task run's input."""
    results, failures = job()
    get_run_logger().info("batch job: %d mini-batch(es) scored, %d failed", len(results), len(failures))
    return results, failures


class FlowRunner:
    """The batch-score flow's `BatchRunner`: each mini-batch a `score-mini-batch` task run, `parallelism` at a time,
    or the platform's job a `score-with-batch-job` task run; either advances the `batch-progress` artifact."""

    def each(self, score: Callable[[MiniBatch], MiniBatchResult], batches: list[MiniBatch], parallelism: int) -> Scored:
        progress = _progress(batches)
        waiting = deque(batches)
        running: dict[concurrent.futures.Future[Any], tuple[MiniBatch, PrefectConcurrentFuture[MiniBatchResult]]] = {}
        results: list[MiniBatchResult] = []
        failures: dict[int, str] = {}
        while waiting or running:
            while waiting and len(running) < parallelism:
                batch = waiting.popleft()
                future = cast(PrefectConcurrentFuture[MiniBatchResult], score_mini_batch.submit(score, batch))
                running[future.wrapped_future] = (batch, future)
            done, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
            for finished in done:
                batch, future = running.pop(finished)
                outcome: Any = future.result(raise_on_failure=False)
                if isinstance(outcome, MiniBatchResult):
                    results.append(outcome)
                else:
                    failures[batch.index] = str(outcome)
            update_progress_artifact(progress, 100.0 * (len(results) + len(failures)) / len(batches))
        return results, failures

    def whole(self, job: Callable[[], Scored], batches: list[MiniBatch]) -> Scored:
        progress = _progress(batches)
        scored = score_with_batch_job(job, batches)
        update_progress_artifact(progress, 100.0)
        return scored


def _progress(batches: list[MiniBatch]) -> UUID:
    return cast(UUID, create_progress_artifact(0.0, key="batch-progress", description=f"{len(batches)} mini-batches"))


def score_all(
    backend: Backend, model: ModelVersion, batches: list[MiniBatch], work: Path, parallelism: int, error_threshold: int
) -> Scored:
    """Score every mini-batch as the backend does it (`Batch.score_all`), run by the flow (`FlowRunner`).

    Returns the results and, for each failed mini-batch, its error.
    """
    return backend.batch.score_all(
        model, batches, work, parallelism=parallelism, error_threshold=error_threshold, runner=FlowRunner()
    )


@task(name="assemble-output", cache_policy=NO_CACHE)
def assemble_output(backend: Backend, results: list[MiniBatchResult], columns: list[str], out: Path) -> Path:
    """Write the scored rows once, in input order, as one CSV (features + `score`)."""
    size = backend.batch.assemble(results, columns, out)
    get_run_logger().info("wrote %s (%d rows, %.1f MB)", out, sum(r.rows_out for r in results), size / 1e6)
    return out


@task(name="summarize-batch", cache_policy=NO_CACHE)
def summarize_batch(
    backend: Backend,
    model: ModelVersion,
    files: list[Path],
    batches: list[MiniBatch],
    scored: Scored,
    seconds: float,
) -> BatchSummary:
    """Account for every input row: rows in (lines of every mini-batch), rows out (lines written), rows failed."""
    results, errors = scored
    rows = {r.index: r.rows_in for r in results} | {i: backend.batch.count_rows(batches[i]) for i in errors}
    failures = [_describe_failure(batches, rows, i, error) for i, error in sorted(errors.items())]
    unaccounted = [b.index for b in batches if b.index not in rows]
    return BatchSummary(
        model=model.id,
        inputs=[str(f) for f in files],
        mini_batches=len(batches),
        rows_in=sum(rows.values()) + sum(backend.batch.count_rows(batches[i]) for i in unaccounted),
        rows_out=sum(r.rows_out for r in results),
        rows_failed=sum(f.rows for f in failures),
        failures=failures,
        seconds=seconds,
        unaccounted=unaccounted,
        rows_reused=sum(r.rows_out for r in results if r.reused),
    )


def _describe_failure(batches: list[MiniBatch], rows: dict[int, int], index: int, error: str) -> FailedMiniBatch:
    batch = batches[index]
    before = sum(rows.get(b.index, 0) for b in batches[:index] if b.file == batch.file)
    return FailedMiniBatch(index=index, file=str(batch.file), first_row=before + 1, rows=rows[index], error=error)


def batch_passes(summary: BatchSummary, threshold: int) -> bool:
    """Every row accounted for, and no more failed mini-batches than `threshold` (-1: no limit)."""
    reconciled = not summary.unaccounted and summary.rows_out + summary.rows_failed == summary.rows_in
    return reconciled and (threshold < 0 or len(summary.failures) <= threshold)


@task(name="check-batch", cache_policy=NO_CACHE)
def check_batch(summary: BatchSummary, threshold: int) -> None:
    """Fail when rows do not reconcile, or when more mini-batches failed than `threshold` allows (-1: no limit)."""
    if summary.unaccounted or summary.rows_out + summary.rows_failed != summary.rows_in:
        msg = (
            f"rows do not reconcile: {summary.rows_in} in, {summary.rows_out} out, {summary.rows_failed} failed; "
            f"mini-batches without an outcome: {summary.unaccounted or 'none'}"
        )
        raise BatchScoringError(msg)
    if threshold < 0 or len(summary.failures) <= threshold:
        return
    named = "; ".join(
        f"mini-batch {f.index} ({f.file}, data rows {f.first_row}-{f.first_row + f.rows - 1}): {f.error}"
        for f in summary.failures
    )
    msg = f"{len(summary.failures)} mini-batch(es) failed, over the error threshold of {threshold}: {named}"
    raise BatchScoringError(msg)


def output_name(settings: Settings, now: datetime | None = None) -> str:
    """MLOpsPython's output name: `<YYYY-MM-DD>/<stem>_<HH_MM_SS_mmm>.<ext>` (UTC)."""
    now = now or datetime.now(UTC)
    stem, _, rest = settings.scoring_output_filename.partition(".")
    extension = rest.split(".")[0]
    clock = now.time().isoformat(timespec="milliseconds").replace(":", "_").replace(".", "_")
    return f"{now.date().isoformat()}/{stem}_{clock}" + (f".{extension}" if extension else "")


@task(
    name="publish-output",
    retries=2,
    retry_delay_seconds=2,
    retry_condition_fn=retry_if_transient,
    cache_policy=NO_CACHE,
)
def publish_output(backend: Backend, settings: Settings, scored: Path, destination: str | None) -> str:
    """Copy the scored CSV to the output folder or blob container, under a dated name."""
    location: Path | BlobLocation
    if destination:
        location = parse_location(destination)
    elif settings.blob_configured:
        location = BlobLocation(settings.scoring_output_container, "")
    else:
        location = settings.home / "batch-output"
    where = backend.storage.publish(scored, location, output_name(settings))
    get_run_logger().info("copied the scores to %s", where)
    return where


@task(name="announce-batch-scored", cache_policy=NO_CACHE)
def announce_batch_scored(summary: BatchSummary, model: ModelVersion) -> None:
    """Emit `mlops.batch.scored` (the drift monitor's deployment follows it)."""
    emit_event(
        event=SCORED_EVENT,
        resource={
            "prefect.resource.id": f"mlops.batch.{model.name}",
            "prefect.resource.name": model.name,
            **chain_label(),
        },
        related=[{"prefect.resource.id": f"mlops.model.{model.name}", "prefect.resource.role": "model"}],
        payload={
            "name": model.name,
            "version": model.version,
            "scored": summary.scored,
            "batch": batch_id(summary.scored) if summary.scored else None,
            "output": summary.output,
            "inputs": summary.inputs,
            "rows": summary.rows_out,
        },
    )


def batch_id(scored: str | Path) -> str:
    """A batch-score run's id: the name of its folder under `<home>/batch/`. Row `n` (1-based, input order) of its
    scored output has the row id `<batch id>:<n>`."""
    return Path(scored).parent.name


@task(name="publish-batch-summary", cache_policy=NO_CACHE)
def publish_batch_summary(summary: BatchSummary) -> None:
    """A table artifact: rows in, out and failed, throughput, model, output, and each failed mini-batch; and, once
    the rows are scored, `batch.json` beside them (the model that scored each row, for the labels flow)."""
    if summary.scored:
        Path(summary.scored).with_name(RECORD_FILE).write_text(summary.model_dump_json(indent=2) + "\n")
    rows: list[dict[str, object]] = [
        {"item": "model", "value": summary.model},
        {"item": "input", "value": ", ".join(summary.inputs)},
        {"item": "mini-batches", "value": summary.mini_batches},
        {"item": "rows in", "value": summary.rows_in},
        {"item": "rows out", "value": summary.rows_out},
        {"item": "rows failed", "value": summary.rows_failed},
        {"item": "seconds", "value": round(summary.seconds, 3)},
        {"item": "rows per second", "value": round(summary.rows_per_second)},
        {"item": "output", "value": summary.output or "not published"},
    ]
    rows += [
        {
            "item": f"failed mini-batch {f.index}",
            "value": f"{f.file}, data rows {f.first_row}-{f.first_row + f.rows - 1}: {f.error}",
        }
        for f in summary.failures
    ]
    create_table_artifact(
        table=rows,
        key="batch-summary",
        description=f"{summary.rows_out}/{summary.rows_in} rows scored with {summary.model}",
    )
