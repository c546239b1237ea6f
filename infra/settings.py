"""Typed settings: *where* things run. Read from `MLOPS_*` environment variables and `.env`.

Nothing is read at import time: call `load_settings()`. A bad value raises `ConfigError` naming the
variable, before any work starts. The README maps every MLOpsPython variable to its counterpart
here, or says why it is gone.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from infra.errors import ConfigError
from model.package import ContractError, ModelPackage, load_package, moved_package

ENV_PREFIX = "MLOPS_"
_ON = ("1", "true", "yes", "on")
_OFF = ("0", "false", "no", "off", "")
_AZURE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,254}$")


def checkout_root() -> Path:
    """The folder holding `pyproject.toml` when the project is installed from a checkout, else the working directory."""
    here = Path(__file__).resolve().parents[1]
    return here if (here / "pyproject.toml").is_file() else Path.cwd()


def _azure(name: str) -> Any:
    """Accept `MLOPS_AZURE_<NAME>` and the plain `AZURE_<NAME>` that Azure tooling already uses."""
    return AliasChoices(f"{ENV_PREFIX}AZURE_{name}", f"AZURE_{name}")


class Settings(BaseSettings):
    """Every setting, with its environment variable `MLOPS_<FIELD>` (Azure ones also `AZURE_<NAME>`)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="ignore",
        env_ignore_empty=True,
        validate_default=True,
        frozen=True,
        populate_by_name=True,
    )

    # ---- where things run ----
    backend: Literal["local", "azureml"] = Field("local", description="`local` (no cloud) or `azureml`.")
    home: Path = Field(
        default_factory=lambda: checkout_root() / ".mlops",
        description="Local workspace folder: registry, jobs, model files, endpoint state.",
    )

    # ---- the model (MODEL_NAME, EXPERIMENT_NAME) ----
    model_package: Path = Field(
        default_factory=lambda: checkout_root() / "models" / "diabetes",
        description="The model package: a folder with mlops-model.toml (a relative path is from the checkout).",
    )
    model_name: str = Field(
        "diabetes_regression_model.pkl",
        description="Registered model name (MODEL_NAME). Unset: the package's model_name.",
    )
    experiment_name: str = Field("mlopspython", description="Experiment name, a tag on every model (EXPERIMENT_NAME).")
    data_file: Path | None = Field(
        None, description="Training CSV. Unset: scikit-learn's diabetes data, written to HOME/data/diabetes.csv."
    )
    params_file: Path | None = Field(
        None, description="Hyperparameters file (MLOpsPython's parameters.json layout). Unset: the package's."
    )
    train_timeout_seconds: float = Field(3600, gt=0, description="A training job running longer is stopped.")

    # ---- the online endpoint (ACI/AKS/WEBAPP_DEPLOYMENT_NAME) ----
    endpoint_name: str = Field("diabetes-endpoint", description="Online endpoint name: 3-32 letters, digits or '-'.")
    endpoint_port: int = Field(5801, ge=1, le=65535, description="Port of the local endpoint on 127.0.0.1.")
    endpoint_max_body_bytes: int = Field(1 << 20, ge=1024, description="Larger scoring requests get 413.")
    endpoint_collect_percent: float = Field(
        100,
        ge=0,
        le=100,
        description="Share of scored requests whose inputs and outputs the endpoint keeps for the drift monitor.",
    )
    endpoint_start_timeout_seconds: float = Field(60, gt=0, description="How long to wait for the endpoint to answer.")

    # ---- batch scoring (SCORING_DATASTORE_*, SCORING_DATASET_NAME) ----
    batch_output: str | None = Field(
        None, description="Where scored files go: a folder or blob://<container>/<prefix>. Unset: HOME/batch-output."
    )
    scoring_input_container: str = Field(
        "input", description="Blob container of scoring input (SCORING_DATASTORE_INPUT_CONTAINER)."
    )
    scoring_input_filename: str = Field(
        "diabetes_scoring_input.csv", description="Scoring input file name (SCORING_DATASTORE_INPUT_FILENAME)."
    )
    scoring_output_container: str = Field(
        "output", description="Blob container of scored output (SCORING_DATASTORE_OUTPUT_CONTAINER)."
    )
    scoring_output_filename: str = Field(
        "diabetes_scoring_output.csv",
        description="Output name: <date>/<stem>_<time>.<ext> (SCORING_DATASTORE_OUTPUT_FILENAME).",
    )
    scoring_dataset_name: str = Field(
        "diabetes_scoring_ds", description="Scoring data asset name on Azure ML (SCORING_DATASET_NAME)."
    )

    # ---- logs of the long-lived processes (endpoint, Prefect server and worker, PostgreSQL, Azurite, emulator) ----
    log_max_bytes: int = Field(
        50 << 20, ge=1024, description="A process's log is rotated when it reaches this size (bytes)."
    )
    log_files: int = Field(5, ge=1, le=100, description="Files kept per log: the current one and the rotated ones.")

    # ---- tracing and drift ----
    tracing: bool = Field(True, description="Trace flow runs, tasks and scoring requests (OpenTelemetry).")
    drift_psi_threshold: float = Field(
        0.2, gt=0, description="A feature drifts when its PSI reaches this (and its KS p-value is low)."
    )
    drift_ks_p_value: float = Field(
        0.01, gt=0, lt=1, description="... and the two-sample KS test's p-value is under this."
    )
    drift_min_rows: int = Field(50, ge=2, description="Fewer recent scoring rows than this decide nothing.")
    drift_window_hours: float = Field(
        24, gt=0, description="Recent = scored in the last this many hours (batch runs and online requests)."
    )
    drift_retrain_on_scoring_data: bool = Field(
        False,
        description="On drift, retrain on the drifted input file itself when it carries the target column "
        "(labelled feedback); otherwise on the configured training data.",
    )

    # ---- blob storage (prefect-azure); never passed on a command line ----
    blob_connection_string: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices(f"{ENV_PREFIX}BLOB_CONNECTION_STRING", "AZURE_STORAGE_CONNECTION_STRING"),
        description="Storage connection string (Azurite's for local use).",
    )
    blob_account_url: str | None = Field(None, description="Storage account URL, authenticated with azure-identity.")
    blob_credentials_block: str | None = Field(None, description="Name of a saved AzureBlobStorageCredentials block.")

    # ---- the local platform (`mlops up`) ----
    prefect_port: int = Field(
        4200, ge=1, le=65535, description="Port of the Prefect server `mlops up` starts on 127.0.0.1."
    )
    prefect_database: Literal["postgres", "sqlite"] = Field(
        "postgres",
        description="Database of the platform's Prefect server: `postgres` (a cluster `mlops up` runs) or `sqlite`.",
    )
    prefect_database_url: SecretStr | None = Field(
        None,
        description="An existing PostgreSQL for the platform's Prefect server (postgresql://user:pw@host:port/db); "
        "`mlops up` then starts no database.",
    )
    postgres_port: int = Field(
        55432, ge=1, le=65535, description="Port of the PostgreSQL cluster `mlops up` runs on 127.0.0.1."
    )
    postgres_bin: Path | None = Field(
        None,
        description="Folder of PostgreSQL's programs (initdb, postgres). Unset: the newest /usr/lib/postgresql/*/bin, "
        "else initdb on PATH.",
    )
    blob_emulator: Literal["none", "azurite"] = Field(
        "none", description="`azurite`: `mlops up` runs Azurite as blob storage."
    )
    azurite_port: int = Field(10000, ge=1, le=65535, description="Port of Azurite's blob service on 127.0.0.1.")

    # ---- CI provenance (BUILD_BUILDID, BUILD_URI) ----
    build_id: str | None = Field(None, description="CI build id, a `BuildId` tag on registered models.")
    build_uri: str | None = Field(None, description="CI build URL, a `BuildUri` tag on registered models.")

    # ---- Azure ML (backend=azureml) ----
    azure_subscription_id: str | None = Field(None, validation_alias=_azure("SUBSCRIPTION_ID"))
    azure_tenant_id: str | None = Field(None, validation_alias=_azure("TENANT_ID"))
    azure_resource_group: str = Field("mlops-RG", validation_alias=_azure("RESOURCE_GROUP"))
    azure_workspace_name: str = Field(
        "mlops-aml-ws",
        validation_alias=AliasChoices(
            f"{ENV_PREFIX}AZURE_WORKSPACE_NAME", "AZURE_WORKSPACE_NAME", "AZUREML_WORKSPACE_NAME"
        ),
    )
    azure_location: str = Field("eastus", validation_alias=_azure("LOCATION"))
    base_name: str = Field(
        "mlops", description="Prefix of provisioned resource names (BASE_NAME): 3-10 letters/digits."
    )
    aml_env_name: str = Field("diabetes_regression_training_env", description="Training environment (AML_ENV_NAME).")
    aml_env_name_scoring: str = Field("diabetes_regression_scoring_env", description="Scoring environment.")
    aml_compute_cluster_name: str = Field("train-cluster")
    aml_compute_cluster_sku: str = Field("STANDARD_DS2_V2")
    aml_cluster_min_nodes: int = Field(0, ge=0)
    aml_cluster_max_nodes: int = Field(4, ge=1)
    aml_cluster_priority: Literal["lowpriority", "dedicated"] = "lowpriority"
    aml_compute_cluster_name_scoring: str = Field("score-cluster")
    aml_compute_cluster_sku_scoring: str = Field("STANDARD_DS2_V2")
    aml_cluster_min_nodes_scoring: int = Field(0, ge=0)
    aml_cluster_max_nodes_scoring: int = Field(4, ge=1)
    aml_cluster_priority_scoring: Literal["lowpriority", "dedicated"] = "lowpriority"
    aml_online_instance_type: str = Field(
        "Standard_DS3_v2", description="VM size of each online deployment (a managed online deployment's SKU)."
    )
    aml_online_instance_count: int = Field(1, ge=1, description="Instances of each online deployment.")
    aml_endpoint_auth_mode: Literal["key", "aml_token"] = Field(
        "key", description="How clients authenticate to the online endpoint: `key` or `aml_token`."
    )
    aml_batch_endpoint_name: str = Field(
        "diabetes-batch", description="Batch endpoint name on Azure ML: 3-32 letters, digits or '-'."
    )
    aml_batch_instance_count: int = Field(
        1,
        ge=1,
        description="Nodes of the scoring cluster each batch job runs on (the batch deployment's instance_count); "
        "each runs `parallelism` mini-batches at a time.",
    )
    aml_batch_max_retries: int = Field(3, ge=0, description="Retries of a failed mini-batch in a batch job.")
    aml_batch_retry_timeout_seconds: int = Field(
        300, ge=1, description="A mini-batch of a batch job running longer is stopped and retried."
    )
    aml_batch_timeout_seconds: float = Field(
        3600, gt=0, description="How long batch scoring waits for the batch job before cancelling it."
    )
    aml_deploy_timeout_seconds: float = Field(
        1800, gt=0, description="How long one endpoint or deployment operation may take on Azure ML."
    )
    aml_image_build_seconds: float = Field(
        1800,
        ge=0,
        description="Added to a deployment's wait when its scoring environment was just created: Azure ML builds "
        "the environment's image first (10-20 min).",
    )
    dataset_name: str = Field("diabetes_ds", description="Training data asset name (DATASET_NAME).")
    dataset_version: str = Field("latest", description="Training data asset version (DATASET_VERSION).")
    datastore_name: str | None = Field(None, description="Datastore of the training data; unset = workspace default.")
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
    azureml_poll_seconds: float | None = Field(
        None, gt=0, description="Seconds between job status checks. Unset: 10 on Azure, 0.5 with the emulator."
    )

    @field_validator("model_name", "experiment_name", "dataset_name", "aml_env_name", "aml_env_name_scoring")
    @classmethod
    def _asset_name(cls, value: str) -> str:
        if not _AZURE_NAME.match(value):
            raise ValueError(
                "must start with a letter or digit and hold only letters, digits, '-', '_' or '.' (at most 255)"
            )
        return value

    @field_validator("endpoint_name", "aml_batch_endpoint_name")
    @classmethod
    def _endpoint_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{1,30}[A-Za-z0-9]", value):
            raise ValueError("must be 3 to 32 letters, digits or '-', start with a letter and not end with '-'")
        return value

    @field_validator("base_name")
    @classmethod
    def _base_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9]{3,10}", value):
            raise ValueError("must be 3 to 10 letters or digits (it prefixes storage account names)")
        return value

    @field_validator("azureml_emulator")
    @classmethod
    def _emulator(cls, value: str | None) -> str | None:
        if value is None or value.lower() in _ON or value.lower() in _OFF:
            return value
        if re.fullmatch(r"https://[^/\s]+", value.rstrip("/")):
            return value.rstrip("/")
        raise ValueError("must be 1 (the local emulator), 0, or the emulator's https:// URL (the SDK needs TLS)")

    @model_validator(mode="before")
    @classmethod
    def _package_defaults(cls, data: Any) -> Any:
        """The registered model's name comes from the package's manifest unless MLOPS_MODEL_NAME is set."""
        if not isinstance(data, dict) or data.get("model_name"):
            return data
        folder = data.get("model_package")
        try:
            package = load_package(_package_path(Path(folder)) if folder else checkout_root() / "models" / "diabetes")
        except ContractError:
            return data  # the field's own validator reports it
        return {**data, "model_name": package.model_name}

    @field_validator("model_package")
    @classmethod
    def _model_package(cls, value: Path) -> Path:
        path = _package_path(value)
        try:
            load_package(path)
        except ContractError as exc:
            raise ValueError(str(exc)) from None
        return path

    @field_validator("home")
    @classmethod
    def _home(cls, value: Path) -> Path:
        value = value.expanduser().resolve()
        if value.exists() and not value.is_dir():
            raise ValueError("exists and is not a folder")
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> Settings:
        if self.aml_cluster_min_nodes > self.aml_cluster_max_nodes:
            raise ValueError(_field_message("aml_cluster_min_nodes", "must not exceed MLOPS_AML_CLUSTER_MAX_NODES"))
        if self.aml_cluster_min_nodes_scoring > self.aml_cluster_max_nodes_scoring:
            raise ValueError(
                _field_message("aml_cluster_min_nodes_scoring", "must not exceed MLOPS_AML_CLUSTER_MAX_NODES_SCORING")
            )
        if self.aml_batch_instance_count > self.aml_cluster_max_nodes_scoring:
            # a batch job asks the scoring cluster for instance_count nodes at once; it has at most max_instances
            raise ValueError(
                _field_message(
                    "aml_batch_instance_count",
                    "must not exceed MLOPS_AML_CLUSTER_MAX_NODES_SCORING (the cluster's nodes)",
                )
            )
        if self.backend == "azureml" and not self.azure_subscription_id and self.emulator_url is None:
            raise ValueError(
                _field_message(
                    "azure_subscription_id",
                    "is required when MLOPS_BACKEND=azureml (or MLOPS_AZUREML_EMULATOR=1 for the local emulator)",
                )
            )
        if self.backend == "azureml":
            # Azure ML endpoint names are unique per region across all customers ("Endpoint name needs to be
            # unique within a region"): a default like `diabetes-endpoint` is taken. Unless set, each gets a
            # suffix of its own, stable for this subscription and workspace.
            for field in ("endpoint_name", "aml_batch_endpoint_name"):
                if field not in self.model_fields_set:
                    object.__setattr__(self, field, regional_endpoint_name(str(getattr(self, field)), self))
        return self

    @property
    def package(self) -> ModelPackage:
        """The model package's manifest (read once per process and folder)."""
        return _package(self.model_package)

    @property
    def parameters_file(self) -> Path:
        return self.params_file or self.package.parameters

    # ---- derived locations (all under `home`) ----
    @property
    def registry_path(self) -> Path:
        return self.home / "registry.db"

    @property
    def default_data_file(self) -> Path:
        return self.home / "data" / f"{self.package.name}.csv"

    @property
    def default_scoring_file(self) -> Path:
        return self.home / "data" / self.scoring_input_filename

    @property
    def blob_configured(self) -> bool:
        explicit = self.blob_connection_string or self.blob_account_url or self.blob_credentials_block
        return bool(explicit) or self.blob_emulator == "azurite"

    @property
    def emulator_url(self) -> str | None:
        """The Azure ML emulator to talk to instead of Azure, or None for real Azure."""
        value = self.azureml_emulator
        if value is None or value.lower() in _OFF:
            return None
        if value.lower() in _ON:
            return f"https://127.0.0.1:{self.azureml_emulator_port}"
        return value

    @property
    def local_emulator(self) -> bool:
        """Whether the emulator to use is the one `mlops emulator up` (and `mlops up`) runs here."""
        return self.azureml_emulator is not None and self.azureml_emulator.lower() in _ON

    @property
    def emulator_dir(self) -> Path:
        """State, certificates, blobs and job folders of the local Azure ML emulator."""
        return self.home / "emulator"

    @property
    def telemetry_dir(self) -> Path:
        """Spans written as files (when no Azure Monitor or OTLP destination is set), read by `mlops trace`."""
        return self.home / "telemetry"

    @property
    def platform_dir(self) -> Path:
        """Pids, logs and the database of the processes `mlops up` starts."""
        return self.home / "platform"


