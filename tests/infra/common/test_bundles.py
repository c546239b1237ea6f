"""Bundles: what an Azure ML online deployment (or an image build) needs, built once per version."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sklearn

from infra.local import LocalBackend
from infra.settings import load_settings
from models.diabetes import score
from tests.support.helpers import MODEL, clone_home


@pytest.fixture
def backend(seeded_template: Path, tmp_path: Path) -> LocalBackend:
    return LocalBackend(load_settings(home=clone_home(seeded_template, tmp_path / "home")))


def test_layout_and_pins(backend: LocalBackend) -> None:
    model = backend.registry.get(MODEL, 2)
    bundle = backend.bundles.build(model)
    assert bundle.model == f"{MODEL}:2"
    assert (bundle.path / "code" / "score.py").read_text() == Path(score.__file__).read_text()
    assert sorted(p.name for p in bundle.model_dir.iterdir()) == sorted(p.name for p in Path(model.path).iterdir())
    requirements = (bundle.path / "requirements.txt").read_text().splitlines()
    assert f"scikit-learn=={sklearn.__version__}" in requirements
    assert "azureml-inference-server-http==1.5.1" in requirements
    assert f"      - scikit-learn=={sklearn.__version__}" in (bundle.path / "conda.yml").read_text()
    dockerfile = (bundle.path / "Dockerfile").read_text()
    assert "pip install --no-cache-dir -r requirements.txt" in dockerfile
    assert "azmlinfsrv" in dockerfile
    assert "code/score.py" in dockerfile
    assert json.loads((bundle.path / "bundle.json").read_text())["version"] == 2
    assert bundle.environment["libraries"]["scikit-learn"] == sklearn.__version__


def test_built_once_and_reused(backend: LocalBackend) -> None:
    model = backend.registry.get(MODEL, 1)
    first = backend.bundles.build(model)
    stamp = (first.path / "bundle.json").stat().st_mtime_ns
    again = backend.bundles.build(model)
    assert again == first
    assert (again.path / "bundle.json").stat().st_mtime_ns == stamp
    assert [p.name for p in first.path.parent.iterdir() if p.name.startswith(".")] == []
