"""The model: which package, its registered name, its training data and parameters, CI provenance on each version."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from infra.sections import DERIVED, Section, asset_name, checkout_root, derived, package_folder

DERIVED.add("model_name")


class ModelSettings(Section):
    """MODEL_NAME, EXPERIMENT_NAME, the training data and the CI build (BUILD_BUILDID, BUILD_URI)."""

    model_package: Path = Field(
        default_factory=lambda: checkout_root() / "models" / "diabetes",
        description="The model package: a folder with mlops-model.toml (a relative path is from the checkout).",
    )
    model_name: str = Field(
        default_factory=derived(lambda package: package.model_name),
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

    # ---- CI provenance (BUILD_BUILDID, BUILD_URI) ----
    build_id: str | None = Field(None, description="CI build id, a `BuildId` tag on registered models.")
    build_uri: str | None = Field(None, description="CI build URL, a `BuildUri` tag on registered models.")

    @field_validator("model_package")
    @classmethod
    def _model_package(cls, value: Path) -> Path:
        return package_folder(value)

    @field_validator("model_name", "experiment_name")
    @classmethod
    def _model_asset_names(cls, value: str) -> str:
        return asset_name(value)
