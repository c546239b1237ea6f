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


@pytest.mark.parametrize("deployment", _deployments(), ids=lambda d: d["entrypoint"])
def test_entrypoint_is_a_flow_and_parameters_validate(deployment: dict[str, Any]) -> None:
    flow = load_flow_from_entrypoint(deployment["entrypoint"], use_placeholder_flow=False)
    assert isinstance(flow, Flow)
    flow.validate_parameters(deployment.get("parameters") or {})
    assert deployment["work_pool"]["name"]


def test_every_flow_is_deployed_once() -> None:
    entrypoints = [d["entrypoint"] for d in _deployments()]
    assert sorted(entrypoints) == sorted(
        f"flows.{m}"
        for m in (
            "train_register.train_register",
            "deploy.deploy",
            "batch_score.batch_score",
            "provision.provision",
            "cleanup.cleanup",
            "pipeline.pipeline",
            "monitor.monitor",
            "labels.labels",
        )
    )


def test_triggers_pass_the_event_payload_to_parameters_that_exist() -> None:
    for deployment in _deployments():
        flow = load_flow_from_entrypoint(deployment["entrypoint"], use_placeholder_flow=False)
        for trigger in deployment.get("triggers", []):
            assert set(trigger["parameters"]) <= set(flow.parameters.properties), deployment["entrypoint"]
            assert all("{{ event.payload." in value for value in trigger["parameters"].values())
