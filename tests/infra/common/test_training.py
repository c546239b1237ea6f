"""What both training backends and the emulator's job runner share (infra/common/training.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from infra.common.training import MAX_ATTEMPTS, attempt_name, collect_outputs, job_error, run_logged
from model import layout


def test_attempts_are_named_base_then_r1_r2() -> None:
    assert [attempt_name("train-abc", n) for n in range(3)] == ["train-abc", "train-abc-r1", "train-abc-r2"]
    assert MAX_ATTEMPTS == 100


def test_a_failed_jobs_error_is_its_last_error_line_else_its_tail() -> None:
    assert job_error("starting\nerror: first\nmore\nerror: the column age is missing\n") == "the column age is missing"
    lines = [f"line {n}" for n in range(30)]
    assert job_error("\n".join(lines)) == "\n".join(lines[-20:])


def test_run_logged_returns_the_exit_code_with_the_output_in_the_log(tmp_path: Path) -> None:
    log = tmp_path / "std_log.txt"
    code = "import sys; print('hello'); sys.exit(3)"
    assert run_logged([sys.executable, "-c", code], env={"PATH": "/usr/bin:/bin"}, log=log, timeout=60) == 3
    assert log.read_text().strip() == "hello"


def test_run_logged_stops_a_cancelled_job(tmp_path: Path) -> None:
    command = [sys.executable, "-c", "import time; time.sleep(60)"]
    result = run_logged(command, env={}, log=tmp_path / "log", timeout=60, cancelled=lambda: True)
    assert result is None


def test_collect_outputs_reads_the_jobs_records(tmp_path: Path) -> None:
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    (outputs / layout.METRICS_FILE).write_text(json.dumps({"mse": 2, "r2": 0.5}))
    (outputs / layout.ENVIRONMENT_FILE).write_text(json.dumps({"python": "3.11"}))
    (outputs / layout.TRAINING_FILE).write_text(json.dumps({"parameters": {}}))
    trained = collect_outputs("job-r1", outputs, log=tmp_path / "log.txt", reattached=True)
    assert trained.job_name == "job-r1"
    assert trained.metrics == {"mse": 2.0, "r2": 0.5}
    assert isinstance(trained.metrics["mse"], float)
    assert trained.environment == {"python": "3.11"}
    assert trained.training == {"parameters": {}}
    assert trained.log == tmp_path / "log.txt"
    assert trained.reattached
