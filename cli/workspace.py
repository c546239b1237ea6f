"""`mlops workspace provision|cleanup`: what the pipeline runs in (workspace, registry, storage, blocks),
created and tidied; both run a flow in this process. Old spellings: `mlops provision`, `mlops cleanup`."""

from __future__ import annotations

import argparse
import sys

from cli.command import Command, Subparsers, add, group, renamed_flag
from cli.pipeline import SUMMARY, finished
from infra.settings import Settings


def provision(settings: Settings, args: argparse.Namespace) -> int:  # noqa: ARG001
    from flows.provision import provision as flow

    changes = finished(flow(return_state=True), "workspace provision")
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
        print(
            f"mlops workspace cleanup --teardown deletes the {what}; pass --yes to confirm without a terminal",
            file=sys.stderr,
        )
        return False
    answer = input(f"This deletes the {what}.\nType {name!r} to confirm: ")
    return answer.strip() == name


def cleanup(settings: Settings, args: argparse.Namespace) -> int:
    from flows.cleanup import cleanup as flow

    if args.teardown and not args.yes and not _confirm_teardown(settings):
        print("mlops workspace cleanup: teardown not confirmed; nothing was changed", file=sys.stderr)
        return 1
    state = flow(
        keep_versions=args.keep_versions,
        stop_endpoint_server=args.stop_endpoint,
        delete_everything=args.teardown,
        return_state=True,
    )
    changes = finished(state, "workspace cleanup")
    if changes is None:
        return 1
    SUMMARY.add("\n".join(changes) or "cleanup: nothing to do")
    return 0


def register(commands: Subparsers) -> None:
    verbs = group(commands, "workspace", help="the workspace: provision or clean up")
    add(
        verbs,
        "provision",
        Command("workspace provision", provision, runs_flows=True),
        help="create the workspace, registry, blob containers and blocks",
        aliases=[(commands, "provision")],
    )
    add(
        verbs,
        "cleanup",
        Command("workspace cleanup", cleanup, runs_flows=True),
        help="remove idle deployments, archive old versions, scale idle compute to 0",
        arguments=_cleanup_arguments,
        aliases=[(commands, "cleanup")],
    )


def _cleanup_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--keep-versions", type=int, default=5, metavar="N", help="newest versions to keep (default 5)")
    renamed_flag(parser, "--keep", "--keep-versions", type=int, metavar="N")
    parser.add_argument("--stop-endpoint", action="store_true", help="also stop the local endpoint")
    parser.add_argument(
        "--teardown",
        action="store_true",
        help="also delete what provision created (the local workspace, or the Azure ML workspace and its resources)",
    )
    renamed_flag(parser, "--delete-everything", "--teardown", switch=True)
    parser.add_argument("--yes", action="store_true", help="do not ask before --teardown")
