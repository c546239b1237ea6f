"""The emulator's batch driver writes what Azure ML's parallel run writes (issue 22, point 1).

Azure appends a returned DataFrame to `predictions.csv` space-separated, with no header and no index
(Microsoft Learn, "Image processing with batch model deployments", reads it with `sep=' ', header=None`;
"Use MLflow models in batch deployments": it "may not be a regular CSV file"), and a returned list one
item per line, as it is. A script may write files of its own to `AZUREML_BI_OUTPUT_PATH` (Microsoft
Learn, "Customize outputs in model batch deployments"). No recording exists of a batch job's output
(the SDK's batch invoke tests are skipped, so never recorded): the docs are the reference here.

With `--nodes N` (the deployment's `resources.instanceCount`, issue 22 "Past one machine") N worker
processes share one queue of mini-batches, each calling `init()` once; the output and the failures are
what one node writes.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from azureml_emulator.batch_driver import JOB_LOGS_VARIABLE
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


# Each node's init() and each mini-batch leave their process id; a mini-batch waits (up to 20 s) until two
# processes have started one, so with two nodes of one slot each both nodes score before either goes on
# (a barrier, not a timing: on one node the wait runs out and the mini-batches fail).
NODES_SCRIPT = """
import os, pathlib, time

def init():
    out = pathlib.Path(os.environ["AZUREML_BI_OUTPUT_PATH"])
    (out / f"init-{os.getpid()}").write_text("x")

def run(mini_batch):
    out = pathlib.Path(os.environ["AZUREML_BI_OUTPUT_PATH"])
    name = pathlib.Path(mini_batch[0]).name
    (out / f"run-{os.getpid()}-{name}").write_text("x")
    for _ in range(200):
        if len({p.name.split("-")[1] for p in out.glob("run-*")}) >= 2:
            break
        time.sleep(0.1)
    else:
        raise TimeoutError("no second node started a mini-batch")
    return [f"{name},{os.getpid()}"]
"""


def _drive(
    tmp_path: Path, *files: str, threshold: int = -1, nodes: int = 1, script: str = SCRIPT
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "script.py").write_text(script)
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in files:
        (inputs / name).write_text("a\n1\n")
    command = [
        sys.executable, "-m", "azureml_emulator.batch_driver", "--script", str(tmp_path / "script.py"),
        "--input", str(inputs), "--model", str(tmp_path), "--output", str(tmp_path / "out"),
        "--output-action", "append_row", "--mini-batch-size", "1", "--max-concurrency", "1",
        "--error-threshold", str(threshold), "--max-retries", "1", "--nodes", str(nodes), "--timeout", "30",
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


@pytest.mark.parametrize("nodes", [1, 2])
def test_a_failed_mini_batch_is_logged_under_logs_user_and_the_threshold_fails_the_job(
    tmp_path: Path, nodes: int
) -> None:
    """The same record, whichever node ran the mini-batch (issue 22, "Past one machine")."""
    result = _drive(tmp_path, "a.csv", "bad.csv", threshold=0, nodes=nodes)
    assert result.returncode == 1
    errors = (tmp_path / "logs" / "user" / "error.txt").read_text()
    assert errors == "mini-batch 1 [bad.csv] failed after 2 attempt(s): ValueError: bad.csv: no good\n"
    assert "mini-batch 1 [bad.csv] failed after 2 attempt(s): ValueError: bad.csv: no good\n" in result.stdout
    assert "over the deployment's error_threshold of 0" in result.stdout
    assert (tmp_path / "logs" / "job_result.txt").read_text() == "2 mini-batch(es): 1 succeeded, 1 failed\n"
    assert sorted((tmp_path / "out" / "predictions.csv").read_text().splitlines()) == ["a.csv 1.5", "a.csv 2.5"]


def test_two_nodes_each_init_once_in_a_process_of_their_own_and_score_every_row_once(tmp_path: Path) -> None:
    files = [f"part-{i:06d}.csv" for i in range(6)]
    result = _drive(tmp_path, *files, nodes=2, script=NODES_SCRIPT)
    assert result.returncode == 0, result.stdout + result.stderr
    out = tmp_path / "out"
    inits = sorted(p.name.removeprefix("init-") for p in out.glob("init-*"))
    assert len(inits) == 2, inits  # one init() per node, in two processes
    rows = (out / "predictions.csv").read_text().splitlines()
    assert sorted(row.split(",")[0] for row in rows) == files  # every mini-batch's row, once
    scorers = {row.split(",")[1] for row in rows}
    assert scorers == set(inits)  # both nodes scored, each in the process that ran its init()
    # logs/sys/node/<node>/process000.txt: each node's own log, naming its process
    logs = sorted((tmp_path / "logs" / "sys" / "node").glob("*/process000.txt"))
    assert [p.parent.name for p in logs] == ["0", "1"]
    pids = {re.search(r"pid (\d+)", p.read_text())[1] for p in logs}  # type: ignore[index]
    assert pids == set(inits)
    assert sum(p.read_text().count(" succeeded, 0 failed") for p in logs) == len(files)
    assert (tmp_path / "logs" / "job_result.txt").read_text() == "6 mini-batch(es): 6 succeeded, 0 failed\n"
