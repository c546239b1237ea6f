"""The `mlops` command: run the pipeline's flows on this machine and show what they left behind.

    mlops run [--alpha A] [--force]           train-register, then deploy the champion (the whole pipeline)
    mlops train [--alpha A] [--data CSV] [--force] [--metric M --direction D --min-improvement X]
    mlops deploy [--version N] [--steps 10,50,100]
    mlops batch-score [--input CSV|FOLDER|blob://c/p] [--output FOLDER|blob://c/p] [--version N | --tag NAME VALUE] ...
    mlops approve [RUN_ID] [--reject] [--reviewer NAME] [--comment TEXT]
    mlops endpoint status [--json] | stop
    mlops status [--json]
    mlops up | down                          the local platform: Prefect server + UI, work pool, deployments, worker
    mlops provision | cleanup [--keep N] [--stop-endpoint] [--delete-everything]
    mlops data-arrived [--path CSV]          emit mlops.data.arrived (starts train-register when `mlops up` runs)

Settings come from `MLOPS_*` variables and `.env` (see `.env.example`); a bad one stops the command
before any work, naming the variable. Exit codes: 0 done (a model that is not promoted is done too),
1 a flow failed, 2 bad settings or arguments.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import sys
from pathlib import Path
from typing import Any

from infra.backend import EndpointState, open_backend
from infra.errors import ConfigError
from infra.settings import Settings, load_settings

# Defaults that make a first run work on a small machine; an explicit environment wins.
_PREFECT_DEFAULTS = {
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "true",
}


class _Summary:
    """Lines printed when the process exits, after Prefect's temporary server has said goodbye.

    `atexit` runs handlers last-registered-first; this one is registered before Prefect starts its
    server, so the summary is the last thing a user sees.
    """

    def __init__(self) -> None:
        self.lines: list[str] = []
        atexit.register(self.flush)

    def add(self, line: str) -> None:
        self.lines.append(line)

    def flush(self) -> None:
        sys.stderr.flush()
        for line in self.lines:
            print(line, flush=True)
        self.lines.clear()


SUMMARY = _Summary()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"mlops: {exc}", file=sys.stderr)
        return 2
    for name, value in _PREFECT_DEFAULTS.items():
        os.environ.setdefault(name, value)
    _use_platform_server(settings)
    try:
        return int(args.command(settings, args))
    except (ConfigError, ValueError) as exc:
        print(f"mlops {args.name}: {exc}", file=sys.stderr)
        return 2


def _use_platform_server(settings: Settings) -> None:
    """Runs go to the server `mlops up` started (and show in its UI), unless PREFECT_API_URL says otherwise."""
    if "PREFECT_API_URL" in os.environ:
        return
    from deployments.platform import Platform

    platform = Platform(settings)
    if platform.running():
        os.environ["PREFECT_API_URL"] = platform.api_url


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlops", description="MLOps on Prefect: train, register, deploy, inspect.")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="the whole pipeline: train, gate, register, package, deploy, smoke test")
    _training_arguments(run)
    _rollout_arguments(run)
    run.set_defaults(command=_run, name="run")

    train = commands.add_parser("train", help="train, gate against the champion, register and promote")
    train.add_argument("--data", help="training CSV (default: MLOPS_DATA_FILE, else the diabetes sample)")
    _training_arguments(train)
    train.set_defaults(command=_train, name="train")

    deploy = commands.add_parser("deploy", help="deploy a version (default the champion) with blue/green traffic")
    deploy.add_argument("--version", type=int, help="model version to deploy (MLOpsPython's artifactBuildId)")
    _rollout_arguments(deploy)
    deploy.set_defaults(command=_deploy, name="deploy")

    batch = commands.add_parser(
        "batch-score", help="score a CSV file or folder (local or blob) in parallel mini-batches"
    )
    batch.add_argument(
        "--input", help="CSV file, folder of CSVs, or blob://<container>/<path> (default: the diabetes features)"
    )
    batch.add_argument("--output", help="folder or blob://<container>/<prefix> (default: MLOPS_BATCH_OUTPUT)")
    batch.add_argument(
        "--version", type=int, help="model version (default: the one serving the endpoint, else the champion)"
    )
    batch.add_argument("--tag", nargs=2, metavar=("NAME", "VALUE"), help="the latest version with this tag")
    batch.add_argument("--mini-batch-size", type=int, default=250_000, help="rows per mini-batch (default 250000)")
    batch.add_argument("--parallelism", type=int, default=2, help="mini-batches scored at once (default 2)")
    batch.add_argument(
        "--error-threshold", type=int, default=0, help="failed mini-batches allowed; -1 for no limit (default 0)"
    )
    batch.set_defaults(command=_batch_score, name="batch-score")

    approve = commands.add_parser("approve", help="answer a deploy run waiting for approval (default: the only one)")
    approve.add_argument("run_id", nargs="?", help="the paused deploy flow run's id")
    approve.add_argument("--reject", action="store_true", help="reject: the new deployment is removed")
    approve.add_argument("--reviewer", default=os.environ.get("USER", ""), help="who answers (default $USER)")
    approve.add_argument("--comment", default="", help="why")
    approve.set_defaults(command=_approve, name="approve")

    endpoint = commands.add_parser("endpoint", help="the local online endpoint: status or stop")
    endpoint.add_argument("action", choices=["status", "stop"])
    endpoint.add_argument("--json", action="store_true", help="print JSON")
    endpoint.set_defaults(command=_endpoint, name="endpoint")

    up = commands.add_parser(
        "up", help="start the local platform: Prefect server and UI, work pool, deployments, worker"
    )
    up.set_defaults(command=_up, name="up")
    down = commands.add_parser("down", help="stop what `mlops up` started (worker first), and the endpoint")
    down.set_defaults(command=_down, name="down")

    provision = commands.add_parser("provision", help="create the workspace, registry, blob containers and blocks")
    provision.set_defaults(command=_provision, name="provision")
    cleanup = commands.add_parser("cleanup", help="remove idle deployments, archive old versions")
    cleanup.add_argument("--keep", type=int, default=5, help="newest versions to keep (default 5)")
    cleanup.add_argument("--stop-endpoint", action="store_true", help="also stop the local endpoint")
    cleanup.add_argument("--delete-everything", action="store_true", help="also delete the whole local workspace")
    cleanup.set_defaults(command=_cleanup, name="cleanup")

    arrived = commands.add_parser(
        "data-arrived", help="emit mlops.data.arrived (triggers train-register under `mlops up`)"
    )
    arrived.add_argument("--path", default="", help="the new training CSV (default: the configured data)")
    arrived.set_defaults(command=_data_arrived, name="data-arrived")

    status = commands.add_parser("status", help="registered models, the champion and the endpoint")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(command=_status, name="status")
    return parser


def _training_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--alpha", type=float, help="Ridge alpha, overriding the parameters file")
    parser.add_argument("--force", action="store_true", help="register even if the gate says no")
    parser.add_argument("--metric", default="mse", help="gate metric (default mse)")
    parser.add_argument("--direction", choices=["minimize", "maximize"], default="minimize")
    parser.add_argument("--min-improvement", type=float, default=0.0, help="required improvement (absolute)")
    parser.add_argument("--promote-ties", action="store_true", help="promote a candidate equal to the champion")


def _rollout_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps", default="10,50,100", help="traffic steps in percent (default 10,50,100)")
    parser.add_argument("--requests-per-step", type=int, default=20, help="checked requests at each step")


def _gate(args: argparse.Namespace) -> Any:
    from model.gate import GatePolicy

    return GatePolicy(args.metric, args.direction, args.min_improvement, args.promote_ties)


def _rollout(args: argparse.Namespace) -> Any:
    from tasks.rollout import RolloutPolicy

    steps = [int(step) for step in args.steps.split(",")]
    return RolloutPolicy(steps=steps, requests_per_step=args.requests_per_step)


def _finished(state: Any, name: str) -> Any:
    """The flow's result, or None (after saying why) when it did not complete."""
    if not state.is_completed():
        print(f"mlops {name}: the flow ended {state.name}: {state.message}", file=sys.stderr)
        return None
    return state.result()


