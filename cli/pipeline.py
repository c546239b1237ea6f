"""The `mlops` commands that run a flow in this process: run, train, deploy, batch-score, provision, cleanup.

Each returns the command's exit code and leaves its summary lines in `SUMMARY`, which `cli.invoke` returns.
`cli.main` runs them inside `in_this_process()`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from infra.factory import open_backend
from infra.settings import Settings


class Summary:
    """The lines a command leaves for the user, printed by `cli.main` once everything else has said its piece
    (the temporary Prefect server stopped), or returned by `cli.invoke` to a caller in this process."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, line: str) -> None:
        self.lines.append(line)

    def take(self) -> list[str]:
        lines, self.lines = self.lines, []
        return lines


SUMMARY = Summary()


@contextmanager
def in_this_process() -> Iterator[None]:
    """Prefect settings for flows run in the `mlops` process itself: no flow-run heartbeats.

    Prefect's heartbeat thread sleeps in one-second slices and the end of every flow run, sub-flows
    included, joins it: up to a second per flow, about 3 s of each `mlops run` (4 flow runs). Heartbeats let an automation mark a run whose process died as crashed; a run started
    here is watched by the terminal that started it, and this project defines no such automation.
    Runs started by a worker (the platform's deployments) keep Prefect's default.
    """
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


def gate_policy(settings: Settings, args: argparse.Namespace) -> Any:
    """The gate of the command line; the metric and direction the model package names unless given."""
    from model.gate import GatePolicy

    metric = args.metric or settings.package.metric
    direction = args.direction or settings.package.direction
    return GatePolicy(metric, direction, args.min_improvement, args.promote_ties)  # type: ignore[arg-type]


def rollout_policy(args: argparse.Namespace) -> Any:
    from tasks.rollout import RolloutPolicy

    steps = [int(step) for step in args.steps.split(",")]
    return RolloutPolicy(steps=steps, requests_per_step=args.requests_per_step, mirror_percent=args.mirror_percent)


def finished(state: Any, name: str) -> Any:
    """The flow's result, or None (after saying why) when it did not complete."""
    if not state.is_completed():
        print(f"mlops {name}: the flow ended {state.name}: {state.message}", file=sys.stderr)
        return None
    return state.result()


def train(settings: Settings, args: argparse.Namespace) -> int:
    from flows.train_register import train_register

    gate = gate_policy(settings, args)
    result = finished(
        train_register(data=args.data, alpha=args.alpha, gate=gate, force=args.force, return_state=True), "train"
    )
    if result is None:
        return 1
    _summarize_training(result)
    return 0


def deploy(settings: Settings, args: argparse.Namespace) -> int:
    from flows.deploy import deploy as flow

    result = finished(flow(version=args.version, rollout=rollout_policy(args), return_state=True), "deploy")
    if result is None:
        return 1
    _summarize_deployment(settings, result)
    return 0


def batch_score(settings: Settings, args: argparse.Namespace) -> int:  # noqa: ARG001
    from flows.batch_score import batch_score as flow

    tag_name, tag_value = args.tag or (None, None)
    state = flow(
        input=args.input,
        output=args.output,
        model_version=args.version,
        model_tag_name=tag_name,
        model_tag_value=tag_value,
        mini_batch_size=args.mini_batch_size,
        parallelism=args.parallelism,
        error_threshold=args.error_threshold,
        return_state=True,
    )
    summary = finished(state, "batch-score")
    if summary is None:
        return 1
    _summarize_batch(summary)
    return 0


def _summarize_batch(summary: Any) -> None:
    SUMMARY.add(
        f"batch scoring with {summary.model}: {summary.rows_out} of {summary.rows_in} rows scored, {summary.rows_failed} failed"
    )
    for failure in summary.failures:
        SUMMARY.add(
            f"  failed mini-batch {failure.index} ({failure.file}, data rows {failure.first_row}-{failure.first_row + failure.rows - 1}): {failure.error}"
        )
    SUMMARY.add(f"scores: {summary.output}")


