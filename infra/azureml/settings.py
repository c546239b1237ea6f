"""The Azure ML adapter's settings (MLOPS_BACKEND=azureml): one prefix, `MLOPS_AZUREML_`.

The workspace also answers to the plain names Azure tooling uses (`AZURE_SUBSCRIPTION_ID`, `AZURE_RESOURCE_GROUP`,
`AZURE_WORKSPACE_NAME` or `AZUREML_WORKSPACE_NAME`, `AZURE_LOCATION`). The earlier spellings (`MLOPS_AZURE_...`,
`MLOPS_AML_...`, `MLOPS_BASE_NAME`, `MLOPS_DATASET_NAME`) are read for one more release, each with a deprecation line.
Environment and data asset names follow the model package unless set. Imports no Azure library.
"""

from __future__ import annotations

import hashlib
import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from infra.sections import (
    DERIVED,
    OFF,
    ON,
    Section,
    asset_name,
    derived,
    endpoint_name,
    endpoint_name_for,
    model_stem,
    variable,
)

Priority = Literal["lowpriority", "dedicated"]

DERIVED.update({"aml_env_name", "aml_env_name_scoring", "aml_batch_endpoint_name", "dataset_name"})


class AzureMLSettings(Section):
    """The workspace, its two clusters, online and batch deployments, time bounds, the data asset and the emulator."""

    # ---- the workspace (SUBSCRIPTION_ID, RESOURCE_GROUP, WORKSPACE_NAME, LOCATION, BASE_NAME) ----
    azure_subscription_id: str | None = Field(
        None,
        validation_alias=variable(
            "AZUREML_SUBSCRIPTION_ID", plain=("AZURE_SUBSCRIPTION_ID",), was=("MLOPS_AZURE_SUBSCRIPTION_ID",)
        ),
        description="Azure subscription of the workspace (required for MLOPS_BACKEND=azureml unless the emulator).",
    )
    azure_resource_group: str = Field(
        "mlops-RG",
        validation_alias=variable(
            "AZUREML_RESOURCE_GROUP", plain=("AZURE_RESOURCE_GROUP",), was=("MLOPS_AZURE_RESOURCE_GROUP",)
        ),
        description="Resource group of the workspace.",
    )
    azure_workspace_name: str = Field(
        "mlops-aml-ws",
        validation_alias=variable(
            "AZUREML_WORKSPACE_NAME",
            plain=("AZURE_WORKSPACE_NAME", "AZUREML_WORKSPACE_NAME"),
            was=("MLOPS_AZURE_WORKSPACE_NAME",),
        ),
        description="Azure ML workspace name.",
    )
    azure_location: str = Field(
        "eastus",
        validation_alias=variable("AZUREML_LOCATION", plain=("AZURE_LOCATION",), was=("MLOPS_AZURE_LOCATION",)),
        description="Region of the workspace `mlops provision` creates.",
    )
    base_name: str = Field(
        "mlops",
        validation_alias=variable("AZUREML_BASE_NAME", was=("MLOPS_BASE_NAME",)),
        description="Prefix of provisioned resource names (BASE_NAME): 3-10 letters/digits.",
    )

    # ---- environments and the training data asset (AML_ENV_NAME, DATASET_NAME): they follow the package ----
    aml_env_name: str = Field(
        default_factory=derived(lambda package: f"{model_stem(package)}_training_env"),
        validation_alias=variable("AZUREML_TRAINING_ENV_NAME", was=("MLOPS_AML_ENV_NAME",)),
        description="Training environment (AML_ENV_NAME). Unset: <model>_training_env, <model> the package's "
        "model_name without extension and `_model`.",
    )
    aml_env_name_scoring: str = Field(
        default_factory=derived(lambda package: f"{model_stem(package)}_scoring_env"),
        validation_alias=variable("AZUREML_SCORING_ENV_NAME", was=("MLOPS_AML_ENV_NAME_SCORING",)),
        description="Scoring environment. Unset: <model>_scoring_env.",
    )
    dataset_name: str = Field(
        default_factory=derived(lambda package: f"{package.name}_ds"),
        validation_alias=variable("AZUREML_DATASET_NAME", was=("MLOPS_DATASET_NAME",)),
        description="Training data asset name (DATASET_NAME). Unset: <package>_ds.",
    )

    # ---- the training cluster (AML_COMPUTE_CLUSTER_NAME, ..._CPU_SKU, AML_CLUSTER_MIN/MAX_NODES, ..._PRIORITY) ----
    aml_compute_cluster_name: str = Field(
        "train-cluster",
        validation_alias=variable("AZUREML_TRAIN_CLUSTER_NAME", was=("MLOPS_AML_COMPUTE_CLUSTER_NAME",)),
    )
    aml_compute_cluster_sku: str = Field(
        "STANDARD_DS2_V2",
        validation_alias=variable("AZUREML_TRAIN_CLUSTER_SKU", was=("MLOPS_AML_COMPUTE_CLUSTER_SKU",)),
    )
    aml_cluster_min_nodes: int = Field(
        0, ge=0, validation_alias=variable("AZUREML_TRAIN_CLUSTER_MIN_NODES", was=("MLOPS_AML_CLUSTER_MIN_NODES",))
    )
    aml_cluster_max_nodes: int = Field(
        4, ge=1, validation_alias=variable("AZUREML_TRAIN_CLUSTER_MAX_NODES", was=("MLOPS_AML_CLUSTER_MAX_NODES",))
    )
    aml_cluster_priority: Priority = Field(
        "lowpriority",
        validation_alias=variable("AZUREML_TRAIN_CLUSTER_PRIORITY", was=("MLOPS_AML_CLUSTER_PRIORITY",)),
    )

    # ---- the scoring cluster (the same, `_SCORING`) ----
    aml_compute_cluster_name_scoring: str = Field(
        "score-cluster",
        validation_alias=variable("AZUREML_SCORE_CLUSTER_NAME", was=("MLOPS_AML_COMPUTE_CLUSTER_NAME_SCORING",)),
    )
    aml_compute_cluster_sku_scoring: str = Field(
        "STANDARD_DS2_V2",
        validation_alias=variable("AZUREML_SCORE_CLUSTER_SKU", was=("MLOPS_AML_COMPUTE_CLUSTER_SKU_SCORING",)),
    )
    aml_cluster_min_nodes_scoring: int = Field(
        0,
        ge=0,
        validation_alias=variable("AZUREML_SCORE_CLUSTER_MIN_NODES", was=("MLOPS_AML_CLUSTER_MIN_NODES_SCORING",)),
    )
    aml_cluster_max_nodes_scoring: int = Field(
        4,
        ge=1,
        validation_alias=variable("AZUREML_SCORE_CLUSTER_MAX_NODES", was=("MLOPS_AML_CLUSTER_MAX_NODES_SCORING",)),
    )
    aml_cluster_priority_scoring: Priority = Field(
        "lowpriority",
        validation_alias=variable("AZUREML_SCORE_CLUSTER_PRIORITY", was=("MLOPS_AML_CLUSTER_PRIORITY_SCORING",)),
    )

    # ---- online endpoints ----
    aml_online_instance_type: str = Field(
        "Standard_DS3_v2",
        validation_alias=variable("AZUREML_ONLINE_INSTANCE_TYPE", was=("MLOPS_AML_ONLINE_INSTANCE_TYPE",)),
        description="VM size of each online deployment (a managed online deployment's SKU).",
    )
    aml_online_instance_count: int = Field(
        1,
        ge=1,
        validation_alias=variable("AZUREML_ONLINE_INSTANCE_COUNT", was=("MLOPS_AML_ONLINE_INSTANCE_COUNT",)),
        description="Instances of each online deployment.",
    )
    aml_endpoint_auth_mode: Literal["key", "aml_token"] = Field(
        "key",
        validation_alias=variable("AZUREML_ENDPOINT_AUTH_MODE", was=("MLOPS_AML_ENDPOINT_AUTH_MODE",)),
        description="How clients authenticate to the online endpoint: `key` or `aml_token`.",
    )

    # ---- batch endpoints ----
    aml_batch_endpoint_name: str = Field(
        default_factory=derived(lambda package: endpoint_name_for(package, "batch")),
        validation_alias=variable("AZUREML_BATCH_ENDPOINT_NAME", was=("MLOPS_AML_BATCH_ENDPOINT_NAME",)),
        description="Batch endpoint name on Azure ML: 3-32 letters, digits or '-'. Unset: <package>-batch.",
    )
    aml_batch_instance_count: int = Field(
        1,
        ge=1,
        validation_alias=variable("AZUREML_BATCH_INSTANCE_COUNT", was=("MLOPS_AML_BATCH_INSTANCE_COUNT",)),
        description="Nodes of the scoring cluster each batch job runs on (the batch deployment's instance_count); "
        "each runs `parallelism` mini-batches at a time.",
    )
    aml_batch_max_retries: int = Field(
        3,
        ge=0,
        validation_alias=variable("AZUREML_BATCH_MAX_RETRIES", was=("MLOPS_AML_BATCH_MAX_RETRIES",)),
        description="Retries of a failed mini-batch in a batch job.",
    )
    aml_batch_retry_timeout_seconds: int = Field(
        300,
        ge=1,
        validation_alias=variable(
            "AZUREML_BATCH_RETRY_TIMEOUT_SECONDS", was=("MLOPS_AML_BATCH_RETRY_TIMEOUT_SECONDS",)
        ),
        description="A mini-batch of a batch job running longer is stopped and retried.",
    )

    # ---- time bounds ----
    aml_batch_timeout_seconds: float = Field(
        3600,
        gt=0,
        validation_alias=variable("AZUREML_BATCH_TIMEOUT_SECONDS", was=("MLOPS_AML_BATCH_TIMEOUT_SECONDS",)),
        description="How long batch scoring waits for the batch job before cancelling it.",
    )
    aml_deploy_timeout_seconds: float = Field(
        1800,
        gt=0,
        validation_alias=variable("AZUREML_DEPLOY_TIMEOUT_SECONDS", was=("MLOPS_AML_DEPLOY_TIMEOUT_SECONDS",)),
        description="How long one endpoint or deployment operation may take on Azure ML.",
    )
    aml_image_build_seconds: float = Field(
        1800,
        ge=0,
        validation_alias=variable("AZUREML_IMAGE_BUILD_SECONDS", was=("MLOPS_AML_IMAGE_BUILD_SECONDS",)),
        description="Added to a deployment's wait when its scoring environment was just created: Azure ML builds "
        "the environment's image first (10-20 min).",
    )
    azureml_registry_name: str | None = Field(
        None,
        description="The Azure ML registry `mlops promote` shares models through when the target environment is on "
        "Azure ML (`MLClient(registry_name=...)`, in the registry's own subscription and resource group).",
    )
    azureml_poll_seconds: float | None = Field(
        None, gt=0, description="Seconds between job status checks. Unset: 10 on Azure, 0.5 with the emulator."
    )

    # ---- the local Azure ML emulator ----
    azureml_emulator: str | None = Field(
        None,
        description="`1`: talk to the local Azure ML emulator (`mlops emulator up`) instead of Azure; "
        "or the emulator's URL, https://127.0.0.1:PORT.",
    )
    azureml_emulator_port: int = Field(
        5830, ge=1, le=65535, description="Port of the local Azure ML emulator on 127.0.0.1."
    )
    azureml_emulator_endpoint_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="First port of the emulator's online endpoints (one each, upward); unset: the emulator's port + 1.",
    )
    azureml_emulator_lro_scale: float = Field(
        0.0,
        ge=0,
        description="The emulator's long-running operations take Azure's recorded time times this (1: an endpoint "
        "51 s, a deployment 390 s, a traffic update 70 s, `Creating`/`Updating` meanwhile); 0: done at once.",
    )
    azureml_emulator_identity_datastores: bool = Field(
        False,
        description="The emulator's datastores are identity-based, as in a workspace whose system datastores use "
        "Microsoft Entra ID: no secrets, and blob access with the caller's own token (which needs a Storage Blob "
        "Data role on Azure).",
    )

    @field_validator("dataset_name", "aml_env_name", "aml_env_name_scoring")
    @classmethod
    def _azureml_asset_names(cls, value: str) -> str:
        return asset_name(value)

    @field_validator("aml_batch_endpoint_name")
    @classmethod
    def _batch_endpoint_name(cls, value: str) -> str:
        return endpoint_name(value)

    @field_validator("base_name")
    @classmethod
    def _base_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9]{3,10}", value):
            raise ValueError("must be 3 to 10 letters or digits (it prefixes storage account names)")
        return value

    @field_validator("azureml_emulator")
    @classmethod
    def _emulator(cls, value: str | None) -> str | None:
        if value is None or value.lower() in ON or value.lower() in OFF:
            return value
        if re.fullmatch(r"https://[^/\s]+", value.rstrip("/")):
            return value.rstrip("/")
        raise ValueError("must be 1 (the local emulator), 0, or the emulator's https:// URL (the SDK needs TLS)")

    @model_validator(mode="after")
    def _cluster_checks(self) -> AzureMLSettings:
        if self.aml_cluster_min_nodes > self.aml_cluster_max_nodes:
            raise ValueError(
                "MLOPS_AZUREML_TRAIN_CLUSTER_MIN_NODES must not exceed MLOPS_AZUREML_TRAIN_CLUSTER_MAX_NODES"
            )
        if self.aml_cluster_min_nodes_scoring > self.aml_cluster_max_nodes_scoring:
            raise ValueError(
                "MLOPS_AZUREML_SCORE_CLUSTER_MIN_NODES must not exceed MLOPS_AZUREML_SCORE_CLUSTER_MAX_NODES"
            )
        if self.aml_batch_instance_count > self.aml_cluster_max_nodes_scoring:
            # a batch job asks the scoring cluster for instance_count nodes at once; it has at most max_instances
            raise ValueError(
                "MLOPS_AZUREML_BATCH_INSTANCE_COUNT must not exceed MLOPS_AZUREML_SCORE_CLUSTER_MAX_NODES "
                "(the cluster's nodes)"
            )
        return self

    @property
    def emulator_url(self) -> str | None:
        """The Azure ML emulator to talk to instead of Azure, or None for real Azure."""
        value = self.azureml_emulator
        if value is None or value.lower() in OFF:
            return None
        if value.lower() in ON:
            return f"https://127.0.0.1:{self.azureml_emulator_port}"
        return value

    @property
    def local_emulator(self) -> bool:
        """Whether the emulator to use is the one `mlops emulator up` (and `mlops up`) runs here."""
        return self.azureml_emulator is not None and self.azureml_emulator.lower() in ON

    def regional_name(self, base: str) -> str:
        """`base` plus 8 hex digits of the subscription, resource group and workspace: within Azure's endpoint name
        rules (3-32 letters, digits or '-', starting with a letter) and unlikely to be held by anyone else."""
        where = f"{self.azure_subscription_id or ''}/{self.azure_resource_group}/{self.azure_workspace_name}"
        suffix = "-" + hashlib.sha256(where.lower().encode()).hexdigest()[:8]
        return base[: 32 - len(suffix)].rstrip("-") + suffix
