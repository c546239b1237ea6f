"""`mlops endpoint status|stop|logs`: the online endpoint (on the local backend, the server `mlops deploy` starts)."""

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
        print(
            f"endpoint {settings.endpoint_name}: {'running' if described['running'] else 'stopped'} at {described['url']}"
        )
        if "health" in described:
            print(f"  server: {health_line(described['health'])}")
        for name, info in described["deployments"].items():
            print(f"  {name}: {info['model']} ({info['traffic']} %)")
        for kind, use in described.get("disk", {}).items():
            print(f"  disk, {disk_line(kind, use)}")
    return 0


def stop(settings: Settings, args: argparse.Namespace) -> int:
    stopped = open_backend(settings).endpoints.stop(settings.endpoint_name)
    if args.json:
        print(json.dumps({"endpoint": settings.endpoint_name, "stopped": stopped}))
    else:
        print(f"endpoint {settings.endpoint_name}: {'stopped' if stopped else 'was not running'}")
    return 0


def register(commands: Subparsers) -> None:
    verbs = group(commands, "endpoint", help="the online endpoint: status, stop or its request log")
    add(
        verbs,
        "status",
        Command("endpoint status", status),
        help="the endpoint's URL, server health, deployments and traffic, and the disk it holds against its caps",
        arguments=json_argument,
    )
    add(
        verbs,
        "stop",
        Command("endpoint stop", stop),
        help="stop the local endpoint server; `mlops deploy` starts it again with its state",
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
