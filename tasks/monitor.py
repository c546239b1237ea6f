"""Tasks of the drift monitor: the serving version's baseline, the recent scoring data, the statistics, what is
published (artifacts, `drift.json`, plots) and the `mlops.data.drifted` event."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event
from pydantic import BaseModel, ConfigDict

from infra.backend import Backend, Collected, ModelVersion
from infra.errors import MissingResourceError
from infra.settings import Settings
from infra.storage import BlobLocation, parse_location
from model.drift import ColumnDrift, DriftReport, DriftThresholds, compare, plot_column
from model.layout import PREDICTION_COLUMN, REFERENCE_FILE
from model.package import SCORE_COLUMN
from tasks._events import chain_label
from tasks._retry import retry_if_transient
from tasks.batch import OUTPUT_FILE

DRIFT_EVENT = "mlops.data.drifted"
DRIFT_FILE = "drift.json"


@dataclass(frozen=True)
class ScoringData:
    """The recent scoring rows (features and `score`) and where they came from."""

    frame: pd.DataFrame
    sources: list[str]
    batch_rows: int
    online_rows: int
    cut_short: str = ""  # why the online window is shorter than asked (the endpoint's retention dropped requests)


class DriftSummary(BaseModel):
    """What a monitor run compared, what drifted, and where the report went."""

    model_config = ConfigDict(frozen=True)

    model: str
    sources: list[str]
    rows: int
    drifted: list[str]
    prediction_drifted: bool = False
    enough_rows: bool = True
    report: dict[str, Any] = {}
    drift_json: str | None = None
    published: str | None = None
    event: bool = False
    note: str = ""
    window_cut_short: str = ""


def thresholds_of(settings: Settings) -> DriftThresholds:
    return DriftThresholds(
        psi=settings.drift_psi_threshold, ks_p_value=settings.drift_ks_p_value, min_rows=settings.drift_min_rows
    )


@task(
    name="load-baseline", retries=2, retry_delay_seconds=2, retry_condition_fn=retry_if_transient, cache_policy=NO_CACHE
)
def load_baseline(backend: Backend, model: ModelVersion) -> pd.DataFrame | None:
    """The training features and predictions saved with the version (its `reference.csv`); None when it has none
    (trained before drift monitoring, or by a package whose training writes no baseline)."""
    path = backend.bundles.build(model).path / "model" / REFERENCE_FILE
    if not path.is_file():
        get_run_logger().warning(
            "%s has no %s (its training wrote no drift baseline): drift is not checked", model.id, REFERENCE_FILE
        )
        return None
    frame = pd.read_csv(path)
    get_run_logger().info("baseline: %d training rows of %s", len(frame), model.id)
    return frame


def latest_scored(settings: Settings, since: float) -> Path | None:
    """The newest batch-score run's scored rows, if it ran after `since` (epoch seconds)."""
    runs = [p for p in (settings.home / "batch").glob(f"*/{OUTPUT_FILE}") if p.stat().st_mtime >= since]
    return max(runs, key=lambda p: p.stat().st_mtime, default=None)


@task(name="gather-scoring-data", cache_policy=NO_CACHE)
def gather_scoring_data(
    backend: Backend, settings: Settings, scored: list[Path], online_since: float | None
) -> ScoringData:
    """Batch rows from the scored files, and the requests the endpoint collected since `online_since` (None: none),
    as the backend keeps them (`Endpoints.collected`: none where the backend collects no scoring data)."""
    features = list(settings.package.features)
    frames, sources = [], []
    for path in scored:
        if not path.is_file():
            raise MissingResourceError(f"scored file {path} does not exist")
        frame = pd.read_csv(path)
        missing = [c for c in (*features, SCORE_COLUMN) if c not in frame.columns]
        if missing:
            raise ValueError(f"{path} is not a batch-score output: no column(s) {', '.join(missing)}")
        frames.append(frame[[*features, SCORE_COLUMN]])
        sources.append(str(path))
    batch_rows = sum(len(f) for f in frames)
    online_rows, cut_short = 0, ""
    collected = None if online_since is None else backend.endpoints.collected(settings.endpoint_name, online_since)
    if collected is not None and online_since is not None:
        if collected.dropped_before is not None:
            cut_short = (
                f"the online window was cut short: the endpoint's retention (MLOPS_ENDPOINT_COLLECT_MAX_MB, "
                f"MLOPS_ENDPOINT_COLLECT_MAX_AGE_HOURS) dropped requests up to "
                f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(collected.dropped_before))} UTC; the window "
                f"asked from {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(online_since))} UTC"
            )
            get_run_logger().warning(cut_short)
        online = _collected_rows(collected, features)
        if len(online):
            frames.append(online)
            sources.append(
                f"{collected.source} ({len(online)} rows since "
                f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(online_since))} UTC)"
            )
        online_rows = len(online)
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[*features, SCORE_COLUMN])
    get_run_logger().info("scoring data: %d batch rows, %d online rows", batch_rows, online_rows)
    return ScoringData(
        frame=frame, sources=sources, batch_rows=batch_rows, online_rows=online_rows, cut_short=cut_short
    )


