"""Batch scoring (SCORING_DATASTORE_*, SCORING_DATASET_NAME): the file and data asset names follow the package."""

from __future__ import annotations

from pydantic import Field

from infra.sections import DERIVED, Section, derived

DERIVED.update({"scoring_input_filename", "scoring_output_filename", "scoring_dataset_name"})


class BatchSettings(Section):
    """Where scoring input comes from and scored files go."""

    batch_output: str | None = Field(
        None, description="Where scored files go: a folder or blob://<container>/<prefix>. Unset: HOME/batch-output."
    )
    scoring_input_container: str = Field(
        "input", description="Blob container of scoring input (SCORING_DATASTORE_INPUT_CONTAINER)."
    )
    scoring_input_filename: str = Field(
        default_factory=derived(lambda package: f"{package.name}_scoring_input.csv"),
        description="Scoring input file name (SCORING_DATASTORE_INPUT_FILENAME). Unset: <package>_scoring_input.csv.",
    )
    scoring_output_container: str = Field(
        "output", description="Blob container of scored output (SCORING_DATASTORE_OUTPUT_CONTAINER)."
    )
    scoring_output_filename: str = Field(
        default_factory=derived(lambda package: f"{package.name}_scoring_output.csv"),
        description="Output name: <date>/<stem>_<time>.<ext> (SCORING_DATASTORE_OUTPUT_FILENAME). "
        "Unset: <package>_scoring_output.csv.",
    )
    scoring_dataset_name: str = Field(
        default_factory=derived(lambda package: f"{package.name}_scoring_ds"),
        description="Scoring data asset name on Azure ML (SCORING_DATASET_NAME). Unset: <package>_scoring_ds.",
    )
    batch_reuse_scored: bool = Field(
        True,
        description="Local batch scoring: a mini-batch whose bytes, model and scoring files were scored before in "
        "this workspace takes that earlier part file instead of being scored again. false: always score.",
    )
