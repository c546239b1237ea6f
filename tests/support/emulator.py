"""The Azure ML emulator for tests: one server per test module, a workspace of its own for each test.

Starting an emulator costs about a second and a half (certificates, a Python process, SQLite); with a
server per test the emulator files paid it 29 times. Now `emulator_server` starts one per module and
`emulated` gives each test a fresh `MLOPS_HOME`, a subscription of its own (so the default
workspace `mlops-aml-ws` in `mlops-RG` is new for every test: jobs, assets and endpoints never meet),
and `<home>/emulator` as a link to the server's folder, where the settings look for its CA.
Only tests that stop or restart the emulator need one of their own: `private_emulated`.
"""

from __future__ import annotations

import itertools
import json
import os
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from azureml_emulator.process import EmulatorProcess
from infra.settings import Settings, load_settings
from tests.support.helpers import free_port

DEFAULT_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
_subscriptions = itertools.count(1)


@dataclass
class Emulated:
    """The test's settings and its emulator (shared with its module, or private)."""

    home: Path
    process: EmulatorProcess
    env: dict[str, str]
    subscription: str = DEFAULT_SUBSCRIPTION
    private: bool = True
    since: int = 0  # requests the emulator had served before this test began (a shared one served others')

    def settings(self, **overrides: Any) -> Settings:
        return load_settings(**overrides)

    @property
    def workspace(self) -> str:
        """The ARM path of the test's workspace (the default names, under the test's subscription)."""
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/mlops-RG"
            "/providers/Microsoft.MachineLearningServices/workspaces/mlops-aml-ws"
        )

    @property
    def endpoint_name(self) -> str:
        """The default online endpoint name of this workspace: `diabetes-endpoint-<8 hex>` (unique per region)."""
        with pytest.MonkeyPatch.context() as patch:
            for name, value in self.env.items():
                patch.setenv(name, value)
            patch.delenv("MLOPS_ENDPOINT_NAME", raising=False)
            return load_settings().endpoint_name

    def take_endpoint_name(self, name: str) -> None:
        """Mark `name` as held by someone else in the emulator's region."""
        request = urllib.request.Request(
            f"{self.process.url}/emulator/taken-endpoint-names/{name}",
            method="PUT",
            headers={"Authorization": "Bearer t"},
        )
        with urllib.request.urlopen(request, context=self.process._context(), timeout=5) as answer:
            assert answer.status == 200

    def storage_data_role(self, *, granted: bool) -> None:
        """Whether the caller holds a data role on the emulator's storage account (without it: blob 403s)."""
        request = urllib.request.Request(
            f"{self.process.url}/emulator/storage-data-role",
            method="PUT",
            data=json.dumps({"granted": granted}).encode(),
            headers={"Authorization": "Bearer t", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, context=self.process._context(), timeout=5) as answer:
            assert answer.status == 200

    def requests(self, method: str | None = None, contains: str = "") -> list[dict[str, Any]]:
        """The requests served during this test, optionally of one method and with `contains` in the path."""
        return [
            r
            for r in self.process.requests()[self.since :]
            if (method is None or r["method"] == method) and contains in r["path"]
        ]

    def jobs(self) -> dict[str, str]:
        listed = self.process.get(f"{self.workspace}/jobs?api-version=2024-01-01-preview")["value"]
        return {job["name"]: job["properties"]["status"] for job in listed}

    def restart(self, *, max_jobs: int) -> None:
        """Stop the emulator and start it again (same state, same port) running `max_jobs` jobs at once."""
        assert self.private, "only a private emulator (private_emulated) may be restarted: others share it"
        self.process.stop()
        self.process = EmulatorProcess(
            self.process.home,
            self.process.port,
            self.process.workspaces,
            max_jobs=max_jobs,
            endpoint_port=self.process.endpoint_port,
        )
        self.process.start()


def _point_at(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The test's settings in this process; what the SDK changes in the environment is put back afterwards."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # The client extends REQUESTS_CA_BUNDLE in this process; monkeypatch puts back what was there.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", os.environ.get("REQUESTS_CA_BUNDLE", ""))
    if not os.environ["REQUESTS_CA_BUNDLE"]:
        monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    # The SDK sets AZUREML_CURRENT_CLOUD in this process; recording it first makes monkeypatch remove it afterwards.
    monkeypatch.setenv("AZUREML_CURRENT_CLOUD", "none")
    monkeypatch.delenv("AZUREML_CURRENT_CLOUD")


def start_emulated(
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    max_jobs: int = 2,
    workspace: bool = True,
    lro_scale: float = 0.0,
    identity_datastores: bool = False,
) -> Emulated:
    """An emulator of the test's own, in `<home>/emulator`, with the settings' workspace already there
    (`workspace=False`: none, for provision to create); `lro_scale`: its long-running operations take Azure's
    recorded time times this; `identity_datastores`: its datastores are identity-based."""
    env = {
        "MLOPS_HOME": str(home),
        "MLOPS_BACKEND": "azureml",
        "MLOPS_AZUREML_EMULATOR": "1",
        "MLOPS_AZUREML_EMULATOR_PORT": str(free_port()),
        "MLOPS_AZUREML_EMULATOR_ENDPOINT_PORT": str(free_port()),
        "MLOPS_AZUREML_POLL_SECONDS": "0.2",
    }
    if lro_scale:
        env["MLOPS_AZUREML_EMULATOR_LRO_SCALE"] = str(lro_scale)
    if identity_datastores:
        env["MLOPS_AZUREML_EMULATOR_IDENTITY_DATASTORES"] = "true"
    _point_at(env, monkeypatch)
    process = EmulatorProcess.from_settings(load_settings(), max_jobs=max_jobs)
    if not workspace:
        process.workspaces = []
    process.start()
    return Emulated(home=home, process=process, env=env)


@pytest.fixture(scope="module")
def own_emulator() -> None:
    """For a module fixture that starts an emulator of its own (`start_emulated`): the emulator tier."""


@pytest.fixture(scope="module")
def emulator_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    """One emulator for a test module (no workspace of its own: each test adds one)."""
    home = tmp_path_factory.mktemp("emulator") / "emulator"
    process = EmulatorProcess(home, free_port(), [], endpoint_port=free_port())
    process.start()
    try:
        yield process
    finally:
        process.stop()


def join_emulator(
    server: EmulatorProcess, home: Path, monkeypatch: pytest.MonkeyPatch, *, workspace: bool = True
) -> Emulated:
    """A test's place on a shared emulator: its home, its subscription, its workspace (unless `workspace=False`)."""
    subscription = f"00000000-0000-0000-0000-{next(_subscriptions):012d}"
    home.mkdir(parents=True, exist_ok=True)
    (home / "emulator").symlink_to(server.home, target_is_directory=True)
    env = {
        "MLOPS_HOME": str(home),
        "MLOPS_BACKEND": "azureml",
        "MLOPS_AZUREML_EMULATOR": "1",
        "MLOPS_AZUREML_EMULATOR_PORT": str(server.port),
        "MLOPS_AZUREML_EMULATOR_ENDPOINT_PORT": str(server.endpoint_port),
        "MLOPS_AZUREML_POLL_SECONDS": "0.2",
        "MLOPS_AZUREML_SUBSCRIPTION_ID": subscription,
    }
    _point_at(env, monkeypatch)
    process = EmulatorProcess.from_settings(load_settings(), max_jobs=server.max_jobs)
    if workspace:
        process.start()  # the server runs: this adds the workspace
    else:
        process.workspaces = []
    since = len(server.requests())
    return Emulated(home=home, process=process, env=env, subscription=subscription, private=False, since=since)


@pytest.fixture
def emulated(emulator_server: EmulatorProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Emulated:
    """The module's emulator, seen from a workspace of this test's own."""
    return join_emulator(emulator_server, tmp_path / "mlops", monkeypatch)


@pytest.fixture
def private_emulated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulated]:
    """An emulator of this test's own, for a test that stops or restarts it."""
    emulated = start_emulated(tmp_path / "mlops", monkeypatch)
    try:
        yield emulated
    finally:
        emulated.process.stop()
