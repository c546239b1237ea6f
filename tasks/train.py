"""Tasks of the train stage: resolve the inputs, then train (cached on data, code and parameters)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.context import TaskRunContext
from pydantic import BaseModel, ConfigDict

from infra.backend import Backend, TrainOutput, TrainSpec
from infra.common.hashing import code_sha256
from infra.settings import Settings
from model import environment
from model.errors import DataValidationError
from model.package import ModelPackage, capture_environment, file_sha256, read_parameters
from model.paths import command_environment
from tasks._retry import retry_if_transient


class TrainRequest(BaseModel):
    """A training run and the fingerprints its cache key is made of."""

    model_config = ConfigDict(frozen=True)

    spec: TrainSpec
    data_sha256: str
    code_sha256: str
    cache_key: str


@task(
    name="reserve-endpoint-names",
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=retry_if_transient,
    cache_policy=NO_CACHE,
)
def reserve_endpoint_names(backend: Backend) -> list[str]:
    """Before anything trains: the endpoint names are this workspace's (on Azure ML they are unique per region
    across all customers, and a taken one would fail only at deploy, after training and registering)."""
    created = backend.workspace.reserve_names()
    for change in created:
        get_run_logger().info(change)
    return created


@task(name="resolve-training-inputs", cache_policy=NO_CACHE)
def resolve_training_inputs(
    settings: Settings, backend_name: str, data: str | None, alpha: float | None
) -> TrainRequest:
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
    get_run_logger().info(
        "package %s: training data %s (sha256 %s), parameters %s", package.name, data_file, data_hash[:12], parameters
    )
    return TrainRequest(spec=spec, data_sha256=data_hash, code_sha256=code_hash, cache_key=cache_key)


def _check_cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:  # noqa: ARG001
    """The same bytes against the same checks get the same verdict: a passed check is served from Prefect's cache
    (an unchanged re-run, or the same data in a new workspace, does not import pandera and check again). A failed
    check raises, and a failure is never cached."""
    package: ModelPackage = parameters["package"]
    request: TrainRequest = parameters["request"]
    checks = repr((package.schema.columns, package.schema.min_rows, package.features, package.target))
    return f"check-training-data-{request.data_sha256}-{hashlib.sha256(checks.encode()).hexdigest()[:16]}"


@task(name="check-training-data", cache_key_fn=_check_cache_key, persist_result=True)
def check_training_data(package: ModelPackage, request: TrainRequest) -> str:
    """Before any training job: the training data against the package's `[data.checks]` (pandera). A failure
    publishes the `data-check` artifact (each failing column, its check and its first rows) and fails the run."""
    if not package.schema.declared:
        message = f"package {package.name} declares no [data.checks]: the training data is not checked"
        get_run_logger().info(message)
        return message
    from model.validation import check_file  # pandera, imported only when a check runs

    report = check_file(request.spec.data, package.schema, (*package.features, package.target))
    if not report.passed:
        create_markdown_artifact(markdown=report.markdown(), key="data-check", description=report.message()[:200])
        raise DataValidationError(f"no training job was started: {report.message()}")
    get_run_logger().info(report.message())
    return report.message()


# What each package's sample-data command wrote, by package folder and command, for this process: a new
# workspace's pipeline needs the sample twice (training data, then the scoring input without the target),
# and the command is a Python process of its own (1.5 s for the diabetes sample, scikit-learn's import).
_SAMPLES: dict[tuple[str, tuple[str, ...]], bytes] = {}


def write_sample_data(package: ModelPackage, path: Path, *, for_scoring: bool = False) -> Path:
    """Run the package's sample-data command into `path` (without the target column when `for_scoring`).

    The command runs once per package in a process; a second call writes what the first one got."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    key = (str(package.root.resolve()), tuple(package.sample_command))
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
    if for_scoring:
        frame = pd.read_csv(staging)
        frame.drop(columns=[package.target], errors="ignore").to_csv(staging, index=False)
    os.replace(staging, path)
    return path


def _training_cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:  # noqa: ARG001
    request: TrainRequest = parameters["request"]
    return f"train-model-{request.cache_key}"


@task(
    name="train-model",
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=retry_if_transient,
    cache_key_fn=_training_cache_key,
    persist_result=True,
)
def train_model(backend: Backend, request: TrainRequest) -> TrainOutput:
    """Run the training job; a repeat with the same data, code and parameters is served from Prefect's cache."""
    environment.waiting()  # the libraries the pipeline needs next import while the job runs
    output = backend.jobs.train(request.spec)
    how = "re-attached to finished job" if output.reattached else "trained"
    get_run_logger().info("%s %s: %s", how, output.job_name, _format_metrics(output.metrics))
    return output


def _format_metrics(metrics: dict[str, float]) -> str:
    return ", ".join(f"{name}={value:.6g}" for name, value in sorted(metrics.items()))
