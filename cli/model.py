"""`mlops model init|check|list`: a model package of your own, started; the model contract, checked; the
registered versions, listed. Old spellings: `mlops init`, `mlops check-model`.

Neither init nor check needs valid settings (a broken package must still be checkable) and neither
imports Prefect.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

from dotenv import dotenv_values

from cli.command import Command, Subparsers, add, group, json_argument, renamed_flag
from infra.sections import DERIVED, endpoint_name_for
from infra.settings import ENV_PREFIX, Settings, checkout_root, read_variable, variables
from model.check import Check, check_package
from model.datarows import write_checks
from model.package import MANIFEST, ContractError, ModelPackage, load_package, moved_package
from model.paths import command_environment

TEMPLATES = {"diabetes": "models/diabetes", "classification": "models/classification"}
_NAME = re.compile(r"^[a-z][a-z0-9_]{1,30}$")


def configured_package() -> Path:
    """MLOPS_MODEL_PACKAGE from the environment or the dotenv file, read without validating the rest."""
    path = Path(read_variable(f"{ENV_PREFIX}MODEL_PACKAGE") or "models/diabetes").expanduser()
    return moved_package(path if path.is_absolute() else checkout_root() / path)


def check_model(args: argparse.Namespace) -> int:
    folder = Path(args.package) if args.package else configured_package()
    print(f"checking the model package at {folder}", flush=True)
    return check_command(folder, keep=args.keep_workdir)


def print_checks(checks: list[Check]) -> int:
    """One line per check; exit code 0 when all pass, 2 when one does not."""
    for check in checks:
        mark = "ok     " if check.problem is None else "MISSING"
        print(f"{mark} {check.name}")
        if check.problem:
            print(f"        {check.problem}")
    failed = [check for check in checks if check.problem]
    print("the package meets the contract" if not failed else f"{len(failed)} problem(s): see above")
    return 2 if failed else 0


def check_command(root: Path, keep: bool = False) -> int:
    work = Path(tempfile.mkdtemp(prefix="mlops-check-model-"))
    try:
        return print_checks(check_package(root, work))
    finally:
        if keep:
            print(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def init(args: argparse.Namespace) -> int:
    """Start a model package named `args.name` from a sample and point the settings at it."""
    name: str = args.package_name
    if not _NAME.match(name):
        print(
            f"mlops init: {name!r}: use 2-31 lowercase letters, digits or '_', starting with a letter", file=sys.stderr
        )
        return 2
    root = checkout_root()
    source = root / TEMPLATES[args.source]
    if args.source == "diabetes":
        target = source  # as MLOpsPython's bootstrap.py did: the sample is renamed where it is
    else:
        target = root / "models" / name
        if target.exists() and not args.overwrite:
            print(f"mlops init: {target} exists (pass --overwrite to replace it)", file=sys.stderr)
            return 2
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", ".*"))
    model_name = f"{name}_model"
    _rename_manifest(target / MANIFEST, name, model_name)
    try:
        package = load_package(target)
    except ContractError as exc:
        print(f"mlops init: the new package does not load: {exc}", file=sys.stderr)
        return 2
    if problem := _write_starting_checks(package):
        print(f"mlops init: {problem}", file=sys.stderr)
        return 2
    # The one variable: every name that follows the package (endpoint, data assets, environments, scoring files)
    # is derived from its manifest's `name` and `model_name` (`mlops config show` lists them).
    values = {f"{ENV_PREFIX}MODEL_PACKAGE": target.relative_to(root).as_posix()}
    env_file = root / ".env"
    update_env_file(env_file, values)
    print(f"model package {name}: {target}")
    print(f"settings written to {env_file}: " + ", ".join(f"{key}={value}" for key, value in values.items()))
    print(
        "the names that follow the package are derived from it: "
        f"endpoint {endpoint_name_for(package, 'endpoint')}, model {model_name} (`mlops config show` lists all)"
    )
    kept = _derived_names_set(env_file)
    if kept:
        print(f"note: {env_file} also sets {', '.join(kept)}, which win over the derived names (remove them to follow)")
    print(
        "prefect.yaml needs no change: its deployments read the package from these settings "
        "(the worker of `mlops up` loads the same .env)"
    )
    print("next: mlops model check, then mlops run (README: Make it yours)")
    return 0


def _write_starting_checks(package: ModelPackage) -> str | None:
    """`[data.checks]` inferred from the package's sample data, written into its manifest; the problem, if any."""
    with tempfile.TemporaryDirectory(prefix="mlops-init-") as work:
        sample = Path(work) / "sample.csv"
        command = package.command(
            package.sample_command, python=sys.executable, package=str(package.root), out=str(sample)
        )
        result = subprocess.run(command, capture_output=True, text=True, env=command_environment(), check=False)
        if result.returncode != 0 or not sample.is_file():
            detail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["it wrote no file"]
            return f"the sample-data command failed, so no data checks were written: {detail[0]}"
        schema = write_checks(package.manifest, sample, package.features, package.target, online=package.schema.online)
    print(f"data checks: {len(schema.columns)} columns and at least {schema.min_rows} rows, from the sample data")
    return None


