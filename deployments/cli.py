"""The `mlops` command: run the pipeline's flows on this machine and show what they left behind.

    mlops train [--alpha A] [--data CSV] [--force] [--metric M --direction D --min-improvement X]
    mlops status [--json]

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
from typing import Any

from infra.backend import open_backend
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
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"mlops: {exc}", file=sys.stderr)
        return 2
    for name, value in _PREFECT_DEFAULTS.items():
        os.environ.setdefault(name, value)
    command: Any = args.command
    try:
        return int(command(settings, args))
    except ConfigError as exc:
        print(f"mlops: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlops", description="MLOps on Prefect: train, register, inspect.")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train, gate against the champion, register and promote")
    train.add_argument("--data", help="training CSV (default: MLOPS_DATA_FILE, else the diabetes sample)")
    train.add_argument("--alpha", type=float, help="Ridge alpha, overriding the parameters file")
    train.add_argument("--force", action="store_true", help="register even if the gate says no")
    train.add_argument("--metric", default="mse", help="gate metric (default mse)")
    train.add_argument("--direction", choices=["minimize", "maximize"], default="minimize")
    train.add_argument("--min-improvement", type=float, default=0.0, help="required improvement (absolute)")
    train.add_argument("--promote-ties", action="store_true", help="promote a candidate equal to the champion")
    train.set_defaults(command=_train)

    status = commands.add_parser("status", help="registered models, the champion and the endpoint")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(command=_status)
    return parser


def _train(settings: Settings, args: argparse.Namespace) -> int:  # noqa: ARG001 - flows read settings themselves
    from flows.train_register import train_register
    from model.gate import GatePolicy

    try:
        gate = GatePolicy(args.metric, args.direction, args.min_improvement, args.promote_ties)
    except ValueError as exc:
        print(f"mlops train: {exc}", file=sys.stderr)
        return 2
    state = train_register(data=args.data, alpha=args.alpha, gate=gate, force=args.force, return_state=True)
    if not state.is_completed():
        print(f"mlops train: the flow ended {state.name}: {state.message}", file=sys.stderr)
        return 1
    result = state.result()
    SUMMARY.add(
        f"training: {'served from the cache (nothing changed)' if result.cache_hit else 'trained a new candidate'}"
    )
    SUMMARY.add(f"decision: {result.reason}")
    if result.registered is not None:
        created = "registered" if result.created else "already registered"
        SUMMARY.add(f"{created}: {result.registered.name} version {result.registered.version}")
    if result.champion is not None:
        SUMMARY.add(f"champion: {result.champion.name} version {result.champion.version}")
    return 0


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
    print(f"endpoint: {report['endpoint'] or 'none'}")
    return 0


def status_report(settings: Settings) -> dict[str, Any]:
    """`mlops status --json`: the backend, the workspace, every registered version and the endpoint."""
    backend = open_backend(settings)
    models = []
    for version in backend.registry.list():
        champion = backend.registry.aliases(version.name).get("champion") == version.version
        models.append({"name": version.name, "version": version.version, "tags": version.tags, "champion": champion})
    return {"backend": settings.backend, "home": str(settings.home), "models": models, "endpoint": None}


if __name__ == "__main__":
    sys.exit(main())
