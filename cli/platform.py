"""`mlops platform up|down|status`: the local Prefect platform (old spellings: `mlops up`, `mlops down`); and
`mlops status`, the whole picture: the backend, every registered version, the endpoint and the platform."""

from __future__ import annotations

import argparse
import json
from typing import Any

from cli.command import Command, Subparsers, add, group, json_argument
from infra import environments
from infra.backend import Backend, EndpointState
from infra.errors import BackendError
from infra.factory import open_backend
from infra.settings import Settings, load_settings


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
    if state.disk is not None:
        described["disk"] = {kind: use.model_dump() for kind, use in state.disk.items()}
    return described


def disk_line(kind: str, use: dict[str, Any]) -> str:
    """`collected: 12.3 MiB of 1024 MiB (22 %), kept 168 h`."""
    held, cap = use["held_bytes"] / (1 << 20), use["cap_bytes"] / (1 << 20)
    share = 100 * use["held_bytes"] / use["cap_bytes"] if use["cap_bytes"] else 0
    return f"{kind}: {held:.3g} MiB of {cap:g} MiB ({share:.0f} %), kept {use['max_age_hours']:g} h"


def health_line(health: dict[str, Any]) -> str:
    """`running (supervised; 2 restarts, last: killed by SIGKILL at ...)`; `down (supervisor pid 42 died ...)`."""
    parts = [str(health["state"])]
    if health.get("supervised"):
        restarts = int(health.get("restarts") or 0)
        detail = f"supervised; {restarts} restart{'s' if restarts != 1 else ''}"
        if health.get("last_exit"):
            detail += f", last: {health['last_exit']} at {health['last_exit_at']}"
        if health.get("next_start_at"):
            detail += f"; next start at {health['next_start_at']}"
        parts.append(f"({detail})")
    if health.get("reason"):
        parts.append(f"({health['reason']})")
    return " ".join(parts)


def _metrics_line(metrics: dict[str, float] | None) -> str:
    if not metrics:
        return "no metrics"
    return ", ".join(f"{key} {value:.6g}" for key, value in sorted(metrics.items()))


def status(settings: Settings, args: argparse.Namespace) -> int:
    if args.all_envs:
        return all_environments(args)
    report = status_report(settings)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"environment: {report['environment']}\nbackend: {report['backend']}\nhome: {report['home']}")
    if (where := report["placement"])["champion"]:
        origin = f"promoted from {where['promoted_from']}" if where["promoted_from"] else "trained here"
        print(
            f"serving: {where['serving'] or 'nothing'}; champion {where['champion']} since {where['since']}, {origin}"
        )
        if where["promoted_from"]:
            print(f"  promoted by {where['promoted_by']}")
    if (champion := report["champion"]) and champion["lineage"]:
        print(f"champion lineage: {lineage_line(champion['lineage'])}")
    for line in model_lines(report["models"]):
        print(line)
    endpoint = report["endpoint"]
    serving = (
        ", ".join(f"{n}: {d['model']} {d['traffic']} %" for n, d in endpoint["deployments"].items()) if endpoint else ""
    )
    print(
        f"endpoint: {endpoint['name'] + ' ' + endpoint['url'] + ' (' + (serving or 'no deployments') + ')' if endpoint else 'none'}"
    )
    for line in platform_lines(report["platform"]):
        print(line)
    if endpoint and "health" in endpoint:
        print(f"  endpoint server: {health_line(endpoint['health'])}")
    from cli.loop import loop_lines

    for line in loop_lines(report["loop"]):
        print(line)
    return 0


def platform_status(settings: Settings, args: argparse.Namespace) -> int:
    """`mlops platform status`: the platform part of `mlops status` (its processes and database)."""
    from deployments.platform import Platform

    report = Platform(settings).describe()
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for line in platform_lines(report):
        print(line)
    return 0


def model_lines(models: list[dict[str, Any]]) -> list[str]:
    """The registered versions as `mlops status` and `mlops model list` print them."""
    if not models:
        return ["models: none registered yet (run `mlops train`)"]
    lines = []
    for entry in models:
        marker = "  <- champion" if entry["champion"] else ""
        lines.append(f"model: {entry['name']} version {entry['version']} (mse {entry['tags'].get('mse', '?')}){marker}")
        logged = entry["logged_metrics"]
        if entry["job"]:
            shown = logged.get("error") if logged and "error" in logged else _metrics_line(logged)
            lines.append(f"  training job {entry['job']}: logged {shown}")
    return lines


