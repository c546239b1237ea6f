"""Tasks of the deploy stage: stage the new deployment beside the live one, shift traffic with checks, retire the old.

`stage_deployment` runs inside a Prefect transaction. If anything after it fails (the smoke test, a
traffic check), its rollback hook puts all traffic back where it was and removes the new deployment;
the live deployment keeps serving throughout.
"""

from __future__ import annotations

import json
import statistics
import tomllib
from typing import Any

import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event
from prefect.transactions import Transaction, get_transaction

from infra.backend import Backend, Bundle, Endpoints, EndpointState, ModelVersion
from infra.errors import MissingResourceError, RolloutCheckError, SmokeTestError
from infra.factory import open_backend
from infra.settings import load_settings
from infra.telemetry import current_traceparent
from model.layout import PREDICTION_COLUMN, REFERENCE_FILE
from model.package import MANIFEST, ContractError
from model.scripts import score_each_here
from tasks._events import chain_label, promotion_label
from tasks._retry import retry_if_transient
from tasks.rollout import RolloutPlan, RolloutPolicy
from tasks.smoke import CHECK_HEADER, check_answer, smoke_body

SERVING_ALIAS = "serving"
DEPLOYED_EVENT = "mlops.model.deployed"
REFERENCE_ROWS_CHECKED = 3  # rows of the training's baseline in every smoke request
SLOTS = ("blue", "green")


@task(
    name="ensure-endpoint",
    retries=2,
    retry_delay_seconds=2,
    retry_condition_fn=retry_if_transient,
    cache_policy=NO_CACHE,
)
def ensure_endpoint(backend: Backend, name: str) -> EndpointState:
    """Create the endpoint if needed and start it if it is not serving."""
    state = backend.endpoints.ensure(name)
    get_run_logger().info("endpoint %s at %s: %s", name, state.url, state.traffic() or "no deployments yet")
    return state


def serves_fully(endpoint: EndpointState, model: ModelVersion) -> str | None:
    """The deployment serving `model` with 100 % of traffic, if there is one."""
    return next((n for n, d in endpoint.deployments.items() if d.model == model.id and d.traffic == 100), None)


def serves_newer(endpoint: EndpointState, model: ModelVersion) -> str | None:
    """The deployment serving a newer version of `model`'s name with 100 % of traffic, if there is one."""
    for name, info in endpoint.deployments.items():
        serving_name, _, version = info.model.rpartition(":")
        if serving_name == model.name and int(version) > model.version and info.traffic == 100:
            return name
    return None


@task(name="skip-superseded", cache_policy=NO_CACHE)
def skip_superseded(model: ModelVersion, endpoint: EndpointState, newer: str) -> str:
    """Say, in the log and in a `deploy-superseded` artifact, why `model` is not deployed; return the note."""
    note = f"superseded: {endpoint.deployments[newer].model} already serves 100 %"
    create_markdown_artifact(
        markdown=f"# Not deployed: {model.id}\n\n{note} of `{endpoint.name}` (deployment `{newer}`), so the "
        "older version is not rolled out over it. Deploy it on purpose with an explicit version and "
        "`skip_older=false` (a rollback).",
        key="deploy-superseded",
        description=note,
    )
    get_run_logger().info("%s not deployed, %s", model.id, note)
    return note


@task(name="stage-deployment", cache_policy=NO_CACHE)
def stage_deployment(backend: Backend, endpoint: EndpointState, bundle: Bundle) -> RolloutPlan:
    """Add the bundle as a new deployment at 0 % traffic, in the slot the live deployment does not use."""
    live = endpoint.live
    new = next(slot for slot in SLOTS if slot != live)
    request, trained = smoke_request(bundle)
    bundles = {new: bundle}
    if live is not None:
        live_model = endpoint.deployments[live].model
        name, _, version = live_model.rpartition(":")
        bundles[live] = backend.bundles.build(backend.registry.get(name, int(version)))
    previous = endpoint.traffic()
    # The answers the bundles' score.py give, computed in this process (which imports the scoring libraries anyway)
    # before the deployment is added: a bundle whose score.py fails here is never deployed. Not beside the add, in a
    # thread: loading a script sets AZUREML_MODEL_DIR in this process's environment, and the add's HTTP client reads
    # the environment (proxy variables) as it sends; a key that vanishes while it reads is a KeyError.
    expected = expected_results(bundles, request)
    backend.endpoints.add_deployment(endpoint.name, new, bundle)
    expected[new] = expected[new][: len(expected[new]) - len(trained)] + trained
    plan = RolloutPlan(
        endpoint=endpoint.name,
        new=new,
        live=live,
        model=bundle.model,
        previous_traffic=previous,
        expected=expected,
        request=request.decode(),
    )
    current = get_transaction()
    if current is not None:  # the deploy flow's transaction; its rollback hook reads the plan
        current.set("plan", plan)
    get_run_logger().info("staged %s as deployment %r at 0 %% beside %r", bundle.model, new, live)
    return plan


