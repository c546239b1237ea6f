"""The drift monitor and the retraining loop: when a feature drifts, what counts as recent, what a retrain trains on,
when live performance counts as degraded, and what drift or degradation does (the policy and its cooldown)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from infra.sections import Section


class DriftSettings(Section):
    """PSI and KS thresholds, the window, the retrain's data, the degradation margin, the policy and its cooldown."""

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
    retrain_policy: Literal["retrain", "suggest", "off"] = Field(
        "retrain",
        description="What drift or a degraded live metric does: retrain (emit mlops.retrain.requested, which starts "
        "train-register), suggest (emit mlops.retrain.suggested and an artifact; a person runs `mlops train`), or off.",
    )
    retrain_cooldown_hours: float = Field(
        24,
        ge=0,
        description="After a retrain is requested (or suggested) for a model version and cause, the same again within "
        "this many hours is deduplicated (0: never).",
    )
    degraded_margin: float = Field(
        0.1,
        ge=0,
        description="A live metric (from labels) worse than the version's training metric by more than this fraction "
        "of it emits mlops.model.degraded.",
    )
