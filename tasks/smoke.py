"""The smoke test: the model package's sample request, sent straight to the new deployment, whose answer must
equal what the bundle's own `score.py` answers here (MLOpsPython only checked that two numbers came back)."""

from __future__ import annotations

import math
import time

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from infra.backend import Backend, Invocation
from infra.errors import SmokeTestError, TransientBackendError
from infra.telemetry import current_traceparent
from tasks.rollout import RolloutPlan

RELATIVE_TOLERANCE = 1e-9
ABSOLUTE_TOLERANCE = 1e-12  # probabilities near 0
CHECK_HEADER = "x-mlops-check"  # the endpoint traces these requests but leaves them out of its collected data
_NOT_READY = {502, 503, 504}


def smoke_body(plan: RolloutPlan) -> bytes:
    """The model package's sample request (for the diabetes sample MLOpsPython's: `{"data": [[1..10], [10..1]]}`)."""
    return plan.request.encode()


def check_answer(answer: Invocation, expected: list[float] | None, deployment: str) -> str | None:
    """What is wrong with an answer to the smoke request, or None when it is right."""
    if answer.status != 200:
        return f"{deployment or 'endpoint'} answered {answer.status}: {answer.body[:200].decode(errors='replace')}"
    if expected is None:
        return f"the answer came from unexpected deployment {deployment!r}"
    try:
        result = answer.payload()["result"]
    except (ValueError, KeyError, TypeError):
        return f"{deployment} answered {answer.body[:200]!r}; expected a JSON object with a 'result' list"
    if not isinstance(result, list) or len(result) != len(expected):
        return f"{deployment} returned {result!r}; expected {len(expected)} predictions"
    if not all(
        isinstance(r, int | float) and math.isclose(r, e, rel_tol=RELATIVE_TOLERANCE, abs_tol=ABSOLUTE_TOLERANCE)
        for r, e in zip(result, expected, strict=True)
    ):
        return f"{deployment} returned {result}; the bundle predicts {expected} (relative tolerance {RELATIVE_TOLERANCE:g})"
    return None


@task(name="smoke-test", cache_policy=NO_CACHE)
def smoke_test_deployment(backend: Backend, plan: RolloutPlan, attempts: int = 30, delay_seconds: float = 1.0) -> float:
    """Send the smoke request to the new deployment (retrying while it gets ready); return the latency in ms."""
    # this task's span, which the endpoint continues; marked as a check, so it is not collected as live data
    headers = {**current_traceparent(), CHECK_HEADER: "smoke"}
    answer = None
    for _ in range(attempts):
        try:
            answer = backend.endpoints.invoke(plan.endpoint, smoke_body(plan), deployment=plan.new, headers=headers)
        except TransientBackendError:
            answer = None
        if answer is not None and answer.status not in _NOT_READY:
            break
        time.sleep(delay_seconds)
    problem = "no answer" if answer is None else check_answer(answer, plan.expected[plan.new], plan.new)
    _publish(plan, headers["traceparent"], answer, problem)
    if problem or answer is None:
        raise SmokeTestError(f"smoke test of {plan.model} on {plan.endpoint}/{plan.new} failed: {problem}")
    get_run_logger().info("smoke test passed in %.1f ms: %s", answer.latency_ms, answer.body.decode())
    return answer.latency_ms


def _publish(plan: RolloutPlan, trace: str, answer: Invocation | None, problem: str | None) -> None:
    response = "no answer" if answer is None else f"{answer.status} {answer.body.decode(errors='replace')}"
    lines = [
        f"# Smoke test: {'failed' if problem else 'passed'}",
        "",
        f"- deployment: `{plan.endpoint}/{plan.new}` serving `{plan.model}`",
        f"- request: `POST /score` with `azureml-model-deployment: {plan.new}` and `traceparent: {trace}`",
        f"- body: `{plan.request}`",
        f"- response: `{response}`",
        f"- expected (the bundle's score.py run here; for the baseline rows, the training's own predictions): `{plan.expected[plan.new]}`",
        f"- latency: {answer.latency_ms:.1f} ms" if answer else "- latency: —",
    ]
    if problem:
        lines.append(f"- problem: {problem}")
    create_markdown_artifact(markdown="\n".join(lines), key="smoke-test", description=problem or "passed")