def smoke_request(bundle: Bundle) -> tuple[bytes, list[float]]:
    """The smoke request: the package's sample request, plus the first rows of the training's drift baseline
    (`reference.csv`) when it has one, with the predictions the training itself made for those rows.

    Those rows are what make the check independent of `score.py`: a scoring script that disagrees
    with the model as trained (say, R coefficients read in the wrong order) fails the smoke test.
    """
    body = json.loads(bundle.sample_request.read_bytes())
    reference = bundle.model_dir / REFERENCE_FILE
    manifest = bundle.path / "code" / MANIFEST
    if not reference.is_file() or not manifest.is_file():
        return json.dumps(body).encode(), []
    features = list(tomllib.loads(manifest.read_text())["data"]["features"])
    frame = pd.read_csv(reference, nrows=REFERENCE_ROWS_CHECKED)
    if any(name not in frame.columns for name in [*features, PREDICTION_COLUMN]):
        return json.dumps(body).encode(), []
    rows = [[float(value) for value in row] for row in frame[features].to_numpy()]
    trained = [float(value) for value in frame[PREDICTION_COLUMN]]
    return json.dumps({**body, "data": [*body["data"], *rows]}).encode(), trained


def expected_results(bundles: dict[str, Bundle], request: bytes) -> dict[str, list[float]]:
    """What each bundle's own `score.py` answers to `request` on the bundle's model files, run in this process
    (`score_each_here`): the values a deployment of the bundle must return, by slot."""
    answers = score_each_here([(b.score_script, b.model_dir) for b in bundles.values()], request)
    return {slot: _result(bundle, answer) for (slot, bundle), answer in zip(bundles.items(), answers, strict=True)}


def _result(bundle: Bundle, answer: Any) -> list[float]:
    if isinstance(answer, ContractError):
        raise SmokeTestError(f"{bundle.model}: its score.py fails on its own sample request here: {answer}")
    result = answer.get("result") if isinstance(answer, dict) else None
    if not isinstance(result, list):
        raise SmokeTestError(
            f'{bundle.model}: its score.py answered {str(answer)[:200]}; the contract is {{"result": [...]}}'
        )
    return result


@stage_deployment.on_rollback
def _roll_back(transaction: Transaction) -> None:
    plan: RolloutPlan = transaction.get("plan")
    roll_back(open_backend(load_settings()).endpoints, plan)


def roll_back(endpoints: Endpoints, plan: RolloutPlan) -> dict[str, int]:
    """Put traffic back exactly as it was, then remove the new deployment; return the traffic restored."""
    restore = plan.previous_traffic or {plan.new: 0}
    endpoints.set_mirror(plan.endpoint, {})
    endpoints.set_traffic(plan.endpoint, {**restore, plan.new: 0})
    endpoints.remove_deployment(plan.endpoint, plan.new)
    get_run_logger().warning(
        "rolled back: traffic restored to %s and deployment %r removed", restore or "none", plan.new
    )
    return restore


@task(name="shift-traffic", cache_policy=NO_CACHE)
def shift_traffic(backend: Backend, plan: RolloutPlan, policy: RolloutPolicy) -> list[dict[str, object]]:
    """Move traffic to the new deployment step by step, checking real requests through the endpoint at each step."""
    rows: list[dict[str, object]] = []
    if plan.live and policy.mirror_percent:
        rows.append(_mirror_step(backend, plan, policy))
    steps = policy.steps if plan.live else [100]
    for step in steps:
        traffic = dict.fromkeys(plan.previous_traffic, 0) | {plan.new: step}
        if plan.live:
            traffic[plan.live] = 100 - step
        backend.endpoints.set_traffic(plan.endpoint, traffic)
        row = _check_step(backend, plan, policy)
        rows.append({"step": f"{plan.new} {step} %", "traffic": _describe(traffic), **row})
        if row["verdict"] != "pass":
            _publish_rollout(plan, rows, failed=True)
            raise RolloutCheckError(f"traffic step {step} % to {plan.new!r} failed its check: {row['verdict']}")
    _publish_rollout(plan, rows, failed=False)
    return rows


