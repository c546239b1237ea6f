"""The Azure ML registry the environments share, through the real SDK (`MLClient(registry_name=...)`) and the emulator:
versions idempotent on the content hash, tags and properties kept, and a registry that is not there named."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.azureml import shared_registry
from infra.errors import ConfigError, MissingResourceError
from tests.support.emulator import Emulated


def _folder(path: Path, content: str) -> Path:
    path.mkdir(parents=True)
    (path / "model.txt").write_text(content)
    (path / "metrics.json").write_text('{"mse": 1.0}')
    return path


def test_a_version_is_shared_once_per_content_with_its_tags_and_properties(emulated: Emulated, tmp_path: Path) -> None:
    emulated.process.registries = [f"{emulated.subscription}/mlops-RG/team-registry"]
    emulated.process.start()  # the server runs: this adds the registry
    registry = shared_registry(emulated.settings(azureml_registry_name="team-registry"))
    first = _folder(tmp_path / "a" / "model", "weights 1")
    made = registry.register("shared-model", first, tags={"run_id": "r1"}, properties={"lineage": '{"a": 1}'})
    again = registry.register("shared-model", _folder(tmp_path / "b" / "model", "weights 1"), tags={}, properties={})
    other = registry.register("shared-model", _folder(tmp_path / "c" / "model", "weights 2"), tags={}, properties={})
    assert (made.created, again.created, other.created) == (True, False, True)
    assert (made.model.version, again.model.version, other.model.version) == (1, 1, 2)
    stored = registry.get("shared-model", 1)
    assert stored.tags == {"run_id": "r1"}
    assert stored.properties == {"lineage": '{"a": 1}'}
    assert stored.content_hash == made.model.content_hash != other.model.content_hash
    assert registry.asset_id(stored) == "azureml://registries/team-registry/models/shared-model/versions/1"
    # the SDK's own calls, as recorded: the files went where the registry's temporary data reference said
    assert len(emulated.requests("PUT", "/registries/team-registry/tempdatarefs/shared-model/versions/")) == 2
    assert len(emulated.requests("PUT", "/registries/team-registry/models/shared-model/versions/")) == 2


def test_no_registry_name_and_an_unknown_registry_are_named(emulated: Emulated) -> None:
    with pytest.raises(ConfigError, match="set MLOPS_AZUREML_REGISTRY_NAME"):
        shared_registry(emulated.settings())
    with pytest.raises(MissingResourceError, match="no-such-registry"):
        shared_registry(emulated.settings(azureml_registry_name="no-such-registry"))
