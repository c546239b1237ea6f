"""The monitor flow: the serving version's training data → recent scoring inputs (batch and online) → PSI and KS
per feature → artifacts and `drift.json` → `mlops.data.drifted` when a threshold is crossed → the retraining policy
(`mlops.retrain.requested`, `mlops.retrain.suggested` or nothing, once per cooldown)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from prefect import get_run_logger
from prefect.runtime import flow_run

from flows._flow import flow
from infra.factory import open_backend
from infra.settings import load_settings
from infra.telemetry import annotate
from tasks.batch import select_batch_model
from tasks.monitor import (
    DriftSummary,
    announce_drift,
    compute_drift,
    ensure_platform_monitor,
    gather_scoring_data,
    labelled_input,
    latest_scored,
    load_baseline,
    publish_drift,
    thresholds_of,
    write_drift_json,
)
from tasks.retrain import Ledger, Signal, decide_retrain


@flow(name="monitor")
def monitor(
    scored: str | None = None,
    output: str | None = None,
    inputs: list[str] | None = None,
    model_name: str | None = None,
    model_version: int | None = None,
    include_online: bool = True,
    window_hours: float | None = None,
) -> DriftSummary:
    """Compare recent scoring data with the training data of the model (default: the serving version, else the
    champion), per feature, and emit `mlops.data.drifted` when features drift.

    `scored` is a batch-score run's scored rows (default: the newest run of the last `window_hours`,
    MLOPS_DRIFT_WINDOW_HOURS); the endpoint's collected requests of the window join them unless
    `include_online` is false. `output` is the published batch output: `drift.json` is copied beside it.
    `inputs` are the batch's input files: one that carries the target column is the retraining data
    when MLOPS_DRIFT_RETRAIN_ON_SCORING_DATA is set.
    """
    annotate({"mlops.flow": "monitor"})
    settings = load_settings()
    backend = open_backend(settings)
    window = window_hours or settings.drift_window_hours
    since = time.time() - window * 3600
    # The model and its training data
    model = select_batch_model(backend, settings, model_name or settings.model_name, model_version, None, None)
    # The recent scoring data
    files = [Path(scored)] if scored else [p for p in [latest_scored(settings, since)] if p is not None]
    online_since = since if include_online else None  # the backend says what its endpoint collected (or nothing)
    current = gather_scoring_data(backend, settings, files, online_since)
    if current.frame.empty:
        note = f"no scoring data in the last {window:g} hours: nothing to compare"
        get_run_logger().info(note)
        return DriftSummary(
            model=model.id, sources=current.sources, rows=0, drifted=[], note=note, window_cut_short=current.cut_short
        )
    baseline = load_baseline(backend, model)
    if baseline is None:
        note = f"{model.id} has no drift baseline (reference.csv): drift not checked"
        return DriftSummary(model=model.id, sources=current.sources, rows=len(current.frame), drifted=[], note=note)
    # Compare, per feature and for the predictions
    report = compute_drift(baseline, current, thresholds_of(settings))
    work = Path(scored).parent if scored else settings.home / "monitor" / _run_folder()
    publish_drift(report, baseline, current, model, work)
    summary = DriftSummary(
        model=model.id,
        sources=current.sources,
        rows=report.current_rows,
        drifted=report.drifted,
        prediction_drifted=bool(report.prediction and report.prediction.drifted),
        enough_rows=report.enough_rows,
        report=report.as_dict(),
        window_cut_short=current.cut_short,
    )
    local, published = write_drift_json(backend, summary, work, output)
    summary = summary.model_copy(update={"drift_json": local, "published": published})
    # Announce drift; then the platform's own monitor (none today; on Azure ML an earlier version's is disabled)
    if report.drifted:
        package = settings.package
        training = (
            labelled_input(inputs or [], package.features, package.target)
            if settings.drift_retrain_on_scoring_data
            else ""
        )
        announce_drift(settings, summary, report, training)
        summary = summary.model_copy(update={"event": True})
        # Retrain, suggest or nothing (MLOPS_RETRAIN_POLICY), once per model version and cause within the cooldown
        reason = f"{', '.join(report.drifted)} drifted in {summary.rows} scoring rows ({summary.published or local})"
        decide_retrain(settings, Signal(model=model.id, cause="drift", reason=reason, training_data=training))
    Ledger(settings.home).note(
        "drift", {"model": model.id, "drifted": report.drifted, "rows": summary.rows, "drift_json": local}
    )
    ensure_platform_monitor(backend, settings, model)
    return summary


def _run_folder() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{(flow_run.get_id() or 'local')[:8]}"
