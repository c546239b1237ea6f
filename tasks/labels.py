"""Tasks of the labels flow: read the ground truth that arrived, join it to what the model predicted (batch rows by row
id, online requests by request id), the gate's metric live beside the version's training metric, and
`mlops.model.degraded`.

Row ids: row `n` (1-based, input order) of a batch-score run's scored output is `<batch>:<n>`, where `<batch>` is the
run's folder under `<home>/batch/` (the `batch` of `mlops.batch.scored`); its `batch.json` names the model that scored
it. Request ids: the `x-ms-request-id` of a scoring request (the client's, or the one the endpoint returned), with
`row`, the row's index in the request's `data`, when the request had more than one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event
from pydantic import BaseModel, ConfigDict

from infra.backend import Backend, ModelVersion
from infra.errors import MissingResourceError
from infra.settings import Settings
from model.errors import DataValidationError
from model.live import degraded, live_metric
from model.package import SCORE_COLUMN
from tasks._events import chain_label
from tasks.batch import OUTPUT_FILE, RECORD_FILE

LABELS_EVENT = "mlops.labels.arrived"
DEGRADED_EVENT = "mlops.model.degraded"
ROW_ID, REQUEST_ID, ROW = "row_id", "request_id", "row"
_SHOWN = 5  # ids named in an error or the artifact


class LiveMetric(BaseModel):
    """One model version's live metric on the labelled rows it scored, beside its training metric."""

    model_config = ConfigDict(frozen=True)

    model: str
    metric: str
    direction: str
    live: float
    training: float | None
    rows: int
    margin: float
    degraded: bool


class LabelsSummary(BaseModel):
    """What a labels run read, matched and computed."""

    model_config = ConfigDict(frozen=True)

    path: str
    rows: int
    matched: int
    unmatched: list[str] = []
    metrics: list[LiveMetric] = []
    degraded_event: list[str] = []


@task(name="read-labels", cache_policy=NO_CACHE)
def read_labels(path: str, target: str) -> pd.DataFrame:
    """The labels CSV: the target column, and `row_id` or `request_id` (with `row`) on each line.

    Raises:
        DataValidationError: no such columns, a line with neither id, or a target that is not a finite number
            (naming the lines).
    """
    file = Path(path)
    if not file.is_file():
        raise MissingResourceError(f"labels file {path} does not exist")
    frame = pd.read_csv(file, dtype={ROW_ID: str, REQUEST_ID: str})
    if target not in frame.columns:
        raise DataValidationError(f"{path}: no {target!r} column (the model package's target, the ground truth)")
    ids = [c for c in (ROW_ID, REQUEST_ID) if c in frame.columns]
    if not ids:
        raise DataValidationError(
            f"{path}: no {ROW_ID!r} (a batch row: <batch>:<row>) or {REQUEST_ID!r} (an online request) column"
        )
    for column in (ROW_ID, REQUEST_ID):
        frame[column] = frame[column].fillna("").str.strip() if column in frame.columns else ""
    lines = frame.index + 2  # the file's line numbers (line 1 is the header)
    anonymous = list(lines[(frame[ROW_ID] == "") & (frame[REQUEST_ID] == "")])
    if anonymous:
        raise DataValidationError(f"{path}: line(s) {_first(anonymous)} have neither a {ROW_ID} nor a {REQUEST_ID}")
    truth = pd.to_numeric(frame[target], errors="coerce").astype(float)
    bad = list(lines[~np.isfinite(truth.to_numpy())])
    if bad:
        raise DataValidationError(f"{path}: column {target!r}, line(s) {_first(bad)}: not a finite number")
    frame["label"] = truth.astype(float)
    get_run_logger().info("%d labelled rows in %s", len(frame), path)
    return frame


def _first(items: list[Any]) -> str:
    shown = ", ".join(str(i) for i in items[:_SHOWN])
    return shown + (f" (and {len(items) - _SHOWN} more)" if len(items) > _SHOWN else "")


