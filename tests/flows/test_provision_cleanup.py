"""Provision and cleanup on a real Prefect server, real files, real endpoint and real blob storage: the second run of each changes nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient
from prefect_azure.blob_storage import AzureBlobStorageContainer

from flows.cleanup import cleanup
from flows.provision import provision
from infra.local import LocalBackend
from infra.settings import load_settings
from tests.support.helpers import MODEL, clone_home, free_port


class TestProvision:
    def test_twice_on_a_fresh_machine_with_blob_storage(
        self, prefect_server: str, azurite: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        home = tmp_path / "fresh-home"
        monkeypatch.setenv("MLOPS_HOME", str(home))
        monkeypatch.setenv("MLOPS_BLOB_CONNECTION_STRING", azurite)
        monkeypatch.setenv("MLOPS_SCORING_INPUT_CONTAINER", "prov-input")
        monkeypatch.setenv("MLOPS_SCORING_OUTPUT_CONTAINER", "prov-output")
        first = provision()
        assert f"created workspace {home}" in first
        assert f"created registry {home / 'registry.db'}" in first
        assert {"created blob container prov-input", "created blob container prov-output"} <= set(first)
        assert {
            "saved block mlops-blob-credentials",
            "saved block mlops-scoring-input",
            "saved block mlops-scoring-output",
        } <= set(first)
        assert provision() == []
        client = BlobServiceClient.from_connection_string(azurite)
        assert client.get_container_client("prov-input").exists()
        block = AzureBlobStorageContainer.load("mlops-scoring-output", _sync=True)
        assert block.container_name == "prov-output"

    def test_a_changed_setting_updates_the_block(
        self, prefect_server: str, azurite: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "home"))
        monkeypatch.setenv("MLOPS_BLOB_CONNECTION_STRING", azurite)
        provision()
        monkeypatch.setenv("MLOPS_SCORING_OUTPUT_CONTAINER", "prov-output-2")
        assert provision() == ["created blob container prov-output-2", "updated block mlops-scoring-output"]

    def test_without_blob_storage_only_the_workspace(
        self, prefect_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "home"))
        changes = provision()
        assert changes
        assert all(change.startswith(("created workspace", "created registry", "created /")) for change in changes)
        assert provision() == []


def _extra_versions(backend: LocalBackend, count: int) -> None:
    source = Path(backend.registry.get(MODEL, 1).path)
    for i in range(count):
        copy = backend.settings.home / f"variant-{i}"
        shutil.copytree(source, copy)
        (copy / "note.json").write_text(json.dumps({"variant": i}))
        backend.registry.register(MODEL, copy, tags={}, properties={})


class TestCleanup:
    @pytest.fixture
    def busy(self, prefect_server: str, seeded_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
        """Seven versions; champion 1; version 2 serves at 100 % with a stale version 3 deployment at 0 %."""
        home = clone_home(seeded_template, tmp_path / "home")
        monkeypatch.setenv("MLOPS_HOME", str(home))
        monkeypatch.setenv("MLOPS_ENDPOINT_PORT", str(free_port()))
        backend = LocalBackend(load_settings())
        _extra_versions(backend, 4)
        backend.registry.set_alias(MODEL, "champion", 1)
        backend.registry.set_alias(MODEL, "serving", 2)
        name = backend.settings.endpoint_name
        backend.endpoints.ensure(name)
        backend.endpoints.add_deployment(name, "blue", backend.bundles.build(backend.registry.get(MODEL, 2)))
        backend.endpoints.add_deployment(name, "green", backend.bundles.build(backend.registry.get(MODEL, 3)))
        backend.endpoints.set_traffic(name, {"blue": 100, "green": 0})
        yield backend
        backend.endpoints.stop(name)

    def test_twice(self, busy: LocalBackend) -> None:
        first = cleanup(keep_versions=2)
        assert first == [
            "removed deployment green (0 % traffic) from diabetes-endpoint",
            f"archived {MODEL}:3",
            f"archived {MODEL}:4",
            f"archived {MODEL}:5",
        ]
        assert cleanup(keep_versions=2) == []
        assert [m.version for m in busy.registry.list(MODEL)] == [1, 2, 6, 7]
        assert busy.endpoints.get(busy.settings.endpoint_name).traffic() == {"blue": 100}

    def test_never_archives_the_serving_or_champion_version(self, busy: LocalBackend) -> None:
        cleanup(keep_versions=1)
        assert [m.version for m in busy.registry.list(MODEL)] == [1, 2, 7]

    def test_stop_and_delete_everything(self, busy: LocalBackend) -> None:
        home = busy.settings.home
        changes = cleanup(delete_everything=True)
        assert changes[-2:] == ["stopped endpoint diabetes-endpoint", f"deleted workspace {home}"]
        assert not home.exists()
        assert cleanup(delete_everything=True) == []
        assert not home.exists()
