"""The train-register flow: check the data → train (cached) → evaluate against the champion → register → promote."""

from __future__ import annotations

from prefect import get_run_logger
from pydantic import BaseModel, ConfigDict

from flows._flow import flow
from infra.backend import Backend, ModelVersion, TrainOutput
from infra.factory import open_backend
from infra.settings import Settings, load_settings
from infra.telemetry import annotate
from model.gate import GatePolicy
from model.layout import METRICS_FILE
from tasks import (
    TrainRequest,
    check_training_data,
    evaluate_model,
    find_champion,
    promote_model,
    publish_evaluation,
    publish_model_card,
    publish_model_json,
    register_model,
    reserve_endpoint_names,
    resolve_training_inputs,
    train_model,
)


class TrainRegisterResult(BaseModel):
    """What a train-register run did. `promoted=False` is a normal, Completed outcome."""

    model_config = ConfigDict(frozen=True)

    promoted: bool
    reason: str
    cache_hit: bool
    registered: ModelVersion | None = None
    created: bool = False
    champion: ModelVersion | None = None


@flow(name="train-register")
def train_register(
    data: str | None = None, alpha: float | None = None, gate: GatePolicy | None = None, force: bool = False
) -> TrainRegisterResult:
    """Train on `data` (default: the configured CSV), gate against the champion, register and promote.

    `alpha` overrides the parameters file; `gate` defaults to the model package's metric and
    direction; `force` registers even when the gate says no (MLOpsPython's ALLOW_RUN_CANCEL=false).
    """
    annotate({"mlops.flow": "train-register"})
    settings = load_settings()
    gate = gate or package_gate(settings)
    backend = open_backend(settings)
    reserve_endpoint_names(backend)  # a name taken in the Azure region fails here, not after training
    # Train, served from the cache when data, code and parameters are unchanged
    request = resolve_training_inputs(settings, backend.name, data, alpha)
    check_training_data(settings.package, request)  # bad data ends the run here: no job is submitted
    candidate, cache_hit = _train(backend, request)
    # Evaluate against the champion
    champion = find_champion(backend, settings.model_name, settings.endpoint_name)
    decision = evaluate_model(candidate, champion, gate, force)
    publish_evaluation(request, candidate, champion, decision, cache_hit)
    if not decision.promoted:
        current = champion.model if champion else None
        return TrainRegisterResult(promoted=False, reason=decision.reason, cache_hit=cache_hit, champion=current)
    # Register and promote
    registration = register_model(backend, settings, request, candidate, decision)
    model = promote_model(backend, registration.model)
    publish_model_card(model, request, candidate, champion, decision)
    publish_model_json(model, settings.home)
    return TrainRegisterResult(
        promoted=True,
        reason=decision.reason,
        cache_hit=cache_hit,
        registered=model,
        created=registration.created,
        champion=model,
    )


def package_gate(settings: Settings) -> GatePolicy:
    """The gate the model package asks for (`[gate]` of its manifest)."""
    return GatePolicy(metric=settings.package.metric, direction=settings.package.direction)  # type: ignore[arg-type]


def _train(backend: Backend, request: TrainRequest) -> tuple[TrainOutput, bool]:
    """Train, noting a cache hit; a cached result whose files are gone is trained again."""
    state = train_model(backend, request, return_state=True)
    candidate: TrainOutput = state.result()
    cache_hit = state.name == "Cached"
    if cache_hit and not (candidate.outputs / METRICS_FILE).is_file():
        get_run_logger().warning("cached candidate %s is gone from disk; training again", candidate.outputs)
        return train_model.with_options(refresh_cache=True)(backend, request), False
    if cache_hit:
        get_run_logger().info("training served from the cache (job %s): nothing changed", candidate.job_name)
    return candidate, cache_hit
