"""`prefect.yaml` stays loadable: every entrypoint imports a flow and its parameters validate."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from prefect.flows import Flow, load_flow_from_entrypoint

from infra.settings import checkout_root


def _deployments() -> list[dict[str, Any]]:
    document = yaml.safe_load((checkout_root() / "prefect.yaml").read_text())
    deployments: list[dict[str, Any]] = document["deployments"]
    return deployments


@pytest.mark.parametrize("deployment", _deployments(), ids=lambda d: d["name"])
def test_entrypoint_is_a_flow_and_parameters_validate(deployment: dict[str, Any]) -> None:
    flow = load_flow_from_entrypoint(deployment["entrypoint"], use_placeholder_flow=False)
    assert isinstance(flow, Flow)
    flow.validate_parameters(deployment.get("parameters") or {})
    assert deployment["work_pool"]["name"]
