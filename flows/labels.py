"""The labels flow: ground truth that arrived (`mlops.labels.arrived`) → joined to what the model predicted (batch rows
by row id, online requests by request id) → the gate's metric live, beside the training metric (`live-metric`) →
`mlops.model.degraded` when worse by more than MLOPS_DEGRADED_MARGIN → the retraining policy."""

from __future__ import annotations

from typing import cast

import pandas as pd

from flows._flow import flow
from infra.factory import open_backend
from infra.settings import load_settings
from infra.telemetry import annotate
from tasks.evaluate import CHAMPION_ALIAS, serving_version
from tasks.labels import (
    LabelsSummary,
    announce_degraded,
    compute_live_metrics,
    join_predictions,
    publish_live_metrics,
    read_labels,
)
from tasks.retrain import Ledger, Signal, decide_retrain


@flow(name="labels")
def labels(path: str | None = None) -> LabelsSummary:
    """Compute the live metric of each model version that scored the labelled rows of `path` (a CSV with the
    package's target and `row_id` or `request_id`), publish it beside the training metric, and emit
    `mlops.model.degraded` for a degraded one. A degraded serving version (else champion) is a retraining signal."""
    if not path:
        raise ValueError("labels: give `path`, the labels CSV (the payload of mlops.labels.arrived)")
    annotate({"mlops.flow": "labels"})
    settings = load_settings()
    backend = open_backend(settings)
    frame = cast(pd.DataFrame, read_labels(path, settings.package.target))  # pandas is untyped: mypy sees Any
    joined, unmatched = join_predictions(backend, settings, frame)
    if joined.empty:
        raise ValueError(
            f"{path}: none of its {len(frame)} labelled rows matches a scored batch row or a collected request "
            f"(first: {', '.join(unmatched[:5])})"
        )
    metrics = compute_live_metrics(backend, settings, joined)
    summary = LabelsSummary(path=path, rows=len(frame), matched=len(joined), unmatched=unmatched, metrics=metrics)
    publish_live_metrics(summary)
    Ledger(settings.home).note("live", {"labels": path, "metrics": [m.model_dump() for m in metrics]})
    current = serving_version(backend, settings.model_name, settings.endpoint_name) or backend.registry.get_alias(
        settings.model_name, CHAMPION_ALIAS
    )
    for metric in metrics:
        if not metric.degraded:
            continue
        announce_degraded(metric, path)
        summary = summary.model_copy(update={"degraded_event": [*summary.degraded_event, metric.model]})
        if current is not None and metric.model == current.id:
            reason = (
                f"live {metric.metric} {metric.live:.6g} on {metric.rows} labelled rows vs {metric.training:.6g} at "
                f"training (margin {metric.margin:g})"
            )
            decide_retrain(settings, Signal(model=metric.model, cause="degraded", reason=reason))
    return summary
