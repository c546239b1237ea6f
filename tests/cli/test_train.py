"""`mlops train` from the command line, against the session's Prefect server."""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli.early import endpoint_started_early, training_started_early
from infra.common.train_inputs import training_request
from infra.endpoint_server import LocalEndpoints
from infra.endpoint_server.config import EndpointConfig
from infra.local.backend import LocalBackend
from infra.settings import load_settings
from tests.support.cli import run_mlops
from tests.support.helpers import free_port

MODEL = "diabetes_regression_model.pkl"


def _mlops(*args: str, api_url: str, home: Path, port: int = 9) -> subprocess.CompletedProcess[str]:
    return run_mlops(*args, env={"MLOPS_HOME": str(home), "MLOPS_ENDPOINT_PORT": str(port)}, api_url=api_url)


def test_train_twice_registers_once_and_reports_the_cache_hit(prefect_server: str, tmp_path: Path) -> None:
    first = _mlops("train", api_url=prefect_server, home=tmp_path / "ws")
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[-2:] == [f"registered: {MODEL} version 1", f"champion: {MODEL} version 1"]

    second = _mlops("train", api_url=prefect_server, home=tmp_path / "ws")
    assert second.returncode == 0, second.stderr
    lines = second.stdout.splitlines()
    assert lines[0] == "training: served from the cache (nothing changed)"
    assert not any(line.startswith("registered:") for line in lines)
    assert lines[-1] == f"champion: {MODEL} version 1"


def test_bad_gate_argument_exits_2(tmp_path: Path) -> None:
    result = _mlops("train", "--min-improvement", "-1", api_url="http://127.0.0.1:9/api", home=tmp_path / "ws")
    assert result.returncode == 2
    assert "min_improvement must be a non-negative number" in result.stderr


