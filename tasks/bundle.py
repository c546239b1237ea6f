"""Tasks that choose the model version to deploy and build its bundle."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from infra.backend import Backend, Bundle, ModelVersion
from infra.errors import MissingResourceError
from tasks._retry import retry_if_transient
from tasks.evaluate import CHAMPION_ALIAS


@task(name="resolve-model", cache_policy=NO_CACHE)
def resolve_model(backend: Backend, name: str, version: int | None) -> ModelVersion:
    """The version to deploy: `version` when given (MLOpsPython's artifactBuildId), else the champion."""
    if version is not None:
        return backend.registry.get(name, version)
    champion = backend.registry.get_alias(name, CHAMPION_ALIAS)
    if champion is None:
        msg = f"model {name!r} has no champion yet: run `mlops train` first, or pass a version"
        raise MissingResourceError(msg)
    get_run_logger().info("deploying the champion, %s", champion.id)
    return champion


@task(
    name="bundle-model", retries=2, retry_delay_seconds=2, retry_condition_fn=retry_if_transient, cache_policy=NO_CACHE
)
def bundle_model(backend: Backend, model: ModelVersion) -> Bundle:
    """The version's deployable bundle: the model, `score.py`, the pinned environment and a Dockerfile."""
    bundle = backend.bundles.build(model)
    get_run_logger().info("bundle of %s at %s", model.id, bundle.path)
    return bundle
