"""Provision and cleanup on the azureml backend against the emulator: created once, nothing the second time,
the serving version never archived, teardown deletes what provision created."""

from __future__ import annotations

from pathlib import Path

import pytest

from azureml_emulator.process import EmulatorProcess
from flows.cleanup import cleanup
from flows.provision import provision
from flows.train_register import train_register
from infra.azureml import AzureMLBackend
from infra.errors import ConfigError
from infra.factory import open_backend
from infra.settings import load_settings
from tests.support.emulator import Emulated, join_emulator
from tests.support.helpers import trained_copies

MODEL = "diabetes_regression_model.pkl"


@pytest.fixture
def bare(
    emulator_server: EmulatorProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefect_server: str
) -> Emulated:
    """The module's emulator, holding no workspace of this test's yet."""
    return join_emulator(emulator_server, tmp_path / "mlops", monkeypatch, workspace=False)


def _backend() -> AzureMLBackend:
    backend = open_backend(load_settings())
    assert isinstance(backend, AzureMLBackend)
    return backend


def test_provision_twice_creates_everything_once_through_the_sdk(bare: Emulated) -> None:
    first = provision()
    assert first[0].startswith("created workspace mlops-aml-ws in mlops-RG (eastus) with ")
    assert "created compute cluster train-cluster (STANDARD_DS2_V2, 0-4 nodes)" in first
    assert "created compute cluster score-cluster (STANDARD_DS2_V2, 0-4 nodes)" in first
    assert any(change.startswith("created environment diabetes_regression_training_env:") for change in first)
    requests_after_first = len(bare.requests("PUT"))
    assert provision() == []
    assert len(bare.requests("PUT")) == requests_after_first  # the second run only reads
    deployments = bare.requests("PUT", "/providers/Microsoft.Resources/deployments/")
    assert len(deployments) == 1  # workspaces.begin_create's ARM template deployment
    workspace = _backend().client.workspaces.get("mlops-aml-ws")
    assert workspace.storage_account
    assert workspace.key_vault
    assert (bare.home / "azureml" / "yaml" / "workspace-mlops-aml-ws.yml").is_file()


def test_a_bad_name_is_refused_before_any_call(bare: Emulated, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_AZUREML_TRAIN_CLUSTER_NAME", "1-not-a-name")
    before = len(bare.process.requests())
    with pytest.raises(ConfigError, match="MLOPS_AZUREML_TRAIN_CLUSTER_NAME='1-not-a-name' is not a valid name"):
        _backend().workspace.ensure()
    assert len(bare.process.requests()) == before


def test_cleanup_never_archives_the_serving_version_and_teardown_deletes_the_workspace(
    bare: Emulated, seeded_template: Path
) -> None:
    provision()
    backend = _backend()
    # three trained models' files (the seeded registry's three versions), registered as uploads: training jobs
    # are not this test's subject (tests/infra/azureml/test_jobs_registry.py), and three took ~30 s here
    versions = []
    for files in trained_copies(seeded_template, bare.home / "trained"):
        versions.append(backend.registry.register(MODEL, files, tags={}, properties={}).model.version)
    assert versions == [1, 2, 3]
    backend.registry.set_alias(MODEL, "champion", 3)
    endpoint = backend.settings.endpoint_name
    backend.endpoints.ensure(endpoint)
    backend.endpoints.add_deployment(endpoint, "blue", backend.bundles.build(backend.registry.get(MODEL, 1)))
    backend.endpoints.set_traffic(endpoint, {"blue": 100})
    backend.endpoints.add_deployment(endpoint, "green", backend.bundles.build(backend.registry.get(MODEL, 2)))

    changes = cleanup(keep_versions=1)
    # v1 serves and v3 is the champion: of the old versions, only v2 (its idle deployment removed) is archived
    assert changes == [f"removed deployment green (0 % traffic) from {endpoint}", f"archived {MODEL}:2"]
    assert [m.version for m in backend.registry.list(MODEL)] == [1, 3]
    assert cleanup(keep_versions=1) == []

    gone = cleanup(delete_everything=True)
    assert gone[-1] == (
        "deleted workspace mlops-aml-ws permanently (not recoverable; its name is free at once)"
        " with its storage account and key vault"
    )
    assert f"deleted online endpoint {endpoint}" in gone
    assert "deleted compute cluster train-cluster" in gone
    assert bare.requests("DELETE", "/Microsoft.Storage/storageAccounts/")
    with pytest.raises(ConfigError, match="AZUREML_WORKSPACE_NAME"):
        _backend().endpoints.get(endpoint)  # the workspace is gone
    assert bare.requests("DELETE", "/workspaces/mlops-aml-ws")  # with forceToPurge: the name is free again
    assert provision()[0].startswith("created workspace mlops-aml-ws in mlops-RG (eastus) with ")


def test_a_soft_deleted_workspace_holds_its_name(bare: Emulated) -> None:
    """Issue 22, point 7: without permanently_delete Azure soft-deletes a workspace and holds its name for 14
    days (Microsoft Learn, "Workspace soft deletion"); the emulator holds it too."""
    provision()
    client = _backend().client
    client.workspaces.begin_delete("mlops-aml-ws", delete_dependent_resources=False).result()
    with pytest.raises(Exception, match="soft-deleted: its name is held") as refused:
        provision()
    assert "mlops-aml-ws" in str(refused.value)


def test_an_endpoint_name_taken_in_the_region_fails_before_training_naming_the_setting(
    bare: Emulated, emulator_server: EmulatorProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 22, point 4: endpoint names are unique per Azure region across all customers ("Endpoint name needs
    to be unique within a region"). The emulator is one region; a name held there stops train-register before
    it trains, with an error naming the setting."""
    changes = provision()
    online, batch = load_settings().endpoint_name, load_settings().aml_batch_endpoint_name
    assert f"created online endpoint {online} (no deployment yet)" in changes
    assert f"created batch endpoint {batch} (no deployment yet)" in changes
    bare.take_endpoint_name("someone-elses")
    monkeypatch.setenv("MLOPS_ENDPOINT_NAME", "someone-elses")
    with pytest.raises(ConfigError, match=r"MLOPS_ENDPOINT_NAME='someone-elses': that endpoint name is taken"):
        train_register()
    assert bare.jobs() == {}  # nothing was trained
    # another customer's workspace in the region: the first workspace's batch endpoint holds its name
    join_emulator(emulator_server, tmp_path / "other", monkeypatch)
    monkeypatch.delenv("MLOPS_ENDPOINT_NAME")
    monkeypatch.setenv("MLOPS_AZUREML_BATCH_ENDPOINT_NAME", batch)
    with pytest.raises(ConfigError, match=rf"MLOPS_AZUREML_BATCH_ENDPOINT_NAME='{batch}': that endpoint name is taken"):
        _backend().workspace.reserve_names()


def test_cleanup_scales_a_warm_idle_cluster_back_to_0_nodes(bare: Emulated, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_AZUREML_TRAIN_CLUSTER_MIN_NODES", "1")
    assert "created compute cluster train-cluster (STANDARD_DS2_V2, 1-4 nodes)" in provision()
    assert cleanup() == ["scaled idle compute cluster train-cluster from 1 to 0 nodes"]
    assert _backend().client.compute.get("train-cluster").min_instances == 0
    assert cleanup() == []
