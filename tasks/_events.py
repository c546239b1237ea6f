"""What the pipeline's events carry besides their payload."""

from __future__ import annotations

from prefect.runtime import flow_run


def chain_label() -> dict[str, str]:
    """`mlops.chain: "true"` on events from a flow run of its own, which the deployment triggers in prefect.yaml
    follow. Inside another flow (the `pipeline`), that flow continues the chain itself: "false", so nothing
    is triggered twice."""
    return {"mlops.chain": "false" if flow_run.get_parent_flow_run_id() else "true"}
