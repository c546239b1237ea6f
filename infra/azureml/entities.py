"""Every Azure ML entity the backend sends, built from `azure.ai.ml.entities`, and the YAML written beside it.

Each builder returns the entity the backend submits; `write_yaml` writes it with the SDK's own
serializer (`_to_dict()`, what `dump()` writes), so what a user reads under `MLOPS_HOME/azureml/yaml/` (or applies with `az ml ... create
--file`) is exactly what was sent, and loads back with `azure.ai.ml.load_*` (a test checks each).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from azure.ai.ml.constants import BatchDeploymentOutputAction
from azure.ai.ml.entities import (
    AmlCompute,
    BatchDeployment,
    BatchEndpoint,
    BatchRetrySettings,
    CodeConfiguration,
    Environment,
    ManagedOnlineDeployment,
    ManagedOnlineEndpoint,
    ResourceConfiguration,
    Workspace,
)

from infra.backend import Bundle
from infra.settings import Settings

SCORING_IMAGE = "mcr.microsoft.com/azureml/minimal-ubuntu22.04-py39-cpu-inference:latest"
# Batch deployments run Azure's parallel-run driver: Microsoft's batch examples put it on the OpenMPI images
# (azureml-examples cli/endpoints/batch/deploy-models/heart-classifier-mlflow/deployment-custom: openmpi4.1.0-ubuntu20.04),
# not on the minimal inference image of online deployments.
BATCH_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04"
BATCH_OUTPUT_FILE = "predictions.csv"
BATCH_ENTRY_SCRIPT = "model/azureml_batch.py"  # in every code snapshot; it runs the package's batch script

_AUTH = {"key": "key", "aml_token": "aml_token"}


def scoring_environment(settings: Settings, conda_file: Path, *, batch: bool = False) -> Environment:
    """The bundle's pinned conda file on Azure ML's inference image (online) or on the OpenMPI image batch
    deployments use (`<MLOPS_AZUREML_SCORING_ENV_NAME>-batch`); the version is the hash of image and file."""
    image = BATCH_IMAGE if batch else SCORING_IMAGE
    version = hashlib.sha256(json.dumps([image, conda_file.read_text()]).encode()).hexdigest()[:16]
    return Environment(
        name=f"{settings.aml_env_name_scoring}-batch" if batch else settings.aml_env_name_scoring,
        version=version,
        image=image,
        conda_file=str(conda_file),
        description=f"the pinned {'batch ' if batch else ''}scoring environment of a model bundle",
    )


def online_endpoint(settings: Settings, name: str) -> ManagedOnlineEndpoint:
    return ManagedOnlineEndpoint(
        name=name,
        auth_mode=_AUTH[settings.aml_endpoint_auth_mode],
        description="MLOps online endpoint (blue/green deployments of the diabetes model)",
        tags={"mlops.managed": "true"},
    )


def online_deployment(
    settings: Settings,
    endpoint: str,
    deployment: str,
    bundle: Bundle,
    environment: str | Environment,
    *,
    model: str | None = None,
) -> ManagedOnlineDeployment:
    """A deployment of the bundle: its `code/score.py`, the registered model version (or `model`, a registry's
    version it was promoted from), the pinned environment."""
    return ManagedOnlineDeployment(
        name=deployment,
        endpoint_name=endpoint,
        model=model or f"azureml:{bundle.model}",
        code_configuration=CodeConfiguration(code=str(bundle.path / "code"), scoring_script="score.py"),
        environment=environment,
        instance_type=settings.aml_online_instance_type,
        instance_count=settings.aml_online_instance_count,
        tags={"mlops.model": bundle.model},
    )


def batch_endpoint(settings: Settings) -> BatchEndpoint:
    return BatchEndpoint(
        name=settings.aml_batch_endpoint_name,
        description="MLOps batch endpoint (the diabetes model's batch scoring)",
        tags={"mlops.managed": "true"},
    )


def batch_deployment(
    settings: Settings,
    name: str,
    *,
    model: str,
    code: Path,
    script: str,
    environment: str | Environment,
    parallelism: int,
    error_threshold: int,
) -> BatchDeployment:
    """The package's `batch_score.py` (`script`, its path in `code`) over one file per mini-batch (the flow cuts
    the input), run through our entry script (`model/azureml_batch.py`), whose pre-formatted lines are appended
    to one file. It runs on `MLOPS_AZUREML_BATCH_INSTANCE_COUNT` nodes of the scoring cluster, `parallelism`
    mini-batches at a time on each.

    A `BatchDeployment` of a model, not a `ModelBatchDeployment`: both send the same `deploymentType: Model`
    body, but `load_batch_deployment` cannot read the latter's YAML back (its `settings:` block is
    unknown to the loader's schema), and the YAML we write must load. The SDK's warning that the class
    is "intended as a base class" is silenced for that reason.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="This class is intended as a base class", category=UserWarning)
        return BatchDeployment(
            name=name,
            endpoint_name=settings.aml_batch_endpoint_name,
            model=model,
            code_configuration=CodeConfiguration(code=str(code), scoring_script=BATCH_ENTRY_SCRIPT),
            environment=environment,
            environment_variables={"MLOPS_BATCH_SCRIPT": script},
            compute=settings.aml_compute_cluster_name_scoring,
            resources=ResourceConfiguration(instance_count=settings.aml_batch_instance_count),
            mini_batch_size=1,
            max_concurrency_per_instance=parallelism,
            error_threshold=error_threshold,
            output_action=BatchDeploymentOutputAction.APPEND_ROW,
            output_file_name=BATCH_OUTPUT_FILE,
            retry_settings=BatchRetrySettings(
                max_retries=settings.aml_batch_max_retries, timeout=settings.aml_batch_retry_timeout_seconds
            ),
            logging_level="info",
            tags={"mlops.model": model.removeprefix("azureml:")},
        )