def _mirror_step(backend: Backend, plan: RolloutPlan, policy: RolloutPolicy) -> dict[str, object]:
    """Mirror a share of requests to the new deployment while the live one answers them all, then stop mirroring.

    The copies' answers are dropped by the endpoint (as Azure ML's mirror traffic), so the check is that
    live answers stay right while the new deployment takes the extra load; watch its own logs or metrics
    for its answers.
    """
    backend.endpoints.set_mirror(plan.endpoint, {plan.new: policy.mirror_percent})
    try:
        row = _check_step(backend, plan, policy)
    finally:
        backend.endpoints.set_mirror(plan.endpoint, {})
    mirrored = {
        "step": f"{plan.new} mirror {policy.mirror_percent} %",
        "traffic": _describe(plan.previous_traffic),
        **row,
    }
    if row["verdict"] != "pass":
        _publish_rollout(plan, [mirrored], failed=True)
        raise RolloutCheckError(
            f"the mirror step copying {policy.mirror_percent} % to {plan.new!r} failed its check: {row['verdict']}"
        )
    return mirrored


def _check_step(backend: Backend, plan: RolloutPlan, policy: RolloutPolicy) -> dict[str, object]:
    latencies, served, problems = [], dict.fromkeys(plan.expected, 0), []
    for _ in range(policy.requests_per_step):
        answer = backend.endpoints.invoke(
            plan.endpoint, smoke_body(plan), headers={**current_traceparent(), CHECK_HEADER: "rollout"}
        )
        latencies.append(answer.latency_ms)
        deployment = answer.headers.get("azureml-model-deployment", "")
        served[deployment] = served.get(deployment, 0) + 1
        problem = check_answer(answer, plan.expected.get(deployment), deployment)
        if problem:
            problems.append(problem)
    slowest = max(latencies)
    if not problems and slowest > policy.max_latency_ms:
        problems.append(f"slowest answer {slowest:.1f} ms is over the {policy.max_latency_ms:g} ms limit")
    return {
        "requests": policy.requests_per_step,
        "served": _describe(served),
        "errors": len(problems),
        "p50 ms": round(statistics.median(latencies), 2),
        "max ms": round(slowest, 2),
        "verdict": problems[0] if problems else "pass",
    }


def _describe(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in sorted(counts.items()))


def _publish_rollout(plan: RolloutPlan, rows: list[dict[str, object]], *, failed: bool) -> None:
    outcome = "rolled back" if failed else "completed"
    create_table_artifact(
        table=rows, key="traffic-steps", description=f"{plan.model} to {plan.endpoint}/{plan.new}: rollout {outcome}"
    )


@task(
    name="retire-previous",
    retries=2,
    retry_delay_seconds=2,
    retry_condition_fn=retry_if_transient,
    cache_policy=NO_CACHE,
)
def retire_previous(backend: Backend, plan: RolloutPlan) -> EndpointState:
    """Remove every deployment but the new one (they take no traffic any more)."""
    state = backend.endpoints.get(plan.endpoint)
    if state is None:
        raise MissingResourceError(f"endpoint {plan.endpoint!r} disappeared during the deployment")
    for name in [n for n in state.deployments if n != plan.new]:
        state = backend.endpoints.remove_deployment(plan.endpoint, name)
        get_run_logger().info("removed deployment %r", name)
    return state


@task(
    name="record-serving",
    retries=2,
    retry_delay_seconds=2,
    retry_condition_fn=retry_if_transient,
    cache_policy=NO_CACHE,
)
def record_serving(backend: Backend, model: ModelVersion, endpoint: EndpointState, deployment: str) -> None:
    """Point the registry's `serving` alias at the model and announce `mlops.model.deployed`."""
    backend.registry.set_alias(model.name, SERVING_ALIAS, model.version)
    emit_event(
        event=DEPLOYED_EVENT,
        resource={
            "prefect.resource.id": f"mlops.endpoint.{endpoint.name}",
            "prefect.resource.name": endpoint.name,
            **chain_label(),
            **promotion_label(),
        },
        related=[{"prefect.resource.id": f"mlops.model.{model.name}", "prefect.resource.role": "model"}],
        payload={
            "name": model.name,
            "version": model.version,
            "endpoint": endpoint.name,
            "deployment": deployment,
            "scoring_url": endpoint.scoring_url,
        },
    )
    get_run_logger().info("%s serves 100 %% of %s; emitted %s", model.id, endpoint.name, DEPLOYED_EVENT)
