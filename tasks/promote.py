"""Tasks of the promote flow: choose the source version (refusing one that did not pass its gate), put it in the
shared registry with its lineage, register it in the target environment, make it the target's champion."""

from __future__ import annotations

import json
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event

from infra.backend import SHARED_MODEL, Backend, ModelVersion, Registration, Registry
from infra.errors import GateError
from infra.settings import Settings
from tasks._events import chain_label
from tasks._retry import retry_if_transient
from tasks.evaluate import CHAMPION_ALIAS

PROMOTED_EVENT = "mlops.model.promoted"
LINEAGE_TAGS = ("run_id", "data_sha256", "code_sha256", "experiment_name", "git_sha", "prefect_flow_run_id")


def shared_reference(shared: Registry, model: ModelVersion) -> str:
    """The shared copy's id when the shared registry is outside this machine (an Azure ML registry's
    `azureml://registries/...`), else ""."""
    asset_id = getattr(shared, "asset_id", None)
    return str(asset_id(model)) if callable(asset_id) else ""


def source_version(backend: Backend, name: str, version: int | None, environment: str) -> ModelVersion:
    """The version to promote: `version`, else the source environment's champion. One that is archived, or whose
    gate did not pass (registered with --skip-gate, or with no gate decision recorded), raises ModelError."""
    if version is None:
        model = backend.registry.get_alias(name, CHAMPION_ALIAS)
        if model is None:
            raise GateError(f"environment {environment!r} has no champion of {name!r}: run `mlops run` there first")
    else:
        model = backend.registry.get(name, version)
    if model.archived:
        raise GateError(f"{model.id} of environment {environment!r} is archived: it cannot be promoted")
    decision = model.properties.get("decision", "")
    if not decision or decision.startswith(("forced", "not promoted")):
        said = f"its gate said: {decision}" if decision else "it has no gate decision recorded"
        raise GateError(f"{model.id} of environment {environment!r} did not pass its gate, {said}")
    return model


def lineage(model: ModelVersion, environment: str, settings: Settings) -> dict[str, str]:
    """Where a promoted version comes from: its environment, workspace and model id, its training run, the hashes
    of its data and code, its metrics and its gate's decision (read from what train-register recorded)."""
    found = {
        "source_environment": environment,
        "source_workspace": str(settings.home) if settings.backend == "local" else settings.azure_workspace_name,
        "source_model_id": model.id,
        "source_content_hash": model.content_hash,
        "training_run": model.tags.get("run_id") or model.properties.get("job_name", ""),
        "data_sha256": model.tags.get("data_sha256", ""),
        "code_sha256": model.tags.get("code_sha256", ""),
        "metrics": model.properties.get("metrics", "{}"),
        "decision": model.properties.get("decision", ""),
    }
    if previous := model.properties.get("lineage"):  # promoted before (staging -> prod): keep the origin
        first = json.loads(previous)
        found = {**first, "promoted_through": ",".join(filter(None, [first.get("promoted_through", ""), environment]))}
    return found


@task(
    name="share-model", retries=2, retry_delay_seconds=2, retry_condition_fn=retry_if_transient, cache_policy=NO_CACHE
)
def share_model(shared: Registry, model: ModelVersion, found: dict[str, str]) -> Registration:
    """Put the version's files in the shared registry with its lineage; the same content returns the version there."""
    return _register(shared, model, found, "the shared registry")


@task(
    name="register-in-target",
    retries=2,
    retry_delay_seconds=2,
    retry_condition_fn=retry_if_transient,
    cache_policy=NO_CACHE,
)
def register_in_target(
    target: Backend, shared: ModelVersion, found: dict[str, str], environment: str, source: ModelVersion, reference: str
) -> Registration:
    """Register the shared copy in the target environment's registry, with the lineage. Its files are the shared
    copy's when they are on this machine, else the source version's (the same bytes: the same content hash);
    `reference`, the shared copy's id outside this machine (an Azure ML registry's), is kept as the property
    `shared_model`, and the target's deployments serve that copy."""
    files = shared.path if Path(shared.path).is_dir() else source.path
    extra = {SHARED_MODEL: reference} if reference else {}
    return _register(
        target.registry, shared.model_copy(update={"path": files}), found, f"environment {environment!r}", extra
    )


@task(
    name="reach-target", retries=1, retry_delay_seconds=2, retry_condition_fn=retry_if_transient, cache_policy=NO_CACHE
)
def reach_target(target: Backend, settings: Settings, environment: str) -> None:
    """Read the target's endpoint: a workspace that does not exist or cannot be reached fails here, before anything
    is written (a missing endpoint is fine: the deploy creates it)."""
    target.endpoints.get(settings.endpoint_name)
    get_run_logger().info("environment %r reached (%s)", environment, settings.backend)


def _register(
    registry: Registry, model: ModelVersion, found: dict[str, str], where: str, extra: dict[str, str] | None = None
) -> Registration:
    tags = {**model.tags, **{name: found[name] for name in ("source_environment", "training_run") if found.get(name)}}
    properties = {
        **model.properties,
        "decision": found["decision"],
        "lineage": json.dumps(found, sort_keys=True),
        **(extra or {}),
    }
    registration = registry.register(model.name, Path(model.path), tags=tags, properties=properties)
    verb = "registered" if registration.created else "already registered as"
    get_run_logger().info("%s: %s %s", where, verb, registration.model.id)
    return registration


@task(
    name="crown-in-target",
    retries=2,
    retry_delay_seconds=2,
    retry_condition_fn=retry_if_transient,
    cache_policy=NO_CACHE,
)
def crown_in_target(target: Backend, model: ModelVersion, source: str, environment: str) -> bool:
    """Make `model` the target's champion and emit `mlops.model.promoted`; False (and no event) when it already was."""
    current = target.registry.aliases(model.name).get(CHAMPION_ALIAS)
    if current == model.version:
        get_run_logger().info("%s is already the champion of %r", model.id, environment)
        return False
    target.registry.set_alias(model.name, CHAMPION_ALIAS, model.version)
    emit_event(
        event=PROMOTED_EVENT,
        resource={
            "prefect.resource.id": f"mlops.model.{model.name}",
            "prefect.resource.name": model.name,
            **chain_label(),
        },
        payload={
            "name": model.name,
            "version": model.version,
            "from": source,
            "to": environment,
            "content_hash": model.content_hash,
        },
    )
    get_run_logger().info("%s is the champion of %r; emitted %s", model.id, environment, PROMOTED_EVENT)
    return True
