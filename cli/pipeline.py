"""The pipeline's verbs, at the top level: run, train, deploy, batch-score and monitor run a flow in this
process; approve answers a deploy run waiting for approval; data-arrived emits the event that starts one.

A flow command returns its exit code and leaves its summary lines in `SUMMARY`, which `cli.invoke` returns;
`cli.main` runs it inside `in_this_process()` (its `Command` says `runs_flows`).

Long because: eight commands, each with its arguments and its summary, which read best beside each other.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cli.command import Command, Subparsers, add, renamed_flag
from cli.early import started_early
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
        train_register(data=args.data, alpha=args.alpha, gate=gate, force=args.skip_gate, return_state=True), "train"
    )
    if result is None:
        return 1
    _summarize_training(result)
    return 0


def deploy(settings: Settings, args: argparse.Namespace) -> int:
    from flows.deploy import deploy as flow

    result = finished(flow(version=args.model_version, rollout=rollout_policy(args), return_state=True), "deploy")
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
        model_version=args.model_version,
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
    reused = (
        f" ({summary.rows_reused} as an earlier run scored the same rows with the same model)"
        if summary.rows_reused
        else ""
    )
    SUMMARY.add(
        f"batch scoring with {summary.model}: {summary.rows_out} of {summary.rows_in} rows scored{reused}, "
        f"{summary.rows_failed} failed"
    )
    for failure in summary.failures:
        SUMMARY.add(
            f"  failed mini-batch {failure.index} ({failure.file}, data rows {failure.first_row}-{failure.first_row + failure.rows - 1}): {failure.error}"
        )
    SUMMARY.add(f"scores: {summary.output}")


def run(settings: Settings, args: argparse.Namespace) -> int:
    from flows.pipeline import pipeline
    from model import environment

    # The smoke test and the batch step score in this process; their libraries import while it waits on the training
    # job. (Not pandera: a passed data check is cached by data and checks, so most runs never import it.)
    environment.import_when_waiting(settings.package.libraries)
    try:
        state = pipeline(
            alpha=args.alpha,
            gate=gate_policy(settings, args),
            force=args.skip_gate,
            rollout=rollout_policy(args),
            return_state=True,
        )
    finally:
        environment.join_imports()  # not left half-way through an import at the interpreter's exit
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


def promote(settings: Settings, args: argparse.Namespace) -> int:  # noqa: ARG001
    from flows.promote import promote as flow
    from infra import environments

    source = args.source or environments.current()
    for name in (source, args.to):  # an unknown name is a bad argument, said before any flow run starts
        environments.load_environments().get(name)
    state = flow(to=args.to, source=source, version=args.model_version, rollout=rollout_policy(args), return_state=True)
    result = finished(state, "promote")
    if result is None:
        return 1
    shared = "put in" if result.shared_created else "already in"
    SUMMARY.add(f"{result.source.id} of {source}: {shared} the shared registry as version {result.shared.version}")
    registered = "registered" if result.target_created else "already registered"
    SUMMARY.add(f"{result.target_environment}: {registered} as {result.target.id}")
    SUMMARY.add(
        f"lineage: training run {result.lineage.get('training_run') or '?'} of {result.lineage['source_workspace']}"
    )
    if result.deployment.note.startswith("rejected"):
        SUMMARY.add(f"not promoted: {result.deployment.note}")
        return 0
    what = "deployed" if result.deployment.changed else "already serving"
    SUMMARY.add(f"{what}: {result.target.id} on {result.deployment.endpoint} ({result.deployment.scoring_url})")
    champion = "is now" if result.crowned else "was already"
    SUMMARY.add(f"{result.target.id} {champion} the champion of {result.target_environment}")
    return 0


def monitor(settings: Settings, args: argparse.Namespace) -> int:  # noqa: ARG001
    from flows.monitor import monitor as flow

    state = flow(
        scored=args.scored,
        model_version=args.model_version,
        include_online=not args.batch_only,
        window_hours=args.window_hours,
        return_state=True,
    )
    summary = finished(state, "monitor")
    if summary is None:
        return 1
    _summarize_drift(summary)
    return 0


def approve(settings: Settings, args: argparse.Namespace) -> int:  # noqa: ARG001
    """Answer the deploy run waiting for approval in this environment (`--env`, default dev), or the run named."""
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.flow_runs import resume_flow_run

    from infra import environments
    from tasks.approval import ENVIRONMENT_TAG, environment_tag

    name = environments.current()
    with get_client(sync_client=True) as client:
        if args.run_id is None:
            paused = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=["deploy"])),
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))
                ),
            )
        else:
            paused = [client.read_flow_run(UUID(args.run_id))]
    elsewhere = sorted(
        {t.removeprefix(ENVIRONMENT_TAG) for r in paused for t in r.tags if t.startswith(ENVIRONMENT_TAG)}
    )
    mine = [run for run in paused if environment_tag(name) in run.tags]
    if args.run_id is not None and not mine and elsewhere:
        print(f"mlops approve: run {args.run_id} waits in environment {elsewhere[0]!r}, not {name!r}", file=sys.stderr)
        return 2
    if args.run_id is None and len(mine) != 1:
        if not mine:
            others = f" (runs wait in: {', '.join(elsewhere)})" if elsewhere else ""
            print(f"mlops approve: no deploy run waits for approval in environment {name!r}{others}", file=sys.stderr)
        else:
            found = ", ".join(str(run.id) for run in mine)
            print(f"mlops approve: name the run: {len(mine)} deploy runs of {name!r} wait ({found})", file=sys.stderr)
        return 2
    run_id = paused[0].id if args.run_id is not None else mine[0].id
    resume_flow_run(run_id, run_input={"approve": not args.reject, "reviewer": args.reviewer, "comment": args.comment})
    print(f"deploy run {run_id} of {name}: {'rejected' if args.reject else 'approved'}")
    return 0


def data_arrived(settings: Settings, args: argparse.Namespace) -> int:
    from prefect.events import emit_event
    from prefect.events.clients import PrefectEventsClient  # noqa: F401 - fails early without a server

    path = args.path or str(settings.data_file or settings.default_data_file)
    name = Path(path).stem or "data"
    emit_event(
        event="mlops.data.arrived",
        resource={"prefect.resource.id": f"mlops.dataset.{name}"},
        payload={"path": args.path},
    )
    print(f"emitted mlops.data.arrived for {path}")
    return 0


def register(commands: Subparsers) -> None:
    """run, train, deploy, batch-score, monitor, promote, approve, data-arrived: the pipeline's verbs, at the top level.

    Long because: eight commands with their arguments, registered in the order `mlops --help` lists them."""
    add(
        commands,
        "run",
        Command("run", run, runs_flows=True, prepare=started_early),
        help="the whole pipeline: train, gate, register, package, deploy, smoke test",
        arguments=_run_arguments,
    )
    add(
        commands,
        "train",
        Command("train", train, runs_flows=True),
        help="train, gate against the champion, register and promote",
        arguments=_train_arguments,
    )
    add(
        commands,
        "deploy",
        Command("deploy", deploy, runs_flows=True),
        help="deploy a version (default the champion) with blue/green traffic",
        arguments=_deploy_arguments,
    )
    add(
        commands,
        "batch-score",
        Command("batch-score", batch_score, runs_flows=True),
        help="score a CSV file or folder (local or blob) in parallel mini-batches",
        arguments=_batch_arguments,
    )
    add(
        commands,
        "monitor",
        Command("monitor", monitor, runs_flows=True),
        help="compare recent scoring data with the model's training data; emit mlops.data.drifted on drift",
        arguments=_monitor_arguments,
    )
    add(
        commands,
        "promote",
        Command("promote", promote, runs_flows=True),
        help="promote an environment's champion (or a version) into another: shared registry, deploy, champion",
        arguments=_promote_arguments,
    )
    add(
        commands,
        "approve",
        Command("approve", approve),
        help="answer a deploy run waiting for approval (default: the only one)",
        arguments=_approve_arguments,
    )
    add(
        commands,
        "data-arrived",
        Command("data-arrived", data_arrived),
        help="emit mlops.data.arrived (triggers train-register under `mlops platform up`)",
        arguments=_arrived_arguments,
    )


def _run_arguments(parser: argparse.ArgumentParser) -> None:
    _training_arguments(parser)
    _rollout_arguments(parser)


def _train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", help="training CSV (default: MLOPS_DATA_FILE, else the diabetes sample)")
    _training_arguments(parser)


def _training_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--alpha", type=float, help="training.alpha (the diabetes sample's Ridge alpha), overriding the parameters file"
    )
    parser.add_argument("--skip-gate", action="store_true", help="register and promote even if the gate says no")
    renamed_flag(parser, "--force", "--skip-gate", switch=True)
    parser.add_argument("--metric", help="gate metric (default: the model package's, mse for the diabetes sample)")
    parser.add_argument("--direction", choices=["minimize", "maximize"], help="default: the model package's")
    parser.add_argument("--min-improvement", type=float, default=0.0, help="required improvement (absolute)")
    parser.add_argument("--promote-ties", action="store_true", help="promote a candidate equal to the champion")


def _rollout_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps", default="10,50,100", help="traffic steps in percent (default 10,50,100)")
    parser.add_argument("--requests-per-step", type=int, default=20, help="checked requests at each step")
    parser.add_argument(
        "--mirror-percent",
        type=int,
        default=0,
        help="first a mirror step: copy this share (1-50) of requests to the new deployment (default 0: none)",
    )


def _model_version_argument(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("--model-version", type=int, metavar="N", help=help)
    renamed_flag(parser, "--version", "--model-version", type=int, metavar="N")


def _deploy_arguments(parser: argparse.ArgumentParser) -> None:
    _model_version_argument(parser, "model version to deploy (MLOpsPython's artifactBuildId)")
    _rollout_arguments(parser)


def _batch_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--input", help="CSV file, folder of CSVs, or blob://<container>/<path> (default: the diabetes features)"
    )
    parser.add_argument("--output", help="folder or blob://<container>/<prefix> (default: MLOPS_BATCH_OUTPUT)")
    _model_version_argument(parser, "model version (default: the one serving the endpoint, else the champion)")
    parser.add_argument("--tag", nargs=2, metavar=("NAME", "VALUE"), help="the latest version with this tag")
    parser.add_argument("--mini-batch-size", type=int, default=250_000, help="rows per mini-batch (default 250000)")
    parser.add_argument("--parallelism", type=int, default=2, help="mini-batches scored at once (default 2)")
    parser.add_argument(
        "--error-threshold", type=int, default=0, help="failed mini-batches allowed; -1 for no limit (default 0)"
    )


def _monitor_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scored", help="a batch-score run's scored rows (default: the newest run of the window, if any)"
    )
    parser.add_argument(
        "--model-version",
        type=int,
        metavar="N",
        help="the model (default: the one serving the endpoint, else the champion)",
    )
    parser.add_argument(
        "--window-hours", type=float, help="how far back to look for scoring data (default: MLOPS_DRIFT_WINDOW_HOURS)"
    )
    parser.add_argument(
        "--batch-only", action="store_true", help="leave out the endpoint's collected requests (online data)"
    )


def _promote_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--to", required=True, metavar="NAME", help="the target environment (environments.toml)")
    parser.add_argument(
        "--from", dest="source", metavar="NAME", help="the source environment (default: --env, MLOPS_ENV, else dev)"
    )
    _model_version_argument(parser, "the source's version to promote (default: its champion)")
    _rollout_arguments(parser)


def _approve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run_id", nargs="?", help="the paused deploy flow run's id (default: the one waiting in this environment)"
    )
    parser.add_argument("--reject", action="store_true", help="reject: the new deployment is removed")
    parser.add_argument("--reviewer", default=os.environ.get("USER", ""), help="who answers (default $USER)")
    parser.add_argument("--comment", default="", help="why")


def _arrived_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--path", default="", help="the new training CSV (default: the configured data)")