def run(settings: Settings, args: argparse.Namespace) -> int:
    from flows.pipeline import pipeline

    state = pipeline(
        alpha=args.alpha,
        gate=gate_policy(settings, args),
        force=args.force,
        rollout=rollout_policy(args),
        return_state=True,
    )
    result = finished(state, "run")
    if result is None:
        return 1
    _summarize_training(result.training)
    _summarize_batch(result.batch)
    _summarize_drift(result.drift)
    _summarize_deployment(settings, result.deployment)
    return 0


def _summarize_drift(summary: Any) -> None:
    if not summary.rows or summary.note:
        SUMMARY.add(f"drift: {summary.note}")
        return
    verdict = (
        f"{', '.join(summary.drifted)} drifted (mlops.data.drifted emitted)"
        if summary.drifted
        else "no feature drifted"
    )
    SUMMARY.add(f"drift: {verdict}, {summary.rows} scoring rows against {summary.model}'s training data")
    SUMMARY.add(f"drift report: {summary.published or summary.drift_json}")


def _summarize_training(result: Any) -> None:
    SUMMARY.add(
        f"training: {'served from the cache (nothing changed)' if result.cache_hit else 'trained a new candidate'}"
    )
    SUMMARY.add(f"decision: {result.reason}")
    if result.registered is not None:
        created = "registered" if result.created else "already registered"
        SUMMARY.add(f"{created}: {result.registered.name} version {result.registered.version}")
    if result.champion is not None:
        SUMMARY.add(f"champion: {result.champion.name} version {result.champion.version}")


def _summarize_deployment(settings: Settings, result: Any) -> None:
    what = "deployed" if result.changed else "already serving"
    SUMMARY.add(
        f"{what}: {result.model.name} version {result.model.version} on {result.endpoint} (deployment {result.deployment}, 100 %)"
    )
    SUMMARY.add(f"scoring URL: {result.scoring_url}")
    key = open_backend(settings).endpoints.key(result.endpoint)
    body = json.dumps(json.loads(settings.package.sample_request_body()))  # the package's sample request
    trust = ""
    if settings.backend == "azureml" and settings.local_emulator:  # the emulator's endpoints use its own CA
        trust = f"--cacert {settings.emulator_dir / 'tls' / 'ca.pem'} "
    SUMMARY.add("try it:")
    SUMMARY.add(
        f"  curl -s {trust}{result.scoring_url} -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' -d '{body}'"
    )


def provision(settings: Settings, args: argparse.Namespace) -> int:  # noqa: ARG001
    from flows.provision import provision as flow

    changes = finished(flow(return_state=True), "provision")
    if changes is None:
        return 1
    SUMMARY.add("\n".join(changes) or "provision: nothing to do")
    return 0


def _confirm_teardown(settings: Settings) -> bool:
    """Ask on the terminal: the workspace's name must be typed back. No terminal: not confirmed (use --yes)."""
    if settings.backend == "azureml":
        what, name = (
            f"Azure ML workspace {settings.azure_workspace_name!r} with its endpoints, clusters, storage and key vault",
            settings.azure_workspace_name,
        )
    else:
        what, name = f"local workspace {settings.home} (registry, models, bundles, outputs)", settings.home.name
    if not sys.stdin.isatty():
        print(f"mlops cleanup --teardown deletes the {what}; pass --yes to confirm without a terminal", file=sys.stderr)
        return False
    answer = input(f"This deletes the {what}.\nType {name!r} to confirm: ")
    return answer.strip() == name


def cleanup(settings: Settings, args: argparse.Namespace) -> int:
    from flows.cleanup import cleanup as flow

    if args.teardown and not args.yes and not _confirm_teardown(settings):
        print("mlops cleanup: teardown not confirmed; nothing was changed", file=sys.stderr)
        return 1
    state = flow(
        keep_versions=args.keep,
        stop_endpoint_server=args.stop_endpoint,
        delete_everything=args.teardown,
        return_state=True,
    )
    changes = finished(state, "cleanup")
    if changes is None:
        return 1
    SUMMARY.add("\n".join(changes) or "cleanup: nothing to do")
    return 0