def _package_path(value: Path) -> Path:
    value = value.expanduser()
    return moved_package((value if value.is_absolute() else checkout_root() / value).resolve())


@functools.lru_cache(maxsize=8)
def _package(folder: Path) -> ModelPackage:
    return load_package(folder)


def env_var(field: str) -> str:
    """The environment variable of a settings field."""
    return f"{ENV_PREFIX}{field.upper()}"


def _field_message(field: str, rule: str) -> str:
    return f"{env_var(field)} {rule}"


def load_settings(**overrides: Any) -> Settings:
    """Build the settings from the environment, a dotenv file, and `overrides`.

    The dotenv file is `MLOPS_ENV_FILE` when set (empty: none), else `.env` in the checkout and in
    the working directory. The environment wins over the file.

    Raises:
        ConfigError: one line per bad variable, naming it, its value and the rule it breaks.
    """
    chosen = os.environ.get(f"{ENV_PREFIX}ENV_FILE")
    if chosen is not None:
        env_files = [Path(chosen)] if chosen else []
        if chosen and not Path(chosen).is_file():
            raise ConfigError(f"{ENV_PREFIX}ENV_FILE={chosen!r}: no such file")
    else:
        env_files = list(dict.fromkeys([checkout_root() / ".env", Path.cwd() / ".env"]))
    try:
        return Settings(_env_file=env_files or None, **overrides)  # type: ignore[call-arg]
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        message = str(error["msg"]).removeprefix("Value error, ")
        if not field:  # a cross-field rule already names its variable
            lines.append(message)
            continue
        alias = Settings.model_fields[field].validation_alias if field in Settings.model_fields else None
        name = " or ".join(alias.choices) if isinstance(alias, AliasChoices) else env_var(field)  # type: ignore[arg-type]
        secret = field in Settings.model_fields and Settings.model_fields[field].annotation in (
            SecretStr,
            SecretStr | None,
        )
        shown = "<hidden>" if secret else repr(error.get("input"))
        lines.append(f"{name}={shown}: {message}")
    return "invalid settings:\n  " + "\n  ".join(lines)


def regional_endpoint_name(base: str, settings: Settings) -> str:
    """`base` plus 8 hex digits of the subscription, resource group and workspace: within Azure's endpoint name
    rules (3-32 letters, digits or '-', starting with a letter) and unlikely to be held by anyone else."""
    where = f"{settings.azure_subscription_id or ''}/{settings.azure_resource_group}/{settings.azure_workspace_name}"
    suffix = "-" + hashlib.sha256(where.lower().encode()).hexdigest()[:8]
    return base[: 32 - len(suffix)].rstrip("-") + suffix
