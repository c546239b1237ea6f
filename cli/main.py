"""The `mlops` command: run the pipeline's flows on this machine and show what they left behind.

The pipeline's verbs, at the top level:
    mlops run [--alpha A] [--skip-gate]       train-register, then deploy the champion (the whole pipeline)
    mlops train [--alpha A] [--data CSV] [--skip-gate] [--metric M --direction D --min-improvement X]
    mlops deploy [--model-version N] [--steps 10,50,100]
    mlops batch-score [--input CSV|FOLDER|blob://c/p] [--output FOLDER|blob://c/p] [--model-version N | --tag NAME VALUE] ...
    mlops monitor [--scored CSV] [--model-version N] [--window-hours H] [--batch-only]   drift of the recent scoring data
    mlops approve [RUN_ID] [--reject] [--reviewer NAME] [--comment TEXT]
    mlops data-arrived [--path CSV]          emit mlops.data.arrived (starts train-register when the platform runs)
    mlops labels PATH                        ground truth → the live metric beside the training one (mlops.model.degraded)
    mlops labels-arrived PATH                emit mlops.labels.arrived (the labels flow runs when the platform runs)
    mlops status [--json]                    registered models, the champion, the endpoint and the platform
    mlops trace ID [--json]                  a request's path from its flow run (or a run's spans)
    mlops logs [RUN_ID] [--last N] [--json]  a flow run's endpoint requests, or the endpoint's latest
Then noun, verb:
    mlops platform up | down | status [--json]   the local platform: Prefect server + UI, work pool, deployments, worker
    mlops workspace provision | cleanup [--keep-versions N] [--stop-endpoint] [--teardown [--yes]]
    mlops endpoint status [--json] | stop [--json] | logs [--last N] [--json]
    mlops emulator up | down | status [--json]   the local Azure ML emulator (MLOPS_BACKEND=azureml MLOPS_AZUREML_EMULATOR=1)
    mlops model init NAME [--from diabetes|classification] [--overwrite]   a model package of your own, and its settings
    mlops model check [FOLDER] [--keep-workdir]   the model contract, run on a tiny sample (exit 2: what is missing)
    mlops model list [--json]                the registered versions, their tags and the champion
    mlops config show [--json]               every setting, its value and where it came from
    mlops promote --to NAME [--from NAME] [--model-version N]   promote a champion into another environment
    mlops --version                          the project's version

Every command takes `--env NAME` (or MLOPS_ENV; default dev): the environment of `environments.toml` it works in.

Deprecated spellings, still accepted with one line on stderr naming the new one: `mlops up|down`
(platform up|down), `mlops provision|cleanup` (workspace ...), `mlops init` (model init), `mlops check-model`
(model check); the flags `--force` (--skip-gate on run/train, --overwrite on init), `--keep` (--keep-versions
on cleanup, --keep-workdir on check-model), `--version` after deploy/batch-score (--model-version) and
`--delete-everything` (--teardown).

Settings come from `MLOPS_*` variables and `.env` (see `.env.example`); a bad one stops the command
before any work, naming the variable. Exit codes: 0 done (a model that is not promoted is done too),
1 a flow failed (or a platform process would not start), 2 bad settings or arguments.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from contextlib import AbstractContextManager, ExitStack, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from cli import config, emulator, endpoint, loop, model, pipeline, platform, telemetry, workspace
from cli.command import Command, warn_if_deprecated
from infra import environments
from infra.errors import BackendError, ConfigError
from infra.settings import Settings, load_settings
from model.paths import code_root

# The command groups, in the order `mlops --help` lists them; each registers its commands (cli/command.py).
# A new group is a module with `register(commands)`, added here.
_GROUPS = (pipeline, loop, platform, workspace, endpoint, emulator, model, config, telemetry)

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
    """The `mlops` program: Prefect's defaults for a small machine, the command, then its summary; returns
    the exit code (`python -m cli.main` and the `mlops` script exit with it).

    As the process's own command (no `argv`), what is alive at the end is frozen out of the garbage collector
    (`gc.freeze`): the interpreter's collections at exit then skip it, which were 0.6-1.2 s after a flow run
    (issue 27) spent freeing memory the process gives back as it ends. Exit handlers run as always."""
    for name, value in _PREFECT_DEFAULTS.items():
        os.environ.setdefault(name, value)
    outcome = invoke(argv)
    sys.stderr.flush()
    for line in outcome.summary:
        print(line, flush=True)
    if argv is None:
        gc.freeze()
    return outcome.code


def invoke(argv: list[str] | None = None) -> Outcome:
    """Run one `mlops` command in this process and return its outcome; nothing is printed at exit and no
    environment variable is changed (the Prefect API a command uses is set in Prefect's settings context).
    A bad argument, `--help` and `--version` return argparse's exit code instead of exiting."""
    try:
        argv, chosen = _environment_option(list(sys.argv[1:] if argv is None else argv))
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse has printed the usage, the help or the version
        return Outcome(exc.code if isinstance(exc.code, int) else 2)
    try:
        with environments.using(chosen or environments.current()):
            return _invoke(args)
    except ConfigError as exc:  # an unknown environment, a malformed environments file
        print(f"mlops: {exc}", file=sys.stderr)
        return Outcome(2)


def _environment_option(argv: list[str]) -> tuple[list[str], str | None]:
    """Take the global `--env NAME` (or `--env=NAME`) out of `argv`, wherever it stands before a `--`."""
    rest: list[str] = []
    chosen: str | None = None
    index = 0
    while index < len(argv):
        word = argv[index]
        if word == "--":
            rest += argv[index:]
            break
        if word == "--env":
            if index + 1 >= len(argv):
                _parser().error("argument --env: expected one argument (an environment's name)")
            chosen = argv[index + 1]
            index += 2
            continue
        if word.startswith("--env="):
            chosen = word.removeprefix("--env=")
        else:
            rest.append(word)
        index += 1
    return rest, chosen


def _invoke(args: argparse.Namespace) -> Outcome:
    command: Command = args.command
    typed = (
        getattr(args, "deprecated_spelling", None) or f"mlops {command.name}"
    )  # as the user typed it, for the messages
    warn_if_deprecated(args)
    pipeline.SUMMARY.take()  # a command's summary is its own
    if not command.needs_settings:  # a model package the settings may not accept yet
        return Outcome(int(command.run(args)))
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"mlops: {exc}", file=sys.stderr)
        return Outcome(2)
    if os.environ.get("PREFECT_HOME"):  # Prefect creates its home but not the folders above it
        Path(os.environ["PREFECT_HOME"]).expanduser().mkdir(parents=True, exist_ok=True)
    try:
        with ExitStack() as stack:
            if command.prepare is not None:
                stack.enter_context(command.prepare(settings, args))
            stack.enter_context(_prefect_api(settings, temporary=command.runs_flows))
            if command.runs_flows:
                stack.enter_context(pipeline.in_this_process())
            code = int(command.run(settings, args))
    except (ConfigError, ValueError) as exc:
        print(f"{typed}: {exc}", file=sys.stderr)
        code = 2
    except BackendError as exc:  # a platform process would not start, a database would not answer, ...
        print(f"{typed}: {exc}", file=sys.stderr)
        code = 1
    return Outcome(code, pipeline.SUMMARY.take())


