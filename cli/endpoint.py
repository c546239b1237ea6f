"""`mlops endpoint status|start|stop|logs`: the online endpoint (on the local backend, the server `mlops deploy`
starts; `start` brings it back with its saved deployments, traffic, mirror and keys)."""

from __future__ import annotations

import argparse
import json

from cli import telemetry
from cli.command import Command, Subparsers, add, group, json_argument
from cli.platform import describe_endpoint, disk_line, health_line
from infra.factory import open_backend
from infra.settings import Settings


def status(settings: Settings, args: argparse.Namespace) -> int:
    described = describe_endpoint(open_backend(settings).endpoints.get(settings.endpoint_name))
    if args.json:
        print(json.dumps(described, indent=2))
    elif described is None:
        print(f"endpoint {settings.endpoint_name}: not created yet (run `mlops deploy`)")
    else:
        down = described.get("health", {}).get("state") == "down"
        word = "running" if described["running"] else "down" if down else "stopped"
        print(f"endpoint {settings.endpoint_name}: {word} at {described['url']}")
        if "health" in described:
            print(f"  server: {health_line(described['health'])}")
        for name, info in described["deployments"].items():
            print(f"  {name}: {info['model']} ({info['traffic']} %)")
        for kind, use in described.get("disk", {}).items():
            print(f"  disk, {disk_line(kind, use)}")
        if down:
            print("  run `mlops endpoint start` (under `mlops platform up` its watchdog starts it within seconds)")
    return 0


def start(settings: Settings, args: argparse.Namespace) -> int:
    """Start the endpoint again with what it saved (deployments, bundles, traffic, mirror, keys); when it already
    runs, say so and change nothing. Exit 1 for an endpoint never created, and on Azure ML for a managed endpoint
    that does not run (Azure ML runs those; nothing here starts one)."""
    endpoints = open_backend(settings).endpoints
    name = settings.endpoint_name
    before = endpoints.get(name)
    if before is None:
        message = f"endpoint {name}: not created yet (run `mlops deploy`)"
        print(json.dumps({"endpoint": name, "started": False, "error": message}) if args.json else message)
        return 1
    if settings.backend != "local" and not before.running:  # a managed online endpoint: Azure ML runs it
        message = (
            f"endpoint {name}: not running on Azure ML; managed endpoints are not started here (see its state there)"
        )
        print(json.dumps({"endpoint": name, "started": False, "error": message}) if args.json else message)
        return 1
    state = before if before.running else endpoints.ensure(name)
    if args.json:
        print(json.dumps({"started": not before.running, "endpoint": describe_endpoint(state)}, indent=2))
        return 0
    if before.running:
        print(f"endpoint {name}: already running at {state.scoring_url}; nothing to do")
        return 0
    print(f"endpoint {name}: started at {state.scoring_url}")
    for deployment, info in state.deployments.items():
        print(f"  {deployment}: {info.model} ({info.traffic} %)")
    return 0


def stop(settings: Settings, args: argparse.Namespace) -> int:
    stopped = open_backend(settings).endpoints.stop(settings.endpoint_name)
    if args.json:
        print(json.dumps({"endpoint": settings.endpoint_name, "stopped": stopped}))
    else:
        print(f"endpoint {settings.endpoint_name}: {'stopped' if stopped else 'was not running'}")
    return 0


def register(commands: Subparsers) -> None:
    verbs = group(commands, "endpoint", help="the online endpoint: status, start, stop or its request log")
    add(
        verbs,
        "status",
        Command("endpoint status", status),
        help="the endpoint's URL, server health, deployments and traffic, and the disk it holds against its caps",
        arguments=json_argument,
    )
    add(
        verbs,
        "start",
        Command("endpoint start", start),
        help="start the local endpoint server again with its saved deployments, traffic and keys (idempotent)",
        arguments=json_argument,
    )
    add(
        verbs,
        "stop",
        Command("endpoint stop", stop),
        help="stop the local endpoint server; `mlops endpoint start` starts it again with its state",
        arguments=json_argument,
    )
    add(
        verbs,
        "logs",
        Command("endpoint logs", telemetry.logs),
        help="the endpoint's latest scoring requests (`mlops logs RUN_ID`: a flow run's)",
        arguments=_logs_arguments,
    )


def _logs_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--last", type=int, default=20, help="show the newest N (default 20; 0: all)")
    json_argument(parser)
    parser.set_defaults(run_id=None)
