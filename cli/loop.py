"""The retraining loop's commands: `mlops labels PATH` (the labels flow, here), `mlops labels-arrived PATH` (emit
`mlops.labels.arrived`: the platform's `labels/on-labels` deployment runs the flow); and the loop's part of
`mlops status` (the policy, the cooldown, the last drift verdict and live metric)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from cli.command import Command, Subparsers, add
from infra.settings import Settings


def labels(settings: Settings, args: argparse.Namespace) -> int:  # noqa: ARG001
    from cli.pipeline import finished
    from flows.labels import labels as flow

    summary = finished(flow(path=str(Path(args.path).resolve()), return_state=True), "labels")
    if summary is None:
        return 1
    for metric in summary.metrics:
        print(live_line(metric))
    if summary.unmatched:
        print(f"unmatched: {len(summary.unmatched)} labelled row(s), e.g. {', '.join(summary.unmatched[:3])}")
    return 0


def labels_arrived(settings: Settings, args: argparse.Namespace) -> int:
    from prefect.events import emit_event
    from prefect.events.clients import PrefectEventsClient  # noqa: F401 - fails early without a server

    from tasks.labels import LABELS_EVENT

    path = Path(args.path).resolve()
    if not path.is_file():
        print(f"mlops labels-arrived: {path} does not exist", file=sys.stderr)
        return 2
    emit_event(
        event=LABELS_EVENT,
        resource={"prefect.resource.id": f"mlops.labels.{settings.scoring_dataset_name}"},
        payload={"path": str(path)},
    )
    print(f"emitted {LABELS_EVENT} for {path}")
    return 0


def live_line(metric: Any) -> str:
    """`diabetes_regression_model.pkl:1: live mse 2859.7 on 442 rows (training 3295.7) ok`."""
    get = metric.get if isinstance(metric, dict) else lambda k: getattr(metric, k)
    training = get("training")
    return (
        f"{get('model')}: live {get('metric')} {get('live'):.6g} on {get('rows')} rows "
        f"(training {f'{training:.6g}' if training is not None else 'unknown'}) "
        f"{'DEGRADED' if get('degraded') else 'ok'}"
    )


def loop_lines(loop: dict[str, Any]) -> list[str]:
    """The loop as `mlops status` prints it."""
    drift = loop["last_drift"]
    verdict = (
        f"{drift['model']}: {', '.join(drift['drifted']) or 'no feature drifted'} ({drift['rows']} rows)"
        if drift
        else "none yet"
    )
    live = loop["last_live_metric"]
    metrics = [live_line(m) for m in live["metrics"]] if live else []
    cooldown = f"until {loop['cooldown_ends']} UTC" if loop["cooldown_ends"] else "none running"
    return [
        f"retrain policy: {loop['policy']} (cooldown {loop['cooldown_hours']:g} h: {cooldown})",
        f"last drift verdict: {verdict}",
        f"last live metric: {'; '.join(metrics) or 'none yet'}",
    ]


def register(commands: Subparsers) -> None:
    add(
        commands,
        "labels",
        Command("labels", labels, runs_flows=True),
        help="join ground truth to the predictions, publish the live metric, emit mlops.model.degraded if worse",
        arguments=_path_argument,
    )
    add(
        commands,
        "labels-arrived",
        Command("labels-arrived", labels_arrived),
        help="emit mlops.labels.arrived (the labels flow runs under `mlops platform up`)",
        arguments=_path_argument,
    )


def _path_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="a CSV: the target column, and row_id (<batch>:<row>) or request_id [+ row]")
