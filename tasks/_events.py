"""What the pipeline's events carry besides their payload."""

from __future__ import annotations

from prefect.runtime import flow_run

from infra import environments


def chain_label() -> dict[str, str]:
    """`mlops.chain: "true"` on events from a flow run of their own, which the deployment triggers in prefect.yaml
    follow. Inside another flow (the `pipeline`), that flow continues the chain itself: "false", so nothing
    is triggered twice. And `mlops.environment`: the environment the event happened in."""
    return {
        "mlops.chain": "false" if flow_run.get_parent_flow_run_id() else "true",
        "mlops.environment": environments.current(),
    }


def promotion_label() -> dict[str, str]:
    """`mlops.promote_to: "staging[,qa]"` on a deployment's event when environments.toml has environments promoted
    from this one each time it deploys (`promote_on = "deployed"`); no label otherwise, so the
    `auto-promote/on-deployed` trigger, which needs it, starts nothing where no chain is declared."""
    targets = environments.load_environments().promoted_on("deployed", environments.current())
    return {"mlops.promote_to": ",".join(env.name for env in targets)} if targets else {}