def test_failed_flow_exits_1_with_the_reason(prefect_server: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("age,sex\n1,2\n")
    result = _mlops("train", "--data", str(bad), api_url=prefect_server, home=tmp_path / "ws")
    assert result.returncode == 1
    assert "no training job was started: bad.csv fails the data checks" in result.stderr  # [data.checks], first
    assert "column 'bmi': is missing from the file" in result.stderr


def test_the_endpoint_started_early_is_stopped_when_the_run_deploys_nothing(tmp_path: Path) -> None:
    """`mlops run` starts its endpoint as it begins (`endpoint_started_early`, entered before Prefect is reached); a
    run that ends without deploying (a failed data check, a gate that says no) stops the endpoint it started."""
    settings = load_settings(home=tmp_path / "ws", endpoint_port=free_port())
    endpoints = LocalEndpoints(settings.home / "endpoints", EndpointConfig.from_settings(settings))
    with endpoint_started_early(settings, argparse.Namespace()):
        deadline = time.monotonic() + 60  # the start runs in a thread beside the command
        while not endpoints.process(settings.endpoint_name).running() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert endpoints.process(settings.endpoint_name).running()
    state = endpoints.get(settings.endpoint_name)
    assert state is not None
    assert (state.running, state.deployments) == (False, {})
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", settings.endpoint_port), timeout=1).close()


def test_the_training_started_early_is_the_flow_s_job_and_bad_data_starts_none(tmp_path: Path) -> None:
    """`mlops run` starts its training job before Prefect is imported (`training_started_early`): the job the
    train-register flow's `resolve-training-inputs` names (the same `training_request`, with the backend's own
    name), found trained by the flow's call; data that fails the package's checks (run beside the job) leaves no
    job, nor does a run that ends before its flow takes the job."""
    settings = load_settings(home=tmp_path / "ws")
    with training_started_early(settings, argparse.Namespace(alpha=0.3)):
        pass  # the early training is over when the block ends
    backend = LocalBackend(settings)
    request = training_request(settings, backend.name, None, 0.3)
    assert sorted(p.name for p in (settings.home / "jobs").iterdir()) == [request.spec.job_name]
    log = settings.home / "jobs" / request.spec.job_name / "user_logs" / "std_log.txt"
    written = log.stat().st_mtime_ns
    output = backend.jobs.train(request.spec)
    assert (output.job_name, output.reattached) == (request.spec.job_name, False)
    assert log.stat().st_mtime_ns == written  # not run again

    bad = tmp_path / "bad.csv"
    bad.write_text("age,sex\n1,2\n")
    checked = load_settings(home=tmp_path / "bad-ws", data_file=bad)
    with training_started_early(checked, argparse.Namespace(alpha=None)):
        pass
    assert not any((checked.home / "jobs").glob("train-*"))

    interrupted = load_settings(home=tmp_path / "interrupted-ws")
    with pytest.raises(KeyboardInterrupt), training_started_early(interrupted, argparse.Namespace(alpha=None)):
        raise KeyboardInterrupt  # Ctrl-C as the run starts: the job started early stops, and is not waited for
    assert not any((interrupted.home / "jobs").glob("train-*"))


def test_run_ends_with_the_scoring_url_and_a_working_curl(prefect_server: str, tmp_path: Path) -> None:
    """`mlops run` (what `make run` calls): train, register, deploy; the printed curl command scores."""
    port = free_port()
    try:
        result = _mlops("run", api_url=prefect_server, home=tmp_path / "ws", port=port)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert f"deployed: {MODEL} version 1 on diabetes-endpoint (deployment blue, 100 %)" in lines
        assert lines[-3] == f"scoring URL: http://127.0.0.1:{port}/score"
        curl = lines[-1].strip()
        assert curl.startswith("curl -s ")
        answer = subprocess.run(shlex.split(curl), capture_output=True, text=True, check=True, timeout=30)
        assert len(json.loads(answer.stdout)["result"]) == 2
        # the endpoint writes a request's collected data off the hot path, up to 0.2 s after its answer
        # (infra/endpoint_server/collect.py, LOG_FLUSH_SECONDS): status read it too soon once in three runs
        collected = tmp_path / "ws" / "endpoints" / "diabetes-endpoint" / "collected"
        deadline = time.monotonic() + 10
        while not any(collected.glob("*.jsonl")) and time.monotonic() < deadline:
            time.sleep(0.05)
        status = json.loads(_mlops("status", "--json", api_url=prefect_server, home=tmp_path / "ws", port=port).stdout)
        health = status["endpoint"].pop("health")
        disk = status["endpoint"].pop("disk")  # bytes held against the retention caps
        assert disk["collected"]["cap_bytes"] == 1024 << 20
        assert 0 < disk["collected"]["held_bytes"] < 1 << 20
        assert status["endpoint"] == {
            "name": "diabetes-endpoint",  # on the local backend the default has no suffix: no region to share
            "url": f"http://127.0.0.1:{port}/score",
            "running": True,
            "deployments": {"blue": {"model": f"{MODEL}:1", "traffic": 100}},
        }
        assert (health["state"], health["supervised"], health["restarts"]) == ("running", True, 0)
        # `mlops monitor`: the run's scored rows (and the endpoint's collected requests) against the training data
        monitored = _mlops("monitor", api_url=prefect_server, home=tmp_path / "ws", port=port)
        assert monitored.returncode == 0, monitored.stderr
        verdict, report = monitored.stdout.splitlines()[-2:]
        compared = re.fullmatch(
            rf"drift: no feature drifted, (\d+) scoring rows against {MODEL}:1's training data", verdict
        )
        assert compared is not None, verdict
        assert int(compared.group(1)) >= 442  # the whole diabetes batch, at least
        assert json.loads(Path(report.removeprefix("drift report: ")).read_text())["model"] == f"{MODEL}:1"
    finally:
        stopped = _mlops("endpoint", "stop", api_url=prefect_server, home=tmp_path / "ws", port=port)
    assert stopped.stdout.strip() == "endpoint diabetes-endpoint: stopped"


def test_a_new_prefect_home_is_created_with_its_parents(tmp_path: Path, own_prefect_server: None) -> None:
    """Prefect alone fails with "unable to open database file" when PREFECT_HOME's parent is missing."""
    prefect_home = tmp_path / "not" / "yet" / "prefect"
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}  # a temporary server in that home
    env.update({"PREFECT_HOME": str(prefect_home), "MLOPS_HOME": str(tmp_path / "ws")})
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "workspace", "provision"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (prefect_home / "prefect.db").is_file()
    assert (tmp_path / "ws" / "registry.db").is_file()
