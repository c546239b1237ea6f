"""What the pipeline's events carry besides their payload."""

from __future__ import annotations

from prefect.context import FlowRunContext


def chain_label() -> dict[str, str]:
    """`mlops.chain: "true"` on events from a flow run of its own, which the deployment triggers in prefect.yaml
    follow. Inside another flow (the `pipeline`), that flow continues the chain itself: "false", so nothing
    is triggered twice.

    A sub-flow's run records the parent's task run that started it (`parent_task_run_id`), so the flow-run
    context answers without a request (Prefect's `flow_run.get_parent_flow_run_id()` reads that task run
    from the server to name its flow run: one round trip per event, about 0.1 s each of an `mlops run`)."""
    context = FlowRunContext.get()
    nested = context is not None and context.flow_run is not None and context.flow_run.parent_task_run_id is not None
    return {"mlops.chain": "false" if nested else "true"}
