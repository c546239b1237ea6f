"""Every entity the azureml backend sends is built from `azure.ai.ml.entities` and loads back, unchanged, with the
SDK's own `load_*` from the YAML it writes for users."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import azure.ai.ml as ml
import pytest
from azure.ai.ml.entities import Resource

from infra.azureml import entities
from infra.backend import Bundle
from infra.settings import Settings, load_settings


@pytest.fixture
def settings(home: Path) -> Settings:
    assert home.name  # a fresh MLOPS_HOME
    return load_settings()


@pytest.fixture
def bundle(tmp_path: Path) -> Bundle:
    folder = tmp_path / "bundle"
    (folder / "code").mkdir(parents=True)
    (folder / "code" / "score.py").write_text("def init():\n    pass\n")
    (folder / "conda.yml").write_text("name: scoring\ndependencies:\n  - python=3.11\n")
    return Bundle(model="diabetes_regression_model.pkl:3", path=folder, environment={})


def _cases(settings: Settings, bundle: Bundle) -> dict[str, tuple[Resource, Callable[..., Any]]]:
    environment = entities.scoring_environment(settings, bundle.path / "conda.yml")
    return {
        "environment": (environment, ml.load_environment),
        "online-endpoint": (entities.online_endpoint(settings, "diabetes-endpoint"), ml.load_online_endpoint),
        "online-deployment": (
            entities.online_deployment(settings, "diabetes-endpoint", "blue", bundle, environment),
            ml.load_online_deployment,
        ),
        "batch-endpoint": (entities.batch_endpoint(settings), ml.load_batch_endpoint),
        "batch-deployment": (
            entities.batch_deployment(
                settings,
                "diabetes-3",
                model="azureml:diabetes_regression_model.pkl:3",
                code=bundle.path,
                script="model/batch_score.py",
                environment=environment,
                parallelism=4,
                error_threshold=2,
            ),
            ml.load_batch_deployment,
        ),
        "compute": (entities.compute_cluster(settings), ml.load_compute),
        "compute-scoring": (entities.compute_cluster(settings, scoring=True), ml.load_compute),
        "workspace": (entities.workspace(settings), ml.load_workspace),
    }


CASES = [
    "environment",
    "online-endpoint",
    "online-deployment",
    "batch-endpoint",
    "batch-deployment",
    "compute",
    "compute-scoring",
    "workspace",
]


@pytest.mark.parametrize("kind", CASES)
def test_the_entity_round_trips_through_its_yaml(kind: str, settings: Settings, bundle: Bundle, tmp_path: Path) -> None:
    entity, load = _cases(settings, bundle)[kind]
    assert type(entity).__module__.startswith("azure.ai.ml.entities")
    path = entities.write_yaml(entity, tmp_path / "yaml", kind)
    loaded = load(path)
    assert type(loaded) is type(entity)
    assert loaded._to_dict() == entity._to_dict()


def test_every_case_is_tested(settings: Settings, bundle: Bundle) -> None:
    assert sorted(_cases(settings, bundle)) == sorted(CASES)


def test_the_batch_deployment_carries_the_batch_settings(settings: Settings, bundle: Bundle) -> None:
    deployment = _cases(settings, bundle)["batch-deployment"][0]
    assert (deployment.mini_batch_size, deployment.max_concurrency_per_instance, deployment.error_threshold) == (
        1,
        4,
        2,
    )
    assert deployment.retry_settings.max_retries == settings.aml_batch_max_retries
    assert deployment.resources.instance_count == settings.aml_batch_instance_count == 1


def test_the_batch_deployment_runs_on_the_batch_instance_count(
    monkeypatch: pytest.MonkeyPatch, settings: Settings, bundle: Bundle
) -> None:
    """`MLOPS_AZUREML_BATCH_INSTANCE_COUNT` nodes (issue 22, "Past one machine"), sent as `resources.instanceCount`."""
    monkeypatch.setenv("MLOPS_AZUREML_BATCH_INSTANCE_COUNT", "3")
    deployment = _cases(load_settings(), bundle)["batch-deployment"][0]
    assert deployment.resources.instance_count == 3
    body = deployment._to_rest_object(location="eastus").as_dict()  # what the SDK sends
    assert body["properties"]["resources"]["instanceCount"] == 3
    assert deployment.output_action == "append_row"
    # our entry script runs the package's (issue 22, points 1 and 9): lines of its own, its root on sys.path
    assert deployment.code_configuration.scoring_script == "model/azureml_batch.py"
    assert deployment.environment_variables == {"MLOPS_BATCH_SCRIPT": "model/batch_score.py"}


def test_batch_scores_on_its_own_environment_on_the_openmpi_image(settings: Settings, tmp_path: Path) -> None:
    """Microsoft's batch examples run the parallel-run driver on the OpenMPI images, not on the minimal
    online-inference image (issue 22, point 9)."""
    conda = tmp_path / "conda.yml"
    conda.write_text("name: score\ndependencies: [python=3.11]\n")
    online = entities.scoring_environment(settings, conda)
    batch = entities.scoring_environment(settings, conda, batch=True)
    assert online.image == entities.SCORING_IMAGE
    assert batch.image == "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04"
    assert batch.name == f"{settings.aml_env_name_scoring}-batch"
    assert batch.version != online.version
