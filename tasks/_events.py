"""What the pipeline's events carry besides their payload."""

from __future__ import annotations

from prefect.context import FlowRunContext

from infra import environments


def chain_label() -> dict[str, str]:
    """`mlops.chain: "true"` on events from a flow run of their own, which the deployment triggers in prefect.yaml
    follow. Inside another flow (the `pipeline`), that flow continues the chain itself: "false", so nothing
    is triggered twice. And `mlops.environment`: the environment the event happened in.

    A sub-flow's run records the parent's task run that started it (`parent_task_run_id`), so the flow-run
    context answers without a request (Prefect's `flow_run.get_parent_flow_run_id()` reads that task run
    from the server to name its flow run: one round trip per event, about 0.1 s each of an `mlops run`)."""
    context = FlowRunContext.get()
    nested = context is not None and context.flow_run is not None and context.flow_run.parent_task_run_id is not None
    return {"mlops.chain": "false" if nested else "true", "mlops.environment": environments.current()}


def promotion_label() -> dict[str, str]:
    """`mlops.promote_to: "staging[,qa]"` on a deployment's event when environments.toml has environments promoted
    from this one each time it deploys (`promote_on = "deployed"`); no label otherwise, so the
    `auto-promote/on-deployed` trigger, which needs it, starts nothing where no chain is declared."""
    targets = environments.load_environments().promoted_on("deployed", environments.current())
    return {"mlops.promote_to": ",".join(env.name for env in targets)} if targets else {}
