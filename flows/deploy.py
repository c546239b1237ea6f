"""The deploy flow: package → endpoint → new deployment at 0 % → smoke test → traffic in steps → retire the old."""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.transactions import transaction
from pydantic import BaseModel, ConfigDict

from infra.backend import ModelVersion, open_backend
from infra.settings import load_settings
from tasks.deploy import ensure_endpoint, record_serving, retire_previous, serves_fully, shift_traffic, stage_deployment
from tasks.package import package_model, resolve_model
from tasks.rollout import RolloutPolicy
from tasks.smoke import smoke_test_deployment

DEFAULT_ROLLOUT = RolloutPolicy()


class DeployResult(BaseModel):
    """What a deploy run did; `changed=False` when the version already served all traffic."""

    model_config = ConfigDict(frozen=True)

    model: ModelVersion
    endpoint: str
    scoring_url: str
    deployment: str
    changed: bool


@flow(name="deploy")
def deploy(
    version: int | None = None, model_name: str | None = None, rollout: RolloutPolicy = DEFAULT_ROLLOUT
) -> DeployResult:
    """Deploy a model version (default: the champion) to the endpoint with blue/green traffic and automatic rollback."""
    settings = load_settings()
    backend = open_backend(settings)
    model = resolve_model(backend, model_name or settings.model_name, version)
    endpoint = ensure_endpoint(backend, settings.endpoint_name)
    already = serves_fully(endpoint, model)
    if already:
        get_run_logger().info(
            "%s already serves 100 %% of %s (deployment %r): nothing to do", model.id, endpoint.name, already
        )
        return DeployResult(
            model=model, endpoint=endpoint.name, scoring_url=endpoint.scoring_url, deployment=already, changed=False
        )
    # Package
    bundle = package_model(backend, model)
    # Deploy beside the live deployment, smoke-test it, shift traffic; a failure rolls everything back
    with transaction():
        plan = stage_deployment(backend, endpoint, bundle)
        smoke_test_deployment(backend, plan)
        shift_traffic(backend, plan, rollout)
    # Retire the old deployment and record what serves
    endpoint = retire_previous(backend, plan)
    record_serving(backend, model, endpoint, plan.new)
    return DeployResult(
        model=model, endpoint=endpoint.name, scoring_url=endpoint.scoring_url, deployment=plan.new, changed=True
    )