def _derived_names_set(env_file: Path) -> list[str]:
    """The variables of names derived from the package that `env_file` still sets (an earlier `mlops init` wrote
    them): they win over the derived names."""
    written = {key.upper() for key, value in dotenv_values(env_file).items() if value}
    return [name for field in sorted(DERIVED) for name in variables(field) if name in written]


def _rename_manifest(manifest: Path, name: str, model_name: str) -> None:
    """Set `name` and `model_name` in the manifest, keeping its comments and layout."""
    text = manifest.read_text()
    tomllib.loads(text)  # the template is valid TOML
    for key, value in (("name", name), ("model_name", model_name)):
        pattern = re.compile(rf'^{key}\s*=\s*"[^"]*"', re.MULTILINE)
        if not pattern.search(text):
            raise ContractError(f'{manifest}: no top-level {key} = "..." line to rename')
        text = pattern.sub(f'{key} = "{value}"', text, count=1)
    manifest.write_text(text)


def update_env_file(path: Path, values: dict[str, str]) -> None:
    """Set `values` in a dotenv file: a line that sets one is replaced, the others are appended; the rest is kept."""
    lines = path.read_text().splitlines() if path.is_file() else []
    pending = dict(values)
    kept = []
    for line in lines:
        key = line.split("=", 1)[0].strip().removeprefix("export ").strip()
        if key in pending and not line.lstrip().startswith("#"):
            kept.append(f"{key}={pending.pop(key)}")
        else:
            kept.append(line)
    if pending:
        kept += ["# written by `mlops init`", *(f"{key}={value}" for key, value in pending.items())]
    path.write_text("\n".join(kept) + "\n")


def list_models(settings: Settings, args: argparse.Namespace) -> int:
    """`mlops model list`: every registered version, its tags, the champion and its training job's metrics."""
    from cli.platform import model_lines, models_report
    from infra.factory import open_backend

    models = models_report(open_backend(settings))
    if args.json:
        print(json.dumps(models, indent=2))
        return 0
    for line in model_lines(models):
        print(line)
    return 0


def register(commands: Subparsers) -> None:
    verbs = group(commands, "model", help="your model package: init, check; the registered versions: list")
    add(
        verbs,
        "init",
        Command("model init", init, needs_settings=False),
        help="start a model package of your own from a sample; point the settings at it",
        arguments=_init_arguments,
        aliases=[(commands, "init")],
    )
    add(
        verbs,
        "check",
        Command("model check", check_model, needs_settings=False),
        help="run the model contract on a tiny sample; say what is missing",
        arguments=_check_arguments,
        aliases=[(commands, "check-model")],
    )
    add(
        verbs,
        "list",
        Command("model list", list_models),
        help="the registered versions, their tags and the champion",
        arguments=json_argument,
    )


def _init_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("package_name", metavar="NAME", help="the package's name: lowercase letters, digits, '_'")
    parser.add_argument(
        "--from",
        dest="source",
        choices=sorted(TEMPLATES),
        default="diabetes",
        help="diabetes: rename the sample in models/diabetes/ (as MLOpsPython's bootstrap.py); "
        "classification: copy the LightGBM classifier to models/NAME/",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing models/NAME/")
    renamed_flag(parser, "--force", "--overwrite", switch=True)


def _check_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "package", nargs="?", help="the package folder (default: MLOPS_MODEL_PACKAGE, else models/diabetes/)"
    )
    parser.add_argument("--keep-workdir", action="store_true", help="keep the work folder (data, outputs) for a look")
    renamed_flag(parser, "--keep", "--keep-workdir", switch=True)
