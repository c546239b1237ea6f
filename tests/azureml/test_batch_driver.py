"""The emulator's batch driver writes what Azure ML's parallel run writes (issue 22, point 1).

Azure appends a returned DataFrame to `predictions.csv` space-separated, with no header and no index
(Microsoft Learn, "Image processing with batch model deployments", reads it with `sep=' ', header=None`;
"Use MLflow models in batch deployments": it "may not be a regular CSV file"), and a returned list one
item per line, as it is. A script may write files of its own to `AZUREML_BI_OUTPUT_PATH` (Microsoft
Learn, "Customize outputs in model batch deployments"). No recording exists of a batch job's output
(the SDK's batch invoke tests are skipped, so never recorded): the docs are the reference here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from infra.azureml_emulator.batch_driver import JOB_LOGS_VARIABLE
from infra.settings import checkout_root

SCRIPT = """
import os, pathlib
import pandas as pd

def init():
    pass

def run(mini_batch):
    out = pathlib.Path(os.environ["AZUREML_BI_OUTPUT_PATH"])
    name = pathlib.Path(mini_batch[0]).name
    (out / (name + ".seen")).write_text("x")
    if "bad" in name:
        raise ValueError(f"{name}: no good")
    if "list" in name:
        return [f"{name},already formatted"]
    return pd.DataFrame({"file": [name, name], "value": [1.5, 2.5]})
"""


def _drive(tmp_path: Path, *files: str, threshold: int = -1) -> subprocess.CompletedProcess[str]:
    (tmp_path / "script.py").write_text(SCRIPT)
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in files:
        (inputs / name).write_text("a\n1\n")
    command = [
        sys.executable, "-m", "infra.azureml_emulator.batch_driver", "--script", str(tmp_path / "script.py"),
        "--input", str(inputs), "--model", str(tmp_path), "--output", str(tmp_path / "out"),
        "--output-action", "append_row", "--mini-batch-size", "1", "--max-concurrency", "1",
        "--error-threshold", str(threshold), "--max-retries", "1",
    ]  # fmt: skip
    env = {**os.environ, JOB_LOGS_VARIABLE: str(tmp_path / "logs"), "PYTHONPATH": str(checkout_root())}
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)


def test_a_dataframe_is_appended_space_separated_without_header_and_a_list_as_it_is(tmp_path: Path) -> None:
    result = _drive(tmp_path, "a.csv", "list.csv")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = sorted((tmp_path / "out" / "predictions.csv").read_text().splitlines())
    assert lines == ["a.csv 1.5", "a.csv 2.5", "list.csv,already formatted"]
    # the script saw AZUREML_BI_OUTPUT_PATH: the output folder, where its own files stay
    assert sorted(p.name for p in (tmp_path / "out").glob("*.seen")) == ["a.csv.seen", "list.csv.seen"]
    assert (tmp_path / "logs" / "job_result.txt").read_text() == "2 mini-batch(es): 2 succeeded, 0 failed\n"


def test_a_failed_mini_batch_is_logged_under_logs_user_and_the_threshold_fails_the_job(tmp_path: Path) -> None:
    result = _drive(tmp_path, "a.csv", "bad.csv", threshold=0)
    assert result.returncode == 1
    errors = (tmp_path / "logs" / "user" / "error.txt").read_text()
    assert errors == "mini-batch 1 [bad.csv] failed after 2 attempt(s): ValueError: bad.csv: no good\n"
    assert "over the deployment's error_threshold of 0" in result.stdout
