"""The `mlops` commands around the flows: the local platform, approvals, events, the endpoint and status."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from azureml_emulator.process import EmulatorProcess
from infra.backend import Backend, EndpointState
from infra.errors import BackendError
from infra.factory import open_backend
from infra.settings import Settings


def approve(settings: Settings, args: argparse.Namespace) -> int:  # noqa: ARG001
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


def up(settings: Settings, args: argparse.Namespace) -> int:  # noqa: ARG001
    from deployments.platform import Platform

    platform = Platform(settings)
    for line in platform.up():
        print(line)
    print(f"\nPrefect UI: {platform.ui_url}   (runs, deployments, artifacts, automations)")
    print(f"to use it from another shell: export PREFECT_API_URL={platform.api_url}")
    print("start the chain: prefect deployment run train-register/nightly   (or: mlops data-arrived)")
    return 0


def down(settings: Settings, args: argparse.Namespace) -> int:  # noqa: ARG001
    from deployments.platform import Platform

    for line in Platform(settings).down():
        print(line)
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


def endpoint(settings: Settings, args: argparse.Namespace) -> int:
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
        if "health" in described:
            print(f"  server: {health_line(described['health'])}")
        for name, info in described["deployments"].items():
            print(f"  {name}: {info['model']} ({info['traffic']} %)")
    return 0


def emulator(settings: Settings, args: argparse.Namespace) -> int:
    """`mlops emulator up|down|status`: the local Azure ML emulator."""
    process = EmulatorProcess.from_settings(settings)
    if args.action == "up":
        running = process.pid() is not None
        url = process.start()
        print(f"Azure ML emulator {'running' if running else 'started'} at {url} (state in {process.home})")
        print(f"its CA: {process.bundle} (certifi's bundle + the emulator's CA); clients use it as")
        print(f"  export REQUESTS_CA_BUNDLE={process.bundle}")
        print("point the pipeline at it with MLOPS_BACKEND=azureml MLOPS_AZUREML_EMULATOR=1")
        return 0
    if args.action == "down":
        print("stopped the Azure ML emulator" if process.stop() else "the Azure ML emulator was not running")
        return 0
    report = process.describe()
    if report["running"]:
        calls = process.requests()
        jobs = process.get(_workspace_path(settings) + "/jobs?api-version=2024-01-01-preview").get("value", [])
        report["requests_served"] = len(calls)
        report["jobs"] = {job["name"]: job["properties"]["status"] for job in jobs}
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
        return 0
    if not report["running"]:
        print(f"Azure ML emulator: not running (`mlops emulator up` starts it on {report['url']})")
        return 0
    print(f"Azure ML emulator: running at {report['url']} (pid {report['pid']}), state in {report['home']}")
    print(f"CA bundle: {report['ca_bundle']}; workspaces: {', '.join(report['workspaces'])}")
    print(
        f"requests served: {report['requests_served']}; jobs: "
        + (", ".join(f"{n} {s}" for n, s in report["jobs"].items()) or "none")
    )
    return 0


def _workspace_path(settings: Settings) -> str:
    subscription = settings.azure_subscription_id or "00000000-0000-0000-0000-000000000000"
    return (
        f"/subscriptions/{subscription}/resourceGroups/{settings.azure_resource_group}"
        f"/providers/Microsoft.MachineLearningServices/workspaces/{settings.azure_workspace_name}"
    )


def describe_endpoint(state: EndpointState | None) -> dict[str, Any] | None:
    """The endpoint as `mlops status --json` shows it."""
    if state is None:
        return None
    deployments = {name: {"model": info.model, "traffic": info.traffic} for name, info in state.deployments.items()}
    described: dict[str, Any] = {
        "name": state.name,
        "url": state.scoring_url,
        "running": state.running,
        "deployments": deployments,
    }
    if state.health is not None:
        described["health"] = state.health
    return described


def health_line(health: dict[str, Any]) -> str:
    """`running (supervised; 2 restarts, last: killed by SIGKILL at ...)`."""
    parts = [str(health["state"])]
    if health.get("supervised"):
        restarts = int(health.get("restarts") or 0)
        detail = f"supervised; {restarts} restart{'s' if restarts != 1 else ''}"
        if health.get("last_exit"):
            detail += f", last: {health['last_exit']} at {health['last_exit_at']}"
        if health.get("next_start_at"):
            detail += f"; next start at {health['next_start_at']}"
        parts.append(f"({detail})")
    return " ".join(parts)


def _metrics_line(metrics: dict[str, float] | None) -> str:
    if not metrics:
        return "no metrics"
    return ", ".join(f"{key} {value:.6g}" for key, value in sorted(metrics.items()))


def status(settings: Settings, args: argparse.Namespace) -> int:
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
        logged = entry["logged_metrics"]
        if entry["job"]:
            shown = logged.get("error") if logged and "error" in logged else _metrics_line(logged)
            print(f"  training job {entry['job']}: logged {shown}")
    endpoint = report["endpoint"]
    serving = (
        ", ".join(f"{n}: {d['model']} {d['traffic']} %" for n, d in endpoint["deployments"].items()) if endpoint else ""
    )
    print(
        f"endpoint: {endpoint['name'] + ' ' + endpoint['url'] + ' (' + (serving or 'no deployments') + ')' if endpoint else 'none'}"
    )
    platform, database = report["platform"], report["platform"]["database"]
    state = f"running at {platform['api_url']}" if platform["running"] else "not running (`mlops up` starts it)"
    print(f"platform: {state}; its database: {database['kind']} {database['url']}")
    for name, process in platform["processes"].items():
        if platform["running"] or process["state"] != "stopped":
            print(f"  {name}: {health_line(process)}")
    if endpoint and "health" in endpoint:
        print(f"  endpoint server: {health_line(endpoint['health'])}")
    return 0


def logged_metrics(backend: Backend, job: str | None) -> dict[str, Any] | None:
    """The training job's logged metrics (Azure ML: its MLflow run), or why they could not be read: a status
    report shows what it can, and a tracking server that does not answer is a line in it, not a crash."""
    if not job:
        return None
    try:
        return backend.jobs.logged_metrics(job)
    except BackendError as exc:
        return {"error": str(exc)}


def status_report(settings: Settings) -> dict[str, Any]:
    """`mlops status --json`: the backend, the workspace, every registered version and the endpoint."""
    backend = open_backend(settings)
    models = []
    for version in backend.registry.list():
        champion = backend.registry.aliases(version.name).get("champion") == version.version
        job = version.tags.get("run_id")
        models.append(
            {
                "name": version.name,
                "version": version.version,
                "tags": version.tags,
                "champion": champion,
                "job": job,
                "logged_metrics": logged_metrics(backend, job),
            }
        )
    endpoint = describe_endpoint(backend.endpoints.get(settings.endpoint_name))
    from deployments.platform import Platform

    platform = Platform(settings).describe()
    return {
        "backend": settings.backend,
        "home": str(settings.home),
        "models": models,
        "endpoint": endpoint,
        "platform": platform,
    }
