"""`mlops check-model` and `mlops init`: the model contract, checked; a model package of your own, started.

Neither needs valid settings (a broken package must still be checkable) and neither imports Prefect.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import tomllib
from pathlib import Path

from dotenv import dotenv_values

from infra.settings import ENV_PREFIX, checkout_root
from model.check import Check, check_package
from model.package import MANIFEST, ContractError, load_package, moved_package

TEMPLATES = {"diabetes": "models/diabetes", "classification": "models/classification"}
_NAME = re.compile(r"^[a-z][a-z0-9_]{1,30}$")


def configured_package() -> Path:
    """MLOPS_MODEL_PACKAGE from the environment or the dotenv file, read without validating the rest."""
    import os

    value = os.environ.get(f"{ENV_PREFIX}MODEL_PACKAGE")
    if value is None:
        chosen = os.environ.get(f"{ENV_PREFIX}ENV_FILE")
        files = [Path(chosen)] if chosen else [] if chosen == "" else [checkout_root() / ".env", Path.cwd() / ".env"]
        for file in files:
            if file.is_file():
                value = dotenv_values(file).get(f"{ENV_PREFIX}MODEL_PACKAGE") or value
    path = Path(value or "models/diabetes").expanduser()
    return moved_package(path if path.is_absolute() else checkout_root() / path)


def check_model(args: argparse.Namespace) -> int:
    folder = Path(args.package) if args.package else configured_package()
    print(f"checking the model package at {folder}", flush=True)
    return check_command(folder, keep=args.keep)


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
        if target.exists() and not args.force:
            print(f"mlops init: {target} exists (pass --force to replace it)", file=sys.stderr)
            return 2
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", ".*"))
    model_name = f"{name}_model"
    _rename_manifest(target / MANIFEST, name, model_name)
    try:
        load_package(target)
    except ContractError as exc:
        print(f"mlops init: the new package does not load: {exc}", file=sys.stderr)
        return 2
    endpoint = f"{name.replace('_', '-')}-endpoint"[:32]
    values = {
        "MODEL_PACKAGE": target.relative_to(root).as_posix(),
        "MODEL_NAME": model_name,
        "ENDPOINT_NAME": endpoint,
        "DATASET_NAME": f"{name}_ds",
        "SCORING_DATASET_NAME": f"{name}_scoring_ds",
        "SCORING_INPUT_FILENAME": f"{name}_scoring_input.csv",
        "SCORING_OUTPUT_FILENAME": f"{name}_scoring_output.csv",
        "AML_ENV_NAME": f"{name}_training_env",
        "AML_ENV_NAME_SCORING": f"{name}_scoring_env",
        "AML_BATCH_ENDPOINT_NAME": f"{name.replace('_', '-')}-batch"[:32],
    }
    env_file = root / ".env"
    update_env_file(env_file, {f"{ENV_PREFIX}{key}": value for key, value in values.items()})
    print(f"model package {name}: {target}")
    print(
        f"settings written to {env_file}: " + ", ".join(f"{ENV_PREFIX}{key}={value}" for key, value in values.items())
    )
    print(
        "prefect.yaml needs no change: its deployments read the package from these settings "
        "(the worker of `mlops up` loads the same .env)"
    )
    print("next: mlops check-model, then mlops run (README: Make it yours)")
    return 0


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
