"""Local training jobs: real subprocesses, re-attachment, and how failures are classified."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from infra.backend import TrainSpec
from infra.errors import JobFailedError, TransientBackendError
from infra.local.jobs import LocalJobs
from model import layout
from models.diabetes.data import write_sample_csv


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample_csv(tmp_path_factory.mktemp("data") / "diabetes.csv")


def _spec(data: Path, name: str = "train-test", **parameters: object) -> TrainSpec:
    return TrainSpec(job_name=name, data=data, parameters={"alpha": 0.4, **parameters}, timeout_seconds=120)


class TestTrain:
    def test_runs_the_cli_and_collects_outputs(self, tmp_path: Path, data: Path) -> None:
        output = LocalJobs(tmp_path / "jobs").train(_spec(data))
        assert not output.reattached
        assert output.metrics["mse"] == pytest.approx(3295.714938563238, rel=1e-9)
        assert (output.outputs / layout.MODEL_FILE).is_file()
        assert output.training["parameters"] == {"alpha": 0.4}
        assert json.loads((tmp_path / "jobs" / "train-test" / "inputs" / "parameters.json").read_text()) == {
            "training": {"alpha": 0.4}
        }
        assert output.log.is_file()
        assert [p.name for p in output.outputs.parent.iterdir() if p.name.startswith(".outputs-")] == []

    def test_a_finished_job_is_reattached_not_rerun(self, tmp_path: Path, data: Path) -> None:
        jobs = LocalJobs(tmp_path / "jobs")
        first = jobs.train(_spec(data))
        stamp = (first.outputs / layout.MODEL_FILE).stat().st_mtime_ns
        again = jobs.train(_spec(data))
        assert again.reattached
        assert (again.outputs / layout.MODEL_FILE).stat().st_mtime_ns == stamp
        assert again.metrics == first.metrics

    def test_a_failed_job_keeps_its_folder_and_the_next_attempt_runs_under_a_name_of_its_own(
        self, tmp_path: Path, data: Path
    ) -> None:
        """Azure ML never frees a job name, so neither backend runs a name twice (issue 22, point 3)."""
        jobs = LocalJobs(tmp_path / "jobs")
        with pytest.raises(JobFailedError, match=r"training job train-test stopped after 0.01 s"):
            jobs.train(_spec(data).model_copy(update={"timeout_seconds": 0.01}))
        failed = tmp_path / "jobs" / "train-test"
        assert "stopped after" in (failed / "failed.txt").read_text()
        assert not (failed / "outputs").exists()
        retried = jobs.train(_spec(data))
        assert (retried.job_name, retried.reattached) == ("train-test-r1", False)
        assert retried.outputs == tmp_path / "jobs" / "train-test-r1" / "outputs"
        assert (failed / "failed.txt").is_file()  # the failed attempt is kept, as Azure keeps a failed job
        again = jobs.train(_spec(data))
        assert (again.job_name, again.reattached) == ("train-test-r1", True)

    def test_a_job_trained_ahead_is_the_flow_s_and_a_failed_one_leaves_nothing(
        self, tmp_path: Path, data: Path
    ) -> None:
        """`mlops run` trains before its flow asks (`train_ahead`, issue 27): the flow's call finds the job, trained
        by this run (not re-attached, not run twice); an early attempt that fails, or that `keep` (the data checks,
        beside the job) does not want, leaves no folder, so the flow's own attempt keeps the job's name."""
        runs: list[str] = []

        class Counted(LocalJobs):
            def _run_job(self, spec: TrainSpec, name: str, job: Path, cancelled: Callable[[], bool] = bool) -> None:
                runs.append(name)
                super()._run_job(spec, name, job, cancelled)

        jobs = Counted(tmp_path / "jobs")
        with ThreadPoolExecutor(1) as pool:  # the flow's call comes while the early one runs: it waits for it
            ahead = pool.submit(jobs.train_ahead, _spec(data), lambda: True)
            deadline = time.monotonic() + 30
            while not (tmp_path / "jobs" / "train-test").exists() and time.monotonic() < deadline:
                time.sleep(0.01)  # its folder is made once it holds the job's lock
            output = jobs.train(_spec(data))
        assert ahead.result() is True
        assert (output.job_name, output.reattached) == ("train-test", False)
        assert runs == ["train-test"]  # one run of the command
        assert jobs.train_ahead(_spec(data), lambda: True) is False  # done before: nothing runs

        slow = _spec(data, name="train-slow").model_copy(update={"timeout_seconds": 0.01})
        assert jobs.train_ahead(slow, lambda: True) is False
        assert not (tmp_path / "jobs" / "train-slow").exists()
        with pytest.raises(JobFailedError, match=r"training job train-slow stopped after 0.01 s"):
            jobs.train(slow)

        unwanted = _spec(data, name="train-unwanted")
        assert jobs.train_ahead(unwanted, lambda: False) is False  # stopped as soon as judged
        assert not (tmp_path / "jobs" / "train-unwanted").exists()
        assert runs[-1] == "train-unwanted"
        late = _spec(data, name="train-late")
        assert jobs.train_ahead(late, lambda: time.sleep(3) or False) is False  # judged after the job's end
        assert not (tmp_path / "jobs" / "train-late").exists()
        stop = threading.Event()
        stop.set()  # the run ended before its flow took the job (Ctrl-C, an error)
        assert jobs.train_ahead(_spec(data, name="train-stopped"), lambda: True, stop) is False
        assert not (tmp_path / "jobs" / "train-stopped").exists()


class TestFailures:
    def test_bad_input_is_a_job_failure_with_the_job_s_message(self, tmp_path: Path) -> None:
        bad = tmp_path / "bad.csv"
        bad.write_text("age,sex,bmi\n1,2,3\n")
        with pytest.raises(JobFailedError, match=r"failed \(exit 2\): .*missing column\(s\) 'bp'"):
            LocalJobs(tmp_path / "jobs").train(_spec(bad))
        assert not (tmp_path / "jobs" / "train-test" / "outputs").exists()

    def test_bad_parameter_is_a_job_failure(self, tmp_path: Path, data: Path) -> None:
        with pytest.raises(JobFailedError, match=r"training\.alpha must be a non-negative number"):
            LocalJobs(tmp_path / "jobs").train(_spec(data, alpha=-3))

    def test_a_killed_job_is_transient(self, tmp_path: Path, data: Path) -> None:
        """A job killed by a signal (the OOM killer, a node going away) may succeed on retry."""
        crasher = tmp_path / "python-that-crashes"
        crasher.write_text("#!/bin/sh\nkill -9 $$\n")
        crasher.chmod(0o755)
        with pytest.raises(TransientBackendError, match="killed by signal 9"):
            LocalJobs(tmp_path / "jobs", python=str(crasher)).train(_spec(data))

    def test_timeout_stops_the_job(self, tmp_path: Path, data: Path) -> None:
        sleeper = tmp_path / "python-that-hangs"
        sleeper.write_text("#!/bin/sh\nexec sleep 30\n")
        sleeper.chmod(0o755)
        spec = _spec(data).model_copy(update={"timeout_seconds": 0.5})
        with pytest.raises(JobFailedError, match=r"stopped after 0\.5 s"):
            LocalJobs(tmp_path / "jobs", python=str(sleeper)).train(spec)
        assert os.listdir(tmp_path / "jobs" / "train-test" / "user_logs") == ["std_log.txt"]