def platform_lines(platform: dict[str, Any]) -> list[str]:
    """The platform as `mlops status` and `mlops platform status` print it."""
    database = platform["database"]
    state = (
        f"running at {platform['api_url']}" if platform["running"] else "not running (`mlops platform up` starts it)"
    )
    lines = [f"platform: {state}; its database: {database['kind']} {database['url']}"]
    for name, process in platform["processes"].items():
        if platform["running"] or process["state"] != "stopped":
            lines.append(f"  {name}: {health_line(process)}")
    return lines


def logged_metrics(backend: Backend, job: str | None) -> dict[str, Any] | None:
    """The training job's logged metrics (Azure ML: its MLflow run), or why they could not be read: a status
    report shows what it can, and a tracking server that does not answer is a line in it, not a crash."""
    if not job:
        return None
    try:
        return backend.jobs.logged_metrics(job)
    except BackendError as exc:
        return {"error": str(exc)}


def models_report(backend: Backend) -> list[dict[str, Any]]:
    """Every registered version with its tags, whether it is the champion, and its training job's metrics."""
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
    return models


def lineage_line(lineage: dict[str, str]) -> str:
    return (
        f"from {lineage.get('source_model_id', '?')} of {lineage.get('source_environment', '?')} "
        f"({lineage.get('source_workspace', '?')}), training run {lineage.get('training_run') or '?'}"
    )


def all_environments(args: argparse.Namespace) -> int:
    """`mlops status --all-envs`: each environment's serving version, champion, since when, promoted from where and
    by whom (the `environments` artifact of every promotion shows the same), with its lineage and endpoint."""
    rows = {}
    for name in environments.load_environments().names():
        with environments.using(name):
            rows[name] = status_report(load_settings(), with_platform=False)
    if args.json:
        print(json.dumps({"environments": rows}, indent=2))
        return 0
    from tasks.environments_view import markdown_table

    print(markdown_table({name: report["placement"] for name, report in rows.items()}).split("\n", 2)[2], end="")
    for name, report in rows.items():
        champion, endpoint = report["champion"], report["endpoint"]
        origin = lineage_line(champion["lineage"]) if champion and champion["lineage"] else "trained here"
        print(f"{name}: endpoint {endpoint['url'] if endpoint else 'none'}; champion {origin}")
    return 0


def champion_report(backend: Backend, name: str) -> dict[str, Any] | None:
    """The champion of `name` and its lineage (where a promoted version came from; empty when trained here)."""
    champion = backend.registry.get_alias(name, "champion")
    if champion is None:
        return None
    lineage = json.loads(champion.properties.get("lineage", "{}"))
    return {"name": champion.name, "version": champion.version, "id": champion.id, "lineage": lineage}


def status_report(settings: Settings, *, with_platform: bool = True) -> dict[str, Any]:
    """`mlops status --json`: the environment, the backend, the workspace, every registered version, the
    champion with its lineage, and the endpoint."""
    backend = open_backend(settings)
    models = models_report(backend)
    endpoint = describe_endpoint(backend.endpoints.get(settings.endpoint_name))
    from deployments.platform import Platform
    from tasks.environments_view import placement

    platform = Platform(settings).describe() if with_platform else None
    from tasks.retrain import loop_status

    return {
        "environment": environments.current(),
        "backend": settings.backend,
        "home": str(settings.home),
        "models": models,
        "champion": champion_report(backend, settings.model_name),
        "placement": placement(settings, backend),
        "endpoint": endpoint,
        "platform": platform,
        "loop": loop_status(settings),
    }


def register(commands: Subparsers) -> None:
    verbs = group(commands, "platform", help="the local Prefect platform: up, down or status")
    add(
        verbs,
        "up",
        Command("platform up", up),
        help="start the local platform: Prefect server and UI, work pool, deployments, worker",
        aliases=[(commands, "up")],
    )
    add(
        verbs,
        "down",
        Command("platform down", down),
        help="stop what `mlops platform up` started (worker first), and the endpoint",
        aliases=[(commands, "down")],
    )
    add(
        verbs,
        "status",
        Command("platform status", platform_status),
        help="the platform's processes (and their restarts) and its database",
        arguments=json_argument,
    )
    add(
        commands,
        "status",
        Command("status", status),
        help="registered models, the champion (with its lineage), the endpoint and the platform",
        arguments=_status_arguments,
    )


def _status_arguments(parser: argparse.ArgumentParser) -> None:
    json_argument(parser)
    parser.add_argument("--all-envs", action="store_true", help="every environment side by side")