def _prefect_api(settings: Settings, *, temporary: bool) -> AbstractContextManager[object]:
    """The Prefect API the command talks to: PREFECT_API_URL when set; else the server `mlops platform up` started
    (so runs show in its UI); else, for a command that runs flows, a temporary server of its own."""
    from prefect.settings import temporary_settings

    from deployments.temporary_server import api_settings, temporary_server

    if "PREFECT_API_URL" in os.environ:  # read now, not when Prefect was imported
        return temporary_settings(updates=api_settings(os.environ["PREFECT_API_URL"]))
    from deployments.platform import Platform

    platform = Platform(settings)
    if platform.running():
        return temporary_settings(updates=api_settings(platform.api_url))
    if temporary:
        return temporary_server()  # one that stops with this command, even on kill -9
    return nullcontext()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlops",
        description="MLOps on Prefect: train, register, deploy, inspect.",
        epilog="Old spellings still work, with one deprecation line: up, down (platform up|down), provision, cleanup "
        "(workspace provision|cleanup), init, check-model (model init|check).",
    )
    parser.add_argument("--version", action="version", version=f"mlops {project_version()}")
    parser.add_argument(
        "--env",
        metavar="NAME",
        help="the environment to work in, before or after the command (default: MLOPS_ENV, else dev; see "
        "environments.toml)",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    for group in _GROUPS:
        group.register(commands)
    return parser


def project_version() -> str:
    """The project's version: the installed distribution's, else pyproject.toml's (a checkout not installed)."""
    pyproject = code_root() / "pyproject.toml"
    if pyproject.is_file():  # the checkout this code runs from, which an editable install may not point at
        import tomllib

        return str(tomllib.loads(pyproject.read_text())["project"]["version"])
    from importlib.metadata import version

    return version("mlops-prefect")


if __name__ == "__main__":
    sys.exit(main())
