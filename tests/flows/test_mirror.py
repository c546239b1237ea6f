"""The rollout's optional mirror step: mirror traffic to the new deployment before any live traffic moves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flows.deploy import deploy
from tasks.rollout import RolloutPolicy
from tests.support.helpers import flow_workspace
from tests.support.prefect_api import artifacts_of


def test_a_mirror_step_mirrors_requests_to_the_new_deployment_first(
    prefect_server: str, seeded_template: Path, tmp_path: Path
) -> None:
    assert prefect_server
    home = tmp_path / "home"
    with flow_workspace(seeded_template, home):
        assert deploy(return_state=True).is_completed()
        policy = RolloutPolicy(steps=[50, 100], requests_per_step=30, mirror_percent=50)
        state = deploy(version=2, rollout=policy, return_state=True)
    assert state.is_completed(), state.message
    steps = json.loads(artifacts_of(state.state_details.flow_run_id)["traffic-steps"].data)
    assert [row["step"] for row in steps] == ["green mirror 50 %", "green 50 %", "green 100 %"]
    assert steps[0]["served"] == "blue 30, green 0"  # every live answer came from blue; the copies' answers are dropped
    log = home / "endpoints" / "diabetes-endpoint" / "server.log"
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    mirrored = [line for line in lines if line.get("mirror")]
    assert mirrored, "no request was mirrored"
    assert {line["deployment"] for line in mirrored} == {"green"}
    assert all(line["status"] == 200 for line in mirrored)
    state_file = json.loads((home / "endpoints" / "diabetes-endpoint" / "state.json").read_text())
    assert state_file["mirror"] == {}  # mirroring stopped before live traffic moved


def test_the_mirror_share_is_at_most_half() -> None:
    with pytest.raises(ValueError, match="less than or equal to 50"):
        RolloutPolicy(mirror_percent=60)
