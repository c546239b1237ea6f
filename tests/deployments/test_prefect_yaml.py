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


def test_every_flow_is_deployed_once_and_auto_promote_twice() -> None:
    entrypoints = [d["entrypoint"] for d in _deployments()]
    assert sorted(entrypoints) == sorted(
        ["flows.auto_promote.auto_promote"] * 2  # on a deploy event, and on a schedule
        + [
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
        ]
    )


def test_triggers_pass_the_event_payload_to_parameters_that_exist() -> None:
    for deployment in _deployments():
        flow = load_flow_from_entrypoint(deployment["entrypoint"], use_placeholder_flow=False)
        for trigger in deployment.get("triggers", []):
            assert set(trigger["parameters"]) <= set(flow.parameters.properties), deployment["entrypoint"]
            assert all(
                value.startswith(("{{ event.payload.", "{{ event.resource['"))
                for value in trigger["parameters"].values()
            )


def test_auto_promote_starts_only_on_deploy_events_that_name_a_next_environment() -> None:
    [deployment] = [
        d for d in _deployments() if d["entrypoint"] == "flows.auto_promote.auto_promote" and d.get("triggers")
    ]
    [trigger] = deployment["triggers"]
    assert trigger["expect"] == ["mlops.model.deployed"]
    assert trigger["match"]["mlops.promote_to"] == "*"  # a missing label matches no pattern: no chain, no run
    assert "mlops.chain" not in trigger["match"]  # `mlops run`'s deploy (inside the pipeline) promotes too
    assert deployment["concurrency_limit"]["limit"] == 1
