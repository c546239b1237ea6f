"""Tasks of the evaluate stage: find the champion, and ask the gate whether the candidate beats it."""

from __future__ import annotations

import json

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, ConfigDict

from infra.backend import Backend, ModelVersion, TrainOutput
from infra.errors import GateError
from model.errors import ModelError
from model.gate import Decision, GatePolicy, decide

CHAMPION_ALIAS = "champion"


class Champion(BaseModel):
    """The model the candidate must beat, and where that answer came from."""

    model_config = ConfigDict(frozen=True)

    model: ModelVersion
    metrics: dict[str, float]
    source: str


def serving_version(backend: Backend, model_name: str, endpoint_name: str) -> ModelVersion | None:
    """The version of `model_name` serving 100 % of the running endpoint's traffic, if any."""
    endpoint = backend.endpoints.get(endpoint_name)
    for info in endpoint.deployments.values() if endpoint and endpoint.running else []:
        name, _, version = info.model.rpartition(":")
        if info.traffic == 100 and name == model_name:
            return backend.registry.get(name, int(version))
    return None


@task(name="find-champion", cache_policy=NO_CACHE)
def find_champion(backend: Backend, model_name: str, endpoint_name: str) -> Champion | None:
    """The version serving 100 % of the endpoint, else the registry's `champion` alias, else None (no model yet)."""
    serving = serving_version(backend, model_name, endpoint_name)
    if serving is not None:
        get_run_logger().info("champion is %s, serving 100 %% of endpoint %r", serving.id, endpoint_name)
        source = f"endpoint '{endpoint_name}' (100 % of traffic)"
        return Champion(model=serving, metrics=recorded_metrics(serving), source=source)
    current = backend.registry.get_alias(model_name, CHAMPION_ALIAS)
    if current is None:
        get_run_logger().info("no champion for %s yet", model_name)
        return None
    get_run_logger().info("champion is %s (registry alias %r)", current.id, CHAMPION_ALIAS)
    return Champion(model=current, metrics=recorded_metrics(current), source=f"registry alias '{CHAMPION_ALIAS}'")


@task(name="evaluate-model", cache_policy=NO_CACHE)
def evaluate_model(candidate: TrainOutput, champion: Champion | None, policy: GatePolicy, force: bool) -> Decision:
    """The gate's decision. Not promoting is an answer, not a failure."""
    try:
        decision = decide(
            candidate.metrics,
            champion.metrics if champion else None,
            policy,
            champion_version=champion.model.version if champion else None,
            force=force,
        )
    except ModelError as exc:
        raise GateError(str(exc)) from None
    get_run_logger().info(decision.reason)
    return decision


def recorded_metrics(model: ModelVersion) -> dict[str, float]:
    """The metrics a version was registered with (its `metrics` property), empty if it has none."""
    recorded: dict[str, float] = json.loads(model.properties.get("metrics", "{}"))
    return {name: float(value) for name, value in recorded.items()}
