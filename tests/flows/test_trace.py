"""One trace from the deploy flow run to each request it sends, read back with `mlops trace` and `mlops logs`.

A real deploy flow run on a real Prefect server against the real endpoint process; the spans are the
ones Prefect and the endpoint wrote under MLOPS_HOME/telemetry, the requests the endpoint's own log.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cli.main import main
from flows.deploy import deploy
from infra.telemetry import Span, read_spans
from tests.support.helpers import flow_workspace


@pytest.fixture(scope="module")
def traced(
    prefect_server: str,
    seeded_template: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("trace") / "home"
    with flow_workspace(seeded_template, home) as backend:
        state = deploy(return_state=True)
        assert state.is_completed(), state.message
        settings = backend.settings
        log = settings.home / "endpoints" / settings.endpoint_name / "server.log"
        flow_run_id = str(state.state_details.flow_run_id)
        # The endpoint writes its spans and its log lines off the hot path, each five times a second, in flushes of
        # their own: equal counts once could be both part-way (13 and 13 of 21, seen once), so the counts must also
        # hold still for half a second (two flushes of each) after the run, whose requests were all answered.
        deadline, seen, since = time.monotonic() + 10, (0, 0), time.monotonic()
        while time.monotonic() < deadline:
            spans = read_spans(settings.telemetry_dir)
            scored = [s for s in spans if s.name == "POST /score"]
            logged = [line for line in _lines(log) if line["path"] == "/score"]
            if (len(scored), len(logged)) != seen:
                seen, since = (len(scored), len(logged)), time.monotonic()
            elif scored and len(scored) == len(logged) and time.monotonic() - since >= 0.5:
                break
            time.sleep(0.1)
        yield {"spans": spans, "log": logged, "flow_run_id": flow_run_id}
        backend.endpoints.stop(settings.endpoint_name)


def _lines(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


def _by_run(spans: list[Span], run_id: str) -> Span:
    [span] = [s for s in spans if s.attributes.get("prefect.run.id") == run_id]
    return span


def _smoke_request(traced: dict[str, Any]) -> tuple[Span, Span]:
    spans: list[Span] = traced["spans"]
    [smoke_task] = [s for s in spans if s.name.startswith("smoke-test")]
    [request] = [s for s in spans if s.parent_id == smoke_task.span_id]
    return smoke_task, request


class TestOneTrace:
    def test_the_flow_run_and_its_tasks_carry_their_prefect_ids(self, traced: dict[str, Any]) -> None:
        flow = _by_run(traced["spans"], traced["flow_run_id"])
        assert flow.attributes["prefect.run.type"] == "flow"
        assert flow.attributes["mlops.flow"] == "deploy"
        tasks = [s for s in traced["spans"] if s.parent_id == flow.span_id]
        assert {s.name.rsplit("-", 1)[0] for s in tasks} >= {"bundle-model", "stage-deployment", "smoke-test"}
        assert all(s.run_type == "task" and s.attributes["prefect.run.id"] for s in tasks)
        assert {s.trace_id for s in tasks} == {flow.trace_id}

    def test_the_smoke_request_continues_the_flow_runs_trace(self, traced: dict[str, Any]) -> None:
        smoke_task, request = _smoke_request(traced)
        flow = _by_run(traced["spans"], traced["flow_run_id"])
        assert smoke_task.parent_id == flow.span_id
        assert request.trace_id == flow.trace_id
        [line] = [r for r in traced["log"] if r["request_id"] == request.attributes["mlops.request_id"]]
        assert (line["trace_id"], line["span_id"], line["parent_span_id"]) == (
            flow.trace_id,
            request.span_id,
            smoke_task.span_id,
        )
        assert line["deployment"] == request.attributes["mlops.deployment"] == "blue"
        assert line["model"].endswith(":1")

    def test_every_request_of_the_run_is_in_its_trace(self, traced: dict[str, Any]) -> None:
        flow = _by_run(traced["spans"], traced["flow_run_id"])
        assert len(traced["log"]) > 1  # the smoke request and the rollout's checks
        assert {line["trace_id"] for line in traced["log"]} == {flow.trace_id}


class TestCommands:
    def test_mlops_trace_of_a_request_prints_the_chain_from_the_flow_run(
        self, traced: dict[str, Any], capsys: pytest.CaptureFixture[str]
    ) -> None:
        smoke_task, request = _smoke_request(traced)
        request_id = request.attributes["mlops.request_id"]
        assert main(["trace", request_id]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[0] == f"trace {request.trace_id}"
        assert lines[1].startswith("flow run deploy ")
        assert f"[{traced['flow_run_id']}]" in lines[1]
        assert lines[2].strip().startswith(f"└ task run {smoke_task.name} [{smoke_task.attributes['prefect.run.id']}]")
        assert "POST /score → endpoint diabetes-endpoint deployment blue model" in lines[3]
        assert f"[request {request_id}]" in lines[3]
        assert '{"result":[' in lines[3]  # the prediction itself
        assert len(lines) == 4

    def test_mlops_trace_of_the_flow_run_prints_every_request(
        self, traced: dict[str, Any], capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert main(["trace", traced["flow_run_id"]]) == 0
        out = capsys.readouterr().out
        assert out.count("POST /score") == len(traced["log"])
        for line in traced["log"]:
            assert f"[request {line['request_id']}]" in out

    def test_mlops_logs_lists_the_requests_of_a_run(
        self, traced: dict[str, Any], capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert main(["logs", traced["flow_run_id"], "--last", "0", "--json"]) == 0
        shown = json.loads(capsys.readouterr().out)
        assert [r["request_id"] for r in shown] == [line["request_id"] for line in traced["log"]]

    def test_an_unknown_id_is_named(self, traced: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["trace", "no-such-request"]) == 1
        assert "no flow run, task run, request or trace 'no-such-request'" in capsys.readouterr().err
