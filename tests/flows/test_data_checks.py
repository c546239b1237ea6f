"""Issue 26's acceptance: a training file with a column of NaNs, or a feature scaled by 1,000, fails train-register
before any training job starts, naming the column, with a `data-check` artifact; the registry is unchanged. On the
local backend (both kinds), and on Azure ML (the emulator: it is sent no job, no model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flows.train_register import train_register
from infra.factory import open_backend
from infra.settings import load_settings
from models.diabetes.data import write_sample_csv
from tests.support.emulator import Emulated
from tests.support.prefect_api import artifacts_of, task_run_states


def _broken(folder: Path, how: str) -> tuple[Path, str]:
    """The diabetes sample with `bmi` all empty (`nans`) or `s5` in another unit (`scaled`); the column named."""
    frame = pd.read_csv(write_sample_csv(folder / "sample.csv"))
    column = "bmi" if how == "nans" else "s5"
    frame[column] = np.nan if how == "nans" else frame[column] * 1000
    frame.to_csv(path := folder / f"{how}.csv", index=False)
    return path, column


def _fails_before_training(data: Path, column: str) -> None:
    """The run fails at check-training-data naming the column, publishes the report, and trains nothing."""
    state = train_register(data=str(data), return_state=True)
    assert state.is_failed()
    assert state.message is not None
    assert f"no training job was started: {data.name} fails the data checks ('{column}')" in state.message
    run = state.state_details.flow_run_id
    assert run is not None
    tasks = task_run_states(run)
    assert tasks["check-training-data"] == "Failed"
    assert "train-model" not in tasks
    report = artifacts_of(run)["data-check"]
    assert f"| {column} |" in str(report.data)


@pytest.mark.parametrize("how", ["nans", "scaled"])
def test_local_backend_trains_nothing_and_registers_nothing(
    how: str, prefect_server: str, home: Path, tmp_path: Path
) -> None:
    data, column = _broken(tmp_path, how)
    _fails_before_training(data, column)
    assert open_backend(load_settings()).registry.list() == []
    assert not (home / "jobs").exists() or not any((home / "jobs").iterdir())


def test_azureml_backend_submits_no_job_and_registers_nothing(
    emulated: Emulated, prefect_server: str, tmp_path: Path
) -> None:
    """One broken file here (the check is the same task on both backends; the local test runs both kinds)."""
    _fails_before_training(*_broken(tmp_path, "scaled"))
    assert emulated.jobs() == {}
    assert emulated.requests("PUT", "/jobs/") == []
    assert emulated.requests("PUT", "/models/") == []
    assert open_backend(load_settings()).registry.list() == []
