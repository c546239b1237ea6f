"""A fresh Azure ML emulator per test, inside the test's MLOPS_HOME, with the backend pointed at it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from infra.azureml_emulator.process import EmulatorProcess
from infra.settings import Settings, load_settings
from tests.helpers import free_port


@dataclass
class Emulated:
    """The test's settings and its running emulator."""

    home: Path
    process: EmulatorProcess
    env: dict[str, str]

    def settings(self, **overrides: Any) -> Settings:
        return load_settings(**overrides)

    def requests(self, method: str | None = None, contains: str = "") -> list[dict[str, Any]]:
        return [
            r for r in self.process.requests() if (method is None or r["method"] == method) and contains in r["path"]
        ]

    def jobs(self) -> dict[str, str]:
        workspace = (
            "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/mlops-RG"
            "/providers/Microsoft.MachineLearningServices/workspaces/mlops-aml-ws"
        )
        listed = self.process.get(f"{workspace}/jobs?api-version=2024-01-01-preview")["value"]
        return {job["name"]: job["properties"]["status"] for job in listed}

    def restart(self, *, max_jobs: int) -> None:
        """Stop the emulator and start it again (same state, same port) running `max_jobs` jobs at once."""
        self.process.stop()
        self.process = EmulatorProcess(
            self.process.home,
            self.process.port,
            self.process.workspaces,
            max_jobs=max_jobs,
            endpoint_port=self.process.endpoint_port,
        )
        self.process.start()


def start_emulated(
    home: Path, monkeypatch: pytest.MonkeyPatch, *, max_jobs: int = 2, workspace: bool = True
) -> Emulated:
    """The emulator with the settings' workspace already there (`workspace=False`: none, for provision to create)."""
    env = {
        "MLOPS_HOME": str(home),
        "MLOPS_BACKEND": "azureml",
        "MLOPS_AZUREML_EMULATOR": "1",
        "MLOPS_AZUREML_EMULATOR_PORT": str(free_port()),
        "MLOPS_AZUREML_EMULATOR_ENDPOINT_PORT": str(free_port()),
        "MLOPS_AZUREML_POLL_SECONDS": "0.2",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # The client extends REQUESTS_CA_BUNDLE in this process; monkeypatch puts back what was there.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", os.environ.get("REQUESTS_CA_BUNDLE", ""))
    if not os.environ["REQUESTS_CA_BUNDLE"]:
        monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    # The SDK sets AZUREML_CURRENT_CLOUD in this process; recording it first makes monkeypatch remove it afterwards.
    monkeypatch.setenv("AZUREML_CURRENT_CLOUD", "none")
    monkeypatch.delenv("AZUREML_CURRENT_CLOUD")
    process = EmulatorProcess.from_settings(load_settings(), max_jobs=max_jobs)
    if not workspace:
        process.workspaces = []
    process.start()
    return Emulated(home=home, process=process, env=env)


@pytest.fixture
def emulated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulated]:
    emulated = start_emulated(tmp_path / "mlops", monkeypatch)
    try:
        yield emulated
    finally:
        emulated.process.stop()


def mlops_cli(*args: str, env: dict[str, str], api_url: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """`mlops <args>` in a child process with the test's settings, against the Prefect server at `api_url`."""
    return subprocess.run(
        [sys.executable, "-m", "deployments.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env, "PREFECT_API_URL": api_url},
        check=False,
        timeout=timeout,
    )
