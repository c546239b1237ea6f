"""Tasks of the train stage: resolve the inputs, then train (cached on data, code and parameters)."""

from __future__ import annotations

import hashlib
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.context import TaskRunContext

from infra.backend import Backend, TrainOutput
from infra.common.train_inputs import TrainRequest, training_request
from infra.settings import Settings
from model import environment
from model.errors import DataValidationError
from model.package import ModelPackage
from tasks._retry import retry_if_transient


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
    request = training_request(settings, backend_name, data, alpha)
    spec, package = request.spec, settings.package
    get_run_logger().info(
        "package %s: training data %s (sha256 %s), parameters %s",
        package.name,
        spec.data,
        request.data_sha256[:12],
        spec.parameters,
    )
    return request


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
