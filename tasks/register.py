"""Tasks of the register stage: register the candidate with its lineage, then make it the champion."""

from __future__ import annotations

import json

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event
from prefect.runtime import flow_run

from infra.backend import Backend, ModelVersion, Registration, TrainOutput
from infra.common.train_inputs import TrainRequest
from infra.provenance import git_sha
from infra.settings import Settings
from model.gate import Decision
from tasks._events import chain_label
from tasks._retry import retry_if_transient
from tasks.evaluate import CHAMPION_ALIAS

REGISTERED_EVENT = "mlops.model.registered"


@task(
    name="register-model",
    retries=2,
    retry_delay_seconds=2,
    retry_condition_fn=retry_if_transient,
    cache_policy=NO_CACHE,
)
def register_model(
    backend: Backend, settings: Settings, request: TrainRequest, candidate: TrainOutput, decision: Decision
) -> Registration:
    """Register the candidate's outputs; the same bytes registered before return that version instead."""
    tags = lineage_tags(settings, request, candidate)
    properties = {
        "metrics": json.dumps(candidate.metrics, sort_keys=True),
        "decision": decision.reason,
        "job_name": candidate.job_name,
        "cache_key": request.cache_key,
        **framework(settings, candidate),
    }
    registration = backend.registry.register(settings.model_name, candidate.outputs, tags=tags, properties=properties)
    verb = "registered" if registration.created else "already registered as"
    get_run_logger().info("%s %s", verb, registration.model.id)
    return registration


@task(
    name="promote-model", retries=2, retry_delay_seconds=2, retry_condition_fn=retry_if_transient, cache_policy=NO_CACHE
)
def promote_model(backend: Backend, model: ModelVersion) -> ModelVersion:
    """Move the registry's `champion` alias to this version and announce it with `mlops.model.registered`."""
    backend.registry.set_alias(model.name, CHAMPION_ALIAS, model.version)
    emit_event(
        event=REGISTERED_EVENT,
        resource={
            "prefect.resource.id": f"mlops.model.{model.name}",
            "prefect.resource.name": model.name,
            **chain_label(),
        },
        payload={"name": model.name, "version": model.version, "id": model.id, "content_hash": model.content_hash},
    )
    get_run_logger().info("%s is now the champion; emitted %s", model.id, REGISTERED_EVENT)
    return backend.registry.get(model.name, model.version)


AREAS = {"diabetes": "diabetes_regression"}  # MLOpsPython's `area` tag of the diabetes sample


def framework(settings: Settings, candidate: TrainOutput) -> dict[str, str]:
    """The package's framework (`[environment] framework`) and the version of its first library."""
    package = settings.package
    libraries = dict(candidate.environment.get("libraries", {}))  # type: ignore[call-overload]
    version = str(libraries.get(package.libraries[0], "")) if package.libraries else ""
    return {"framework": package.framework or "Custom", "framework_version": version}


def lineage_tags(settings: Settings, request: TrainRequest, candidate: TrainOutput) -> dict[str, str]:
    """Tags that let a version be traced back to its data, code, parameters, run and environment."""
    tags = {name: repr(value) for name, value in candidate.metrics.items()}
    tags |= {
        "area": AREAS.get(settings.package.name, settings.package.name),
        "experiment_name": settings.experiment_name,
        "run_id": candidate.job_name,
        "data_sha256": request.data_sha256,
        "code_sha256": request.code_sha256,
        "parameters": json.dumps(candidate.training.get("parameters", request.spec.parameters), sort_keys=True),
        "python": str(candidate.environment["python"]),
    }
    tags |= {f"lib.{name}": str(version) for name, version in candidate.environment["libraries"].items()}
    optional = {
        "prefect_flow_run_id": flow_run.get_id(),
        "git_sha": git_sha(),
        "BuildId": settings.build_id,
        "BuildUri": settings.build_uri,
    }
    tags |= {name: value for name, value in optional.items() if value}
    return tags
