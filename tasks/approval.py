"""The approval gate: the deploy flow pauses before production traffic moves and waits for a typed answer.

Answer in the Prefect UI (the paused run shows a form) or with `mlops approve` / `mlops approve --reject`.
No answer within the timeout counts as a rejection. A paused run carries the tag `mlops.env:<environment>`, so
`mlops approve --env prod` answers prod's run only.
"""

from __future__ import annotations

from uuid import UUID

from prefect import get_client, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from prefect.runtime import flow_run
from prefect.states import Running

from infra import environments
from tasks.rollout import RolloutPlan

ENVIRONMENT_TAG = "mlops.env:"


def environment_tag(name: str) -> str:
    """The tag of a deploy run of environment `name` waiting for approval."""
    return f"{ENVIRONMENT_TAG}{name}"


class Approval(RunInput):
    """A reviewer's answer: approve (or reject) moving traffic to the new deployment, and why."""

    approve: bool
    reviewer: str = ""
    comment: str = ""


def _tag_with_environment() -> str:
    """Tag this flow run with its environment (the one its settings come from), before it pauses."""
    name = environments.current()
    run_id = UUID(str(flow_run.get_id()))
    with get_client(sync_client=True) as client:
        tags = client.read_flow_run(run_id).tags
        client.update_flow_run(run_id, tags=sorted({*tags, environment_tag(name)}))
    return name


def _resume_after_timeout() -> None:
    """Put the paused run back to Running, so it can roll back and complete (Prefect would fail a run left Paused)."""
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(UUID(str(flow_run.get_id())), Running(), force=True)


def request_approval(plan: RolloutPlan, timeout_seconds: int, poll_seconds: int = 2) -> Approval:
    """Pause the flow run until a reviewer answers; a timeout is a rejection by nobody."""
    question = (
        f"Move production traffic of endpoint {plan.endpoint!r} to {plan.model} (deployment {plan.new!r})? "
        f"It passed its smoke test and takes 0 % of traffic now."
    )
    name = _tag_with_environment()
    get_run_logger().info("waiting up to %d s for approval in environment %r: %s", timeout_seconds, name, question)
    form = Approval.with_initial_data(description=question, approve=False)
    try:
        answer = pause_flow_run(wait_for_input=form, timeout=timeout_seconds, poll_interval=poll_seconds)
    except FlowPauseTimeout:
        _resume_after_timeout()
        answer = Approval(approve=False, reviewer="nobody", comment=f"no answer within {timeout_seconds} s")
    verdict = "approved" if answer.approve else "rejected"
    who = answer.reviewer or "an unnamed reviewer"
    create_markdown_artifact(
        markdown=f"# Deployment {verdict}\n\n- {question}\n- {verdict} by {who}\n- comment: {answer.comment or '—'}",
        key="approval",
        description=f"{verdict} by {who}",
    )
    return Approval(approve=answer.approve, reviewer=who, comment=answer.comment)