def _train(settings: Settings, args: argparse.Namespace) -> int:  # noqa: ARG001 - flows read settings themselves
    from flows.train_register import train_register

    gate = _gate(args)
    result = _finished(
        train_register(data=args.data, alpha=args.alpha, gate=gate, force=args.force, return_state=True), "train"
    )
    if result is None:
        return 1
    _summarize_training(result)
    return 0


def _deploy(settings: Settings, args: argparse.Namespace) -> int:
    from flows.deploy import deploy

    result = _finished(deploy(version=args.version, rollout=_rollout(args), return_state=True), "deploy")
    if result is None:
        return 1
    _summarize_deployment(settings, result)
    return 0


def _batch_score(settings: Settings, args: argparse.Namespace) -> int:  # noqa: ARG001
    from flows.batch_score import batch_score

    tag_name, tag_value = args.tag or (None, None)
    state = batch_score(
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
    summary = _finished(state, "batch-score")
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


def _run(settings: Settings, args: argparse.Namespace) -> int:
    from flows.pipeline import pipeline

    state = pipeline(alpha=args.alpha, gate=_gate(args), force=args.force, rollout=_rollout(args), return_state=True)
    result = _finished(state, "run")
    if result is None:
        return 1
    _summarize_training(result.training)
    _summarize_batch(result.batch)
    _summarize_deployment(settings, result.deployment)
    return 0


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
    body = json.dumps({"data": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [10, 9, 8, 7, 6, 5, 4, 3, 2, 1]]})
    SUMMARY.add("try it:")
    SUMMARY.add(
        f"  curl -s {result.scoring_url} -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' -d '{body}'"
    )


