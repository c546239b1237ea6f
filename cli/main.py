"""The `mlops` command: run the pipeline's flows on this machine and show what they left behind.

    mlops run [--alpha A] [--force]           train-register, then deploy the champion (the whole pipeline)
    mlops train [--alpha A] [--data CSV] [--force] [--metric M --direction D --min-improvement X]
    mlops deploy [--version N] [--steps 10,50,100]
    mlops batch-score [--input CSV|FOLDER|blob://c/p] [--output FOLDER|blob://c/p] [--version N | --tag NAME VALUE] ...
    mlops approve [RUN_ID] [--reject] [--reviewer NAME] [--comment TEXT]
    mlops endpoint status [--json] | stop
    mlops status [--json]
    mlops check-model [FOLDER] [--keep]      the model contract, run on a tiny sample (exit 2: what is missing)
    mlops init NAME [--from diabetes|classification]   a model package of your own, and the settings for it
    mlops trace ID [--json]                  a request's path from its flow run (or a run's spans)
    mlops logs [RUN_ID] [--last N] [--json]  a flow run's endpoint requests, or the endpoint's latest
    mlops emulator up | down | status [--json]  the local Azure ML emulator (MLOPS_BACKEND=azureml MLOPS_AZUREML_EMULATOR=1)
    mlops up | down                          the local platform: Prefect server + UI, work pool, deployments, worker
    mlops provision | cleanup [--keep N] [--stop-endpoint] [--teardown [--yes]]
    mlops data-arrived [--path CSV]          emit mlops.data.arrived (starts train-register when `mlops up` runs)

Settings come from `MLOPS_*` variables and `.env` (see `.env.example`); a bad one stops the command
before any work, naming the variable. Exit codes: 0 done (a model that is not promoted is done too),
1 a flow failed (or a platform process would not start), 2 bad settings or arguments.
"""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import AbstractContextManager, ExitStack, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from cli import model as model_commands
from cli import pipeline as flow_commands
from cli import platform as platform_commands
from cli import telemetry as telemetry_commands
from infra.errors import BackendError, ConfigError
from infra.settings import Settings, load_settings

# Defaults that make a first run work on a small machine; an explicit environment wins.
_PREFECT_DEFAULTS = {
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "true",
}


@dataclass(frozen=True)
class Outcome:
    """What a command leaves: its exit code and the summary lines a user reads last."""

    code: int
    summary: list[str] = field(default_factory=list)


def main(argv: list[str] | None = None) -> int:
    """The `mlops` program: Prefect's defaults for a small machine, the command, then its summary."""
    for name, value in _PREFECT_DEFAULTS.items():
        os.environ.setdefault(name, value)
    outcome = invoke(argv)
    sys.stderr.flush()
    for line in outcome.summary:
        print(line, flush=True)
    return outcome.code


def invoke(argv: list[str] | None = None) -> Outcome:
    """Run one `mlops` command in this process and return its outcome; nothing is printed at exit and no
    environment variable is changed (the Prefect API a command uses is set in Prefect's settings context)."""
    args = _parser().parse_args(argv)
    flow_commands.SUMMARY.take()  # a command's summary is its own
    if args.name in ("check-model", "init"):  # these work on a package the settings may not accept yet
        return Outcome(int(args.command(args)))
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"mlops: {exc}", file=sys.stderr)
        return Outcome(2)
    if os.environ.get("PREFECT_HOME"):  # Prefect creates its home but not the folders above it
        Path(os.environ["PREFECT_HOME"]).expanduser().mkdir(parents=True, exist_ok=True)
    runs_flows = args.command.__module__ == flow_commands.__name__
    try:
        with ExitStack() as stack:
            stack.enter_context(_prefect_api(settings, temporary=runs_flows))
            if runs_flows:
                stack.enter_context(flow_commands.in_this_process())
            code = int(args.command(settings, args))
    except (ConfigError, ValueError) as exc:
        print(f"mlops {args.name}: {exc}", file=sys.stderr)
        code = 2
    except BackendError as exc:  # a platform process would not start, a database would not answer, ...
        print(f"mlops {args.name}: {exc}", file=sys.stderr)
        code = 1
    return Outcome(code, flow_commands.SUMMARY.take())