def _collected_rows(collected: Collected, features: list[str]) -> pd.DataFrame:
    """Rows of the collected requests (`{"data": rows}` answered by `{"result": scores}`); one that does not parse
    is skipped."""
    rows: list[list[float]] = []
    scores: list[float] = []
    for record in collected.requests:
        try:
            request, response = record.request, record.response
            data = (json.loads(request) if isinstance(request, str) else request)["data"]
            result = (json.loads(response) if isinstance(response, str) else response)["result"]
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
        if len(data) == len(result) and all(len(row) == len(features) for row in data):
            rows += data
            scores += result
    frame = pd.DataFrame(rows, columns=features, dtype=float)
    frame[SCORE_COLUMN] = pd.Series(scores, dtype=float)
    return frame


@task(name="compute-drift", cache_policy=NO_CACHE)
def compute_drift(baseline: pd.DataFrame, current: ScoringData, thresholds: DriftThresholds) -> DriftReport:
    """PSI and KS for every feature and for the predictions."""
    features = [column for column in current.frame.columns if column != SCORE_COLUMN]
    report = compare(baseline, current.frame, features, thresholds, prediction=(PREDICTION_COLUMN, SCORE_COLUMN))
    logger = get_run_logger()
    if not report.enough_rows:
        logger.warning(
            "%d scoring rows, fewer than MLOPS_DRIFT_MIN_ROWS=%d: no feature is called drifted",
            report.current_rows,
            thresholds.min_rows,
        )
    logger.info("drifted features: %s", ", ".join(report.drifted) or "none")
    return report


@task(name="publish-drift", cache_policy=NO_CACHE)
def publish_drift(
    report: DriftReport, baseline: pd.DataFrame, current: ScoringData, model: ModelVersion, work: Path
) -> list[Path]:
    """A table artifact of every feature, and a markdown artifact with a plot per drifted feature."""
    rows = [_row(c) for c in [*report.features, *([report.prediction] if report.prediction else [])]]
    verdict = ", ".join(report.drifted) if report.drifted else "no feature drifted"
    create_table_artifact(table=rows, key="drift", description=f"{model.id}: {verdict}")
    plots = []
    for name in report.drifted:
        plots.append(
            plot_column(
                name,
                baseline[name].to_numpy(dtype=float),
                current.frame[name].to_numpy(dtype=float),
                work / "plots" / f"{name}.png",
                title=f"{name}: training vs scoring",
            )
        )
    lines = [
        f"# Drift of the scoring data against {model.id}'s training data",
        "",
        f"- {report.current_rows} scoring rows ({current.batch_rows} batch, {current.online_rows} online) "
        f"against {report.reference_rows} training rows",
        f"- a feature drifts when PSI ≥ {report.thresholds.psi:g} and the KS p-value < {report.thresholds.ks_p_value:g}"
        f" (at least {report.thresholds.min_rows} rows)",
        f"- **drifted: {verdict}**",
        *([f"- **{current.cut_short}**"] if current.cut_short else []),
        "",
        "| feature | PSI | KS statistic | KS p-value | mean shift (sd) | drifted |",
        "|---|---:|---:|---:|---:|---|",
        *(
            f"| {r['feature']} | {r['psi']} | {r['ks_statistic']} | {r['ks_p_value']} | {r['mean_shift_sd']} | "
            f"{r['drifted']} |"
            for r in rows
        ),
    ]
    if plots:
        lines += ["", "## Plots", ""] + [f"- [{p.stem}]({p.resolve().as_uri()})" for p in plots]
    create_markdown_artifact(markdown="\n".join(lines), key="drift-report", description=verdict)
    return plots