def _approve(settings: Settings, args: argparse.Namespace) -> int:  # noqa: ARG001
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

    if args.run_id is None:
        with get_client(sync_client=True) as client:
            paused = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=["deploy"])),
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))
                ),
            )
        if len(paused) != 1:
            found = ", ".join(str(run.id) for run in paused) or "none"
            print(
                f"mlops approve: name the run: {len(paused)} deploy runs wait for approval ({found})", file=sys.stderr
            )
            return 2
        run_id = paused[0].id
    else:
        run_id = UUID(args.run_id)
    resume_flow_run(run_id, run_input={"approve": not args.reject, "reviewer": args.reviewer, "comment": args.comment})
    print(f"deploy run {run_id}: {'rejected' if args.reject else 'approved'}")
    return 0


def _up(settings: Settings, args: argparse.Namespace) -> int:  # noqa: ARG001
    from deployments.platform import Platform

    platform = Platform(settings)
    for line in platform.up():
        print(line)
    print(f"\nPrefect UI: {platform.ui_url}   (runs, deployments, artifacts, automations)")
    print(f"to use it from another shell: export PREFECT_API_URL={platform.api_url}")
    print("start the chain: prefect deployment run train-register/nightly   (or: mlops data-arrived)")
    return 0


def _down(settings: Settings, args: argparse.Namespace) -> int:  # noqa: ARG001
    from deployments.platform import Platform

    for line in Platform(settings).down():
        print(line)
    return 0


def _provision(settings: Settings, args: argparse.Namespace) -> int:  # noqa: ARG001
    from flows.provision import provision

    changes = _finished(provision(return_state=True), "provision")
    if changes is None:
        return 1
    SUMMARY.add("\n".join(changes) or "provision: nothing to do")
    return 0


def _cleanup(settings: Settings, args: argparse.Namespace) -> int:  # noqa: ARG001
    from flows.cleanup import cleanup

    state = cleanup(
        keep_versions=args.keep,
        stop_endpoint_server=args.stop_endpoint,
        delete_everything=args.delete_everything,
        return_state=True,
    )
    changes = _finished(state, "cleanup")
    if changes is None:
        return 1
    SUMMARY.add("\n".join(changes) or "cleanup: nothing to do")
    return 0


def _data_arrived(settings: Settings, args: argparse.Namespace) -> int:
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


def _endpoint(settings: Settings, args: argparse.Namespace) -> int:
    endpoints = open_backend(settings).endpoints
    if args.action == "stop":
        stopped = endpoints.stop(settings.endpoint_name)
        print(f"endpoint {settings.endpoint_name}: {'stopped' if stopped else 'was not running'}")
        return 0
    described = describe_endpoint(endpoints.get(settings.endpoint_name))
    if args.json:
        print(json.dumps(described, indent=2))
    elif described is None:
        print(f"endpoint {settings.endpoint_name}: not created yet (run `mlops deploy`)")
    else:
        print(
            f"endpoint {settings.endpoint_name}: {'running' if described['running'] else 'stopped'} at {described['url']}"
        )
        for name, info in described["deployments"].items():
            print(f"  {name}: {info['model']} ({info['traffic']} %)")
    return 0


def describe_endpoint(state: EndpointState | None) -> dict[str, Any] | None:
    """The endpoint as `mlops status --json` shows it."""
    if state is None:
        return None
    deployments = {name: {"model": info.model, "traffic": info.traffic} for name, info in state.deployments.items()}
    return {"url": state.scoring_url, "running": state.running, "deployments": deployments}


def _status(settings: Settings, args: argparse.Namespace) -> int:
    report = status_report(settings)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"backend: {report['backend']}\nhome: {report['home']}")
    if not report["models"]:
        print("models: none registered yet (run `mlops train`)")
    for entry in report["models"]:
        marker = "  <- champion" if entry["champion"] else ""
        print(f"model: {entry['name']} version {entry['version']} (mse {entry['tags'].get('mse', '?')}){marker}")
    endpoint = report["endpoint"]
    serving = (
        ", ".join(f"{n}: {d['model']} {d['traffic']} %" for n, d in endpoint["deployments"].items()) if endpoint else ""
    )
    print(f"endpoint: {endpoint['url'] + ' (' + (serving or 'no deployments') + ')' if endpoint else 'none'}")
    return 0


def status_report(settings: Settings) -> dict[str, Any]:
    """`mlops status --json`: the backend, the workspace, every registered version and the endpoint."""
    backend = open_backend(settings)
    models = []
    for version in backend.registry.list():
        champion = backend.registry.aliases(version.name).get("champion") == version.version
        models.append({"name": version.name, "version": version.version, "tags": version.tags, "champion": champion})
    endpoint = describe_endpoint(backend.endpoints.get(settings.endpoint_name))
    return {"backend": settings.backend, "home": str(settings.home), "models": models, "endpoint": endpoint}


if __name__ == "__main__":
    sys.exit(main())