@task(name="join-predictions", cache_policy=NO_CACHE)
def join_predictions(backend: Backend, settings: Settings, labels: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Each labelled row with the model that scored it and its score (`model`, `label`, `score`), and the ids that
    match no scored row or collected request."""
    batch = labels[labels[ROW_ID] != ""]
    online = labels[(labels[ROW_ID] == "") & (labels[REQUEST_ID] != "")]
    joined: list[dict[str, Any]] = []
    unmatched: list[str] = []
    runs: dict[Path, tuple[str, pd.Series] | None] = {}  # each batch run's model and scores, read once
    for row_id, label in zip(batch[ROW_ID], batch["label"], strict=True):
        found = _batch_score(settings.home / "batch", row_id, runs)
        if found is None:
            unmatched.append(row_id)
        else:
            joined.append({"id": row_id, "model": found[0], "label": label, "score": found[1]})
    if len(online):
        requests = _collected(backend, settings)
        rows = online[ROW] if ROW in online.columns else pd.Series([None] * len(online), index=online.index)
        for request_id, row, label in zip(online[REQUEST_ID], rows, online["label"], strict=True):
            answer = _online_score(requests, request_id, row)
            if answer is None:
                unmatched.append(request_id if pd.isna(row) else f"{request_id}[{int(row)}]")
            else:
                joined.append({"id": request_id, "model": answer[0], "label": label, "score": answer[1]})
    get_run_logger().info("joined %d labelled rows to their predictions; %d unmatched", len(joined), len(unmatched))
    return pd.DataFrame(joined, columns=["id", "model", "label", "score"]), unmatched


def _batch_score(
    folder: Path, row_id: str, cache: dict[Path, tuple[str, pd.Series] | None]
) -> tuple[str, float] | None:
    batch, _, number = row_id.rpartition(":")
    if not batch or not number.isdigit() or "/" in batch or batch.startswith("."):
        raise DataValidationError(f"row_id {row_id!r} is not <batch>:<row number>")
    run = folder / batch
    if run not in cache:
        record, scored = run / RECORD_FILE, run / OUTPUT_FILE
        cache[run] = (
            (json.loads(record.read_text())["model"], pd.read_csv(scored, usecols=[SCORE_COLUMN])[SCORE_COLUMN])
            if record.is_file() and scored.is_file()
            else None
        )
    found = cache[run]
    index = int(number) - 1
    if found is None or not 0 <= index < len(found[1]):
        return None
    return found[0], float(found[1].iloc[index])


def _collected(backend: Backend, settings: Settings) -> dict[str, tuple[str, list[float]]]:
    """Every collected request the backend keeps, by request id: the model that answered and its results."""
    collected = backend.endpoints.collected(settings.endpoint_name, 0.0)
    found: dict[str, tuple[str, list[float]]] = {}
    for record in collected.requests if collected is not None else []:
        response = json.loads(record.response) if isinstance(record.response, str) else record.response
        if record.request_id and isinstance(response, dict) and isinstance(response.get("result"), list):
            found[record.request_id] = (record.model, [float(v) for v in response["result"]])
    return found


def _online_score(requests: dict[str, tuple[str, list[float]]], request_id: str, row: Any) -> tuple[str, float] | None:
    if request_id not in requests:
        return None
    model, results = requests[request_id]
    if pd.isna(row) and len(results) != 1:
        raise DataValidationError(f"request {request_id} scored {len(results)} rows: give each label's {ROW!r}")
    index = 0 if pd.isna(row) else int(row)
    return (model, results[index]) if 0 <= index < len(results) else None


@task(name="compute-live-metrics", cache_policy=NO_CACHE)
def compute_live_metrics(backend: Backend, settings: Settings, joined: pd.DataFrame) -> list[LiveMetric]:
    """For each model version among the joined rows: the gate's metric on its rows, its training metric (the
    version's tag), and whether it is degraded (worse by more than MLOPS_DEGRADED_MARGIN of the training metric)."""
    package = settings.package
    found = []
    for model_id, rows in joined.groupby("model", sort=True):
        name, _, version = str(model_id).rpartition(":")
        training = _training_metric(backend.registry.get(name, int(version)), package.metric)
        live = live_metric(package.metric, rows["label"], rows["score"])
        worse = training is not None and degraded(live, training, package.direction, settings.degraded_margin)
        found.append(
            LiveMetric(
                model=str(model_id),
                metric=package.metric,
                direction=package.direction,
                live=live,
                training=training,
                rows=len(rows),
                margin=settings.degraded_margin,
                degraded=worse,
            )
        )
        get_run_logger().info(
            "%s: live %s %.6g on %d rows, training %s%s",
            model_id,
            package.metric,
            live,
            len(rows),
            f"{training:.6g}" if training is not None else "unknown",
            " — DEGRADED" if worse else "",
        )
    return found


def _training_metric(version: ModelVersion, metric: str) -> float | None:
    """The version's metric at training: its `metrics` property (what the gate reads), else its tag."""
    recorded = json.loads(version.properties.get("metrics") or "{}")
    value = recorded.get(metric, version.tags.get(metric))
    return float(value) if value is not None else None


@task(name="publish-live-metrics", cache_policy=NO_CACHE)
def publish_live_metrics(summary: LabelsSummary) -> None:
    """A `live-metric` table artifact: each version's live metric beside its training metric."""
    rows: list[dict[str, object]] = [
        {
            "model": m.model,
            "metric": m.metric,
            "live": m.live,
            "training": m.training if m.training is not None else "unknown",
            "rows": m.rows,
            "degraded": "yes" if m.degraded else "no",
            "rule": f"{'above' if m.direction == 'minimize' else 'below'} training by more than {m.margin:g} of it",
        }
        for m in summary.metrics
    ]
    if summary.unmatched:
        rows.append({"model": "unmatched", "rows": len(summary.unmatched), "metric": _first(summary.unmatched)})
    verdict = ", ".join(
        f"{m.model} {m.metric} {m.live:.6g} ({'degraded' if m.degraded else 'ok'})" for m in summary.metrics
    )
    create_table_artifact(table=rows, key="live-metric", description=f"{summary.matched} labelled rows: {verdict}")


@task(name="announce-degraded", cache_policy=NO_CACHE)
def announce_degraded(metric: LiveMetric, labels: str) -> None:
    """Emit `mlops.model.degraded` (resource `mlops.model.<name>`)."""
    name, _, version = metric.model.rpartition(":")
    emit_event(
        event=DEGRADED_EVENT,
        resource={"prefect.resource.id": f"mlops.model.{name}", "prefect.resource.name": name, **chain_label()},
        payload={"name": name, "version": version, "labels": labels, **metric.model_dump()},
    )
    get_run_logger().warning(
        "%s degraded: live %s %.6g vs training %.6g; emitted %s",
        metric.model,
        metric.metric,
        metric.live,
        metric.training,
        DEGRADED_EVENT,
    )
