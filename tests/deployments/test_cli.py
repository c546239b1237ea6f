"""`mlops train` from the command line, against the session's Prefect server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

MODEL = "diabetes_regression_model.pkl"


def _mlops(*args: str, api_url: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PREFECT_API_URL": api_url, "MLOPS_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "deployments.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=300,
    )


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
    assert "missing column(s) 'bmi'" in result.stderr
