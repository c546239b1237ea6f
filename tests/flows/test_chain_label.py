"""The chain label of the pipeline's events: "true" in a flow run of its own, "false" inside another flow."""

from __future__ import annotations

from prefect import flow

from tasks._events import chain_label


@flow
def _inner() -> dict[str, str]:
    return chain_label()


@flow
def _outer() -> tuple[dict[str, str], dict[str, str]]:
    return chain_label(), _inner()


def test_a_sub_flow_continues_its_parent_s_chain_and_a_flow_of_its_own_starts_one(prefect_server: str) -> None:
    outer, inner = _outer()
    dev = {"mlops.environment": "dev"}  # where it happened: the default environment here
    assert outer == {"mlops.chain": "true", **dev}
    assert inner == {"mlops.chain": "false", **dev}
    assert _inner() == {"mlops.chain": "true", **dev}  # the same flow run on its own
    assert chain_label() == {"mlops.chain": "true", **dev}  # no flow run at all