def _prefect_api(settings: Settings, *, temporary: bool) -> AbstractContextManager[object]:
    """The Prefect API the command talks to: PREFECT_API_URL when set; else the server `mlops up` started
    (so runs show in its UI); else, for a command that runs flows, a temporary server of its own."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    if "PREFECT_API_URL" in os.environ:  # read now, not when Prefect was imported
        return temporary_settings(updates={PREFECT_API_URL: os.environ["PREFECT_API_URL"]})
    from deployments.platform import Platform

    platform = Platform(settings)
    if platform.running():
        return temporary_settings(updates={PREFECT_API_URL: platform.api_url})
    if temporary:
        from deployments.temporary_server import temporary_server

        return temporary_server()  # one that stops with this command, even on kill -9
    return nullcontext()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlops", description="MLOps on Prefect: train, register, deploy, inspect.")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="the whole pipeline: train, gate, register, package, deploy, smoke test")
    _training_arguments(run)
    _rollout_arguments(run)
    run.set_defaults(command=flow_commands.run, name="run")

    train = commands.add_parser("train", help="train, gate against the champion, register and promote")
    train.add_argument("--data", help="training CSV (default: MLOPS_DATA_FILE, else the diabetes sample)")
    _training_arguments(train)
    train.set_defaults(command=flow_commands.train, name="train")

    deploy = commands.add_parser("deploy", help="deploy a version (default the champion) with blue/green traffic")
    deploy.add_argument("--version", type=int, help="model version to deploy (MLOpsPython's artifactBuildId)")
    _rollout_arguments(deploy)
    deploy.set_defaults(command=flow_commands.deploy, name="deploy")

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
    batch.set_defaults(command=flow_commands.batch_score, name="batch-score")

    approve = commands.add_parser("approve", help="answer a deploy run waiting for approval (default: the only one)")
    approve.add_argument("run_id", nargs="?", help="the paused deploy flow run's id")
    approve.add_argument("--reject", action="store_true", help="reject: the new deployment is removed")
    approve.add_argument("--reviewer", default=os.environ.get("USER", ""), help="who answers (default $USER)")
    approve.add_argument("--comment", default="", help="why")
    approve.set_defaults(command=platform_commands.approve, name="approve")

    endpoint = commands.add_parser("endpoint", help="the local online endpoint: status or stop")
    endpoint.add_argument("action", choices=["status", "stop"])
    endpoint.add_argument("--json", action="store_true", help="print JSON")
    endpoint.set_defaults(command=platform_commands.endpoint, name="endpoint")

    up = commands.add_parser(
        "up", help="start the local platform: Prefect server and UI, work pool, deployments, worker"
    )
    up.set_defaults(command=platform_commands.up, name="up")
    down = commands.add_parser("down", help="stop what `mlops up` started (worker first), and the endpoint")
    down.set_defaults(command=platform_commands.down, name="down")

    emulator = commands.add_parser("emulator", help="the local Azure ML emulator: up, down or status")
    emulator.add_argument("action", choices=["up", "down", "status"])
    emulator.add_argument("--json", action="store_true", help="print JSON (status)")
    emulator.set_defaults(command=platform_commands.emulator, name="emulator")

    provision = commands.add_parser("provision", help="create the workspace, registry, blob containers and blocks")
    provision.set_defaults(command=flow_commands.provision, name="provision")
    cleanup = commands.add_parser(
        "cleanup", help="remove idle deployments, archive old versions, scale idle compute to 0"
    )
    cleanup.add_argument("--keep", type=int, default=5, help="newest versions to keep (default 5)")
    cleanup.add_argument("--stop-endpoint", action="store_true", help="also stop the local endpoint")
    cleanup.add_argument(
        "--teardown",
        "--delete-everything",
        dest="teardown",
        action="store_true",
        help="also delete what provision created (the local workspace, or the Azure ML workspace and its resources)",
    )
    cleanup.add_argument("--yes", action="store_true", help="do not ask before --teardown")
    cleanup.set_defaults(command=flow_commands.cleanup, name="cleanup")

    arrived = commands.add_parser(
        "data-arrived", help="emit mlops.data.arrived (triggers train-register under `mlops up`)"
    )
    arrived.add_argument("--path", default="", help="the new training CSV (default: the configured data)")
    arrived.set_defaults(command=platform_commands.data_arrived, name="data-arrived")

    trace = commands.add_parser("trace", help="a request's path from its flow run, or a flow run's spans")
    trace.add_argument("id", help="a request id (x-ms-request-id), a flow or task run id, or a trace id")
    trace.add_argument("--json", action="store_true", help="print the trace's spans as JSON")
    trace.set_defaults(command=telemetry_commands.trace, name="trace")

    logs = commands.add_parser("logs", help="the endpoint requests of a flow run, or the endpoint's latest")
    logs.add_argument("run_id", nargs="?", help="a flow or task run id (default: the endpoint's request log)")
    logs.add_argument("--last", type=int, default=20, help="show the newest N (default 20; 0: all)")
    logs.add_argument("--json", action="store_true", help="print JSON")
    logs.set_defaults(command=telemetry_commands.logs, name="logs")

    check = commands.add_parser("check-model", help="run the model contract on a tiny sample; say what is missing")
    check.add_argument(
        "package", nargs="?", help="the package folder (default: MLOPS_MODEL_PACKAGE, else models/diabetes/)"
    )
    check.add_argument("--keep", action="store_true", help="keep the work folder (data, outputs) for a look")
    check.set_defaults(command=model_commands.check_model, name="check-model")

    init = commands.add_parser("init", help="start a model package of your own from a sample; point the settings at it")
    init.add_argument("package_name", metavar="NAME", help="the package's name: lowercase letters, digits, '_'")
    init.add_argument(
        "--from",
        dest="source",
        choices=sorted(model_commands.TEMPLATES),
        default="diabetes",
        help="diabetes: rename the sample in model/ (as MLOpsPython's bootstrap.py); "
        "classification: copy the LightGBM classifier to models/NAME/",
    )
    init.add_argument("--force", action="store_true", help="replace an existing models/NAME/")
    init.set_defaults(command=model_commands.init, name="init")

    status = commands.add_parser("status", help="registered models, the champion and the endpoint")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(command=platform_commands.status, name="status")
    return parser


def _training_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--alpha", type=float, help="training.alpha (the diabetes sample's Ridge alpha), overriding the parameters file"
    )
    parser.add_argument("--force", action="store_true", help="register even if the gate says no")
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


if __name__ == "__main__":
    sys.exit(main())