def _row(column: ColumnDrift) -> dict[str, object]:
    shift = column.shift_in_std
    drifted = "prediction" if column.name == "prediction" else "yes"  # the predictions are never a drifted feature
    return {
        "feature": column.name,
        "psi": round(column.psi, 4),
        "ks_statistic": round(column.ks_statistic, 4),
        "ks_p_value": float(f"{column.ks_p_value:.3g}"),
        "mean_shift_sd": round(shift, 3) if math.isfinite(shift) else str(shift),
        "drifted": drifted if column.drifted else "no",
    }


@task(
    name="write-drift-json",
    retries=2,
    retry_delay_seconds=2,
    retry_condition_fn=retry_if_transient,
    cache_policy=NO_CACHE,
)
def write_drift_json(backend: Backend, summary: DriftSummary, work: Path, beside: str | None) -> tuple[str, str | None]:
    """`drift.json` in the monitor's folder, and a copy beside the published batch output (`<output>.drift.json`)."""
    local = work / DRIFT_FILE
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_text(json.dumps(summary.model_dump(exclude={"drift_json", "published"}), indent=2) + "\n")
    if not beside:
        return str(local), None
    location = parse_location(beside)
    if isinstance(location, BlobLocation):
        folder, _, name = location.path.rpartition("/")
        target: Path | BlobLocation = BlobLocation(location.container, folder)
    else:
        target, name = location.parent, location.name
    published = backend.storage.publish(local, target, f"{name.rsplit('.', 1)[0]}.{DRIFT_FILE}")
    get_run_logger().info("drift report beside the batch output: %s", published)
    return str(local), published


@task(name="announce-drift", cache_policy=NO_CACHE)
def announce_drift(settings: Settings, summary: DriftSummary, report: DriftReport, training_data: str) -> None:
    """Emit `mlops.data.drifted` naming the drifted features and their statistics."""
    statistics = {
        c.name: {
            "psi": c.psi,
            "ks_statistic": c.ks_statistic,
            "ks_p_value": c.ks_p_value,
            "shift_in_std": c.shift_in_std,
        }
        for c in report.features
        if c.drifted
    }
    emit_event(
        event=DRIFT_EVENT,
        resource={
            "prefect.resource.id": f"mlops.dataset.{settings.scoring_dataset_name}",
            "prefect.resource.name": settings.scoring_dataset_name,
            **chain_label(),
        },
        related=[
            {"prefect.resource.id": f"mlops.model.{summary.model.split(':')[0]}", "prefect.resource.role": "model"}
        ],
        payload={
            "features": summary.drifted,
            "statistics": statistics,
            "model": summary.model,
            "rows": summary.rows,
            "sources": summary.sources,
            "training_data": training_data,
            "drift_json": summary.published or summary.drift_json,
        },
    )
    get_run_logger().warning("data drift in %s: emitted %s", ", ".join(summary.drifted), DRIFT_EVENT)


def labelled_input(inputs: list[str], features: tuple[str, ...], target: str) -> str:
    """The one input file that carries the target column, to retrain on; else ""."""
    if len(inputs) != 1 or not Path(inputs[0]).is_file():
        return ""
    with Path(inputs[0]).open() as handle:
        header = handle.readline().strip().split(",")
    return inputs[0] if target in header and all(f in header for f in features) else ""


@task(
    name="ensure-platform-monitor",
    retries=2,
    retry_delay_seconds=5,
    retry_condition_fn=retry_if_transient,
    cache_policy=NO_CACHE,
)
def ensure_platform_monitor(backend: Backend, settings: Settings, model: ModelVersion) -> str | None:
    """The platform's own drift monitor of the serving deployment kept as it should be. There is none on either
    backend today: on Azure ML this disables the model monitor earlier versions created, whose every run failed
    (infra/azureml/monitoring.py says why)."""
    name = backend.monitoring.ensure(
        model, {"psi": settings.drift_psi_threshold, "ks_p_value": settings.drift_ks_p_value}
    )
    if name:
        get_run_logger().info("%s monitor %r watches %s", backend.name, name, model.id)
    return name
