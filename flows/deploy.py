"""The deploy flow: package → endpoint → new deployment at 0 % → smoke test → traffic in steps → retire the old."""

from __future__ import annotations

from prefect import get_run_logger
from prefect.transactions import transaction
from pydantic import BaseModel, ConfigDict

from flows._flow import flow
from infra.backend import EndpointState, ModelVersion
from infra.factory import open_backend
from infra.settings import load_settings
from infra.telemetry import annotate
from tasks.approval import request_approval
from tasks.bundle import bundle_model, resolve_model
from tasks.deploy import (
    ensure_endpoint,
    record_serving,
    retire_previous,
    serves_fully,
    serves_newer,
    shift_traffic,
    skip_superseded,
    stage_deployment,
)
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
    note: str = ""

    @classmethod
    def of(
        cls, model: ModelVersion, endpoint: EndpointState, deployment: str, *, changed: bool, note: str = ""
    ) -> DeployResult:
        return cls(
            model=model,
            endpoint=endpoint.name,
            scoring_url=endpoint.scoring_url,
            deployment=deployment,
            changed=changed,
            note=note,
        )


@flow(name="deploy")
def deploy(
    version: int | None = None,
    model_name: str | None = None,
    rollout: RolloutPolicy = DEFAULT_ROLLOUT,
    require_approval: bool = False,
    approval_timeout_seconds: int = 3600,
    skip_older: bool = False,
) -> DeployResult:
    """Deploy a model version (default: the champion) to the endpoint with blue/green traffic and automatic rollback.

    With `require_approval`, the run pauses after the smoke test until a reviewer approves or rejects;
    a rejection (or no answer) removes the new deployment and completes, saying who and why.
    With `skip_older` (set on the event-triggered deployment), a version older than the one already
    serving 100 % is not deployed: queued deploys of a burst of promotions may start in any order,
    and the newest must be the one left serving. An explicit older `version` without it is a rollback.
    """
    annotate({"mlops.flow": "deploy"})
    settings = load_settings()
    backend = open_backend(settings)
    model = resolve_model(backend, model_name or settings.model_name, version)
    endpoint = ensure_endpoint(backend, settings.endpoint_name)
    if serving := serves_fully(endpoint, model):
        get_run_logger().info("%s already serves 100 %% of %s: nothing to do", model.id, endpoint.name)
        return DeployResult.of(model, endpoint, serving, changed=False)
    if skip_older and (newer := serves_newer(endpoint, model)):
        note = skip_superseded(model, endpoint, newer)
        return DeployResult.of(model, endpoint, newer, changed=False, note=note)
    # Bundle
    bundle = bundle_model(backend, model)
    # Deploy beside the live deployment, smoke-test it, (approve,) shift traffic; a failure rolls everything back
    with transaction() as staged:
        plan = stage_deployment(backend, endpoint, bundle)
        smoke_test_deployment(backend, plan)
        approval = request_approval(plan, approval_timeout_seconds) if require_approval else None
        if approval is not None and not approval.approve:
            staged.rollback()  # the live deployment keeps all traffic; the new one is removed
            note = f"rejected by {approval.reviewer}: {approval.comment or 'no reason given'}"
            get_run_logger().warning("%s not deployed, %s", model.id, note)
            return DeployResult.of(model, endpoint, plan.new, changed=False, note=note)
        shift_traffic(backend, plan, rollout)
    # Retire the old deployment and record what serves
    endpoint = retire_previous(backend, plan)
    record_serving(backend, model, endpoint, plan.new)
    return DeployResult.of(model, endpoint, plan.new, changed=True)
