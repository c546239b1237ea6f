"""The deploy flow's approval gate on a real Prefect server: approve, reject, no answer."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.flow_runs import resume_flow_run

from flows.deploy import deploy
from tests.support.approvals import paused_deploy_runs
from tests.support.helpers import MODEL, flow_workspace
from tests.support.prefect_api import artifacts_of


def _answer_when_paused(answer: Any, timeout: float = 120) -> threading.Thread:
    """A reviewer in another thread: waits for the paused deploy run, then calls `answer(run_id)`."""

    def wait_and_answer() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            paused = paused_deploy_runs()
            if paused:
                answer(paused[0].id)
                return
            time.sleep(0.5)

    thread = threading.Thread(target=wait_and_answer, daemon=True)
    thread.start()
    return thread


@pytest.fixture(scope="module")
def story(
    prefect_server: str, seeded_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    with flow_workspace(seeded_template, tmp_path_factory.mktemp("approval") / "home") as backend:
        settings = backend.settings
        runs: dict[str, Any] = {}
        assert deploy(return_state=True).is_completed()  # version 1 serves; no approval asked
        env = {**os.environ, "PREFECT_API_URL": prefect_server}
        cli = [sys.executable, "-m", "cli.main", "approve", "--reviewer", "alice", "--comment", "looks good"]
        reviewer = _answer_when_paused(lambda run_id: subprocess.run([*cli, str(run_id)], env=env, check=True))
        runs["approved"] = deploy(version=2, require_approval=True, return_state=True)
        reviewer.join()
        answer = {"approve": False, "reviewer": "bob", "comment": "metrics look off"}
        reviewer = _answer_when_paused(lambda run_id: resume_flow_run(run_id, run_input=answer))
        runs["rejected"] = deploy(version=3, require_approval=True, return_state=True)
        reviewer.join()
        runs["after_rejection"] = backend.endpoints.get(settings.endpoint_name)
        runs["timed_out"] = deploy(version=3, require_approval=True, approval_timeout_seconds=3, return_state=True)
        runs["after_timeout"] = backend.endpoints.get(settings.endpoint_name)
        yield runs


def test_approved_traffic_moves(story: dict[str, Any]) -> None:
    state = story["approved"]
    assert state.is_completed()
    result = state.result()
    assert (result.changed, result.model.version, result.deployment) == (True, 2, "green")
    approval = artifacts_of(state.state_details.flow_run_id)["approval"].data
    assert "approved by alice" in approval
    assert "looks good" in approval


def test_rejected_old_deployment_serves_everything_and_the_flow_completes_with_the_reason(
    story: dict[str, Any],
) -> None:
    state = story["rejected"]
    assert state.is_completed()
    result = state.result()
    assert result.changed is False
    assert result.note == "rejected by bob: metrics look off"
    assert story["after_rejection"].traffic() == {"green": 100}
    assert story["after_rejection"].deployments["green"].model == f"{MODEL}:2"
    assert "traffic-steps" not in artifacts_of(state.state_details.flow_run_id)


def test_no_answer_is_a_rejection_by_nobody(story: dict[str, Any]) -> None:
    state = story["timed_out"]
    assert state.is_completed(), state
    assert state.result().note == "rejected by nobody: no answer within 3 s"
    assert story["after_timeout"].traffic() == {"green": 100}
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(state.state_details.flow_run_id).state.type == StateType.COMPLETED
