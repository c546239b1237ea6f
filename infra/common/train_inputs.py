"""A training run's inputs and their fingerprints, without Prefect: what the train-register flow trains, and
what `mlops run` starts training before Prefect is imported (`cli.early`).

The training request is a pure function of the settings, the data file's bytes, the package's code, its
parameters and the installed libraries, so the flow's `resolve-training-inputs` task and the early start name
the same job (`train-<cache key>`).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from infra.backend import TrainSpec
from infra.common.hashing import code_sha256
from infra.settings import Settings
from model.errors import DataValidationError
from model.package import ModelPackage, capture_environment, file_sha256, read_parameters
from model.paths import command_environment


class TrainRequest(BaseModel):
    """A training run and the fingerprints its cache key is made of."""

    model_config = ConfigDict(frozen=True)

    spec: TrainSpec
    data_sha256: str
    code_sha256: str
    cache_key: str


def training_request(settings: Settings, backend_name: str, data: str | None, alpha: float | None) -> TrainRequest:
    """Pick the data file (writing the package's sample if none is set), read the parameters, fingerprint both."""
    package = settings.package
    data_file = Path(data) if data else settings.data_file
    if data_file is None:
        data_file = settings.default_data_file
        if not data_file.is_file():
            write_sample_data(package, data_file)
    if not data_file.is_file():
        raise DataValidationError(f"{data_file}: no such training data file")
    parameters = read_parameters(settings.parameters_file)
    if alpha is not None:
        parameters["alpha"] = alpha
    data_hash, code_hash = file_sha256(data_file), code_sha256(package.root)
    key_parts: dict[str, Any] = {
        "data": data_hash,
        "code": code_hash,
        "parameters": parameters,
        "environment": capture_environment(package.libraries),
        "backend": backend_name,
        "home": str(settings.home),
    }
    cache_key = hashlib.sha256(json.dumps(key_parts, sort_keys=True).encode()).hexdigest()
    spec = TrainSpec(
        job_name=f"train-{cache_key[:16]}",
        data=data_file.resolve(),
        parameters=parameters,
        timeout_seconds=settings.train_timeout_seconds,
        package=package.root,
    )
    return TrainRequest(spec=spec, data_sha256=data_hash, code_sha256=code_hash, cache_key=cache_key)


# What each package's sample-data command wrote, by package folder and command, for this process: a new
# workspace's pipeline needs the sample twice (training data, then the scoring input without the target),
# and the command is a Python process of its own.
_SAMPLES: dict[tuple[str, tuple[str, ...]], bytes] = {}
_SAMPLES_LOCK = threading.Lock()


def write_sample_data(package: ModelPackage, path: Path, *, for_scoring: bool = False) -> Path:
    """Run the package's sample-data command into `path` (without the target column when `for_scoring`).

    The command runs once per package in a process; a second call writes what the first one got."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    key = (str(package.root.resolve()), tuple(package.sample_command))
    with _SAMPLES_LOCK:  # the early start's thread and the flow's task: the command runs once
        _write_sample(package, key, staging)
    if for_scoring:
        import pandas as pd  # only for the scoring input: the early start (cli.early) must not wait for pandas

        frame = pd.read_csv(staging)
        frame.drop(columns=[package.target], errors="ignore").to_csv(staging, index=False)
    os.replace(staging, path)
    return path


def _write_sample(package: ModelPackage, key: tuple[str, tuple[str, ...]], staging: Path) -> None:
    if key in _SAMPLES:
        staging.write_bytes(_SAMPLES[key])
    else:
        command = package.command(
            package.sample_command, python=sys.executable, package=str(package.root), out=str(staging)
        )
        result = subprocess.run(
            command, capture_output=True, text=True, env=command_environment(), timeout=600, check=False
        )
        if result.returncode != 0 or not staging.is_file():
            staging.unlink(missing_ok=True)
            detail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["it wrote no file"]
            raise DataValidationError(f"the sample-data command of package {package.name} failed: {detail[0]}")
        _SAMPLES[key] = staging.read_bytes()