class ClusterSettings(NamedTuple):
    """One cluster's settings: the training cluster's, or the scoring cluster's (the `_SCORING` variables)."""

    name: str
    sku: str
    min_nodes: int
    max_nodes: int
    priority: str


def cluster_settings(settings: Settings, *, scoring: bool = False) -> ClusterSettings:
    if scoring:
        return ClusterSettings(
            settings.aml_compute_cluster_name_scoring,
            settings.aml_compute_cluster_sku_scoring,
            settings.aml_cluster_min_nodes_scoring,
            settings.aml_cluster_max_nodes_scoring,
            settings.aml_cluster_priority_scoring,
        )
    return ClusterSettings(
        settings.aml_compute_cluster_name,
        settings.aml_compute_cluster_sku,
        settings.aml_cluster_min_nodes,
        settings.aml_cluster_max_nodes,
        settings.aml_cluster_priority,
    )


def compute_cluster(settings: Settings, *, scoring: bool = False) -> AmlCompute:
    """The training (or scoring) cluster: min nodes from settings (0 by default), so it costs nothing idle."""
    cluster = cluster_settings(settings, scoring=scoring)
    return AmlCompute(
        name=cluster.name,
        size=cluster.sku,
        min_instances=cluster.min_nodes,
        max_instances=cluster.max_nodes,
        tier="low_priority" if cluster.priority == "lowpriority" else "dedicated",
        idle_time_before_scale_down=120,
        tags={"mlops.managed": "true"},
    )


def workspace(settings: Settings) -> Workspace:
    """The workspace; Azure ML creates its storage account, key vault, App Insights and registry beside it."""
    return Workspace(
        name=settings.azure_workspace_name,
        resource_group=settings.azure_resource_group,
        location=settings.azure_location,
        display_name=settings.azure_workspace_name,
        description=f"MLOps workspace ({settings.base_name})",
        tags={"mlops.managed": "true", "mlops.base_name": settings.base_name},
    )


def write_yaml(entity: Any, folder: Path, kind: str) -> Path:
    """Write `entity` with the SDK's own serializer to `folder/<kind>-<name>.yml`; return the path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{kind}-{entity.name}.yml"
    temporary = folder / f".{path.stem}.partial.yml"
    data = json.loads(json.dumps(entity._to_dict(), default=str))  # plain dicts (the SDK answers OrderedDicts)
    temporary.write_text(yaml.safe_dump(data, sort_keys=False))
    temporary.replace(path)
    return path
