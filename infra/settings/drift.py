"""The drift monitor: when a feature drifts, what counts as recent, and what a retrain trains on."""

from __future__ import annotations

from pydantic import Field

from infra.sections import Section


class DriftSettings(Section):
    """PSI and KS thresholds, the window, and the retrain's data."""

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
