"""`mlops emulator up|down|status`: the local Azure ML emulator (MLOPS_BACKEND=azureml MLOPS_AZUREML_EMULATOR=1)."""

from __future__ import annotations

import argparse
import json

from cli.command import Command, Subparsers, add, group, json_argument
from deployments.emulator import emulator_process
from infra.settings import Settings


def up(settings: Settings, args: argparse.Namespace) -> int:
    process = emulator_process(settings)
    running = process.pid() is not None
    url = process.start()
    if args.json:
        report = {"url": url, "started": not running, "home": str(process.home), "ca_bundle": str(process.bundle)}
        print(json.dumps(report, indent=2, sort_keys=True))
        return 0
    print(f"Azure ML emulator {'running' if running else 'started'} at {url} (state in {process.home})")
    print(f"its CA: {process.bundle} (certifi's bundle + the emulator's CA); clients use it as")
    print(f"  export REQUESTS_CA_BUNDLE={process.bundle}")
    print("point the pipeline at it with MLOPS_BACKEND=azureml MLOPS_AZUREML_EMULATOR=1")
    return 0


def down(settings: Settings, args: argparse.Namespace) -> int:
    stopped = emulator_process(settings).stop()
    if args.json:
        print(json.dumps({"stopped": stopped}))
    else:
        print("stopped the Azure ML emulator" if stopped else "the Azure ML emulator was not running")
    return 0


def status(settings: Settings, args: argparse.Namespace) -> int:
    process = emulator_process(settings)
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


def register(commands: Subparsers) -> None:
    verbs = group(commands, "emulator", help="the local Azure ML emulator: up, down or status")
    for word, run, text in (
        ("up", up, "start the emulator (https, its own CA), or say where it runs"),
        ("down", down, "stop the emulator and the endpoints it serves"),
        ("status", status, "where it runs, its CA bundle, the requests served, the jobs and their status"),
    ):
        add(verbs, word, Command(f"emulator {word}", run), help=text, arguments=json_argument)
