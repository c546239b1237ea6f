"""The quality gate: should a candidate model replace the champion? A pure function of two metric sets.

MLOpsPython compared `mse` with a strict `<` and cancelled the whole pipeline when the answer was
no. Here the answer is a `Decision`, never an error: the caller reports it and ends normally.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from model.errors import ModelError


@dataclass(frozen=True)
class GatePolicy:
    """How a candidate is compared with the champion.

    Attributes:
        metric: the metric to compare (a key of `metrics.json`).
        direction: "minimize" when lower is better (mse), "maximize" when higher is (r2).
        min_improvement: the candidate must beat the champion by more than this (absolute).
        promote_ties: promote when the improvement equals `min_improvement` exactly (default no,
            as in MLOpsPython).
    """

    metric: str = "mse"
    direction: Literal["minimize", "maximize"] = "minimize"
    min_improvement: float = 0.0
    promote_ties: bool = False

    def __post_init__(self) -> None:
        if self.direction not in ("minimize", "maximize"):
            raise ValueError(f"gate direction must be 'minimize' or 'maximize', got {self.direction!r}")
        if not math.isfinite(self.min_improvement) or self.min_improvement < 0:
            raise ValueError(f"gate min_improvement must be a non-negative number, got {self.min_improvement!r}")


@dataclass(frozen=True)
class Decision:
    """The gate's answer, with what it compared and why."""

    promoted: bool
    reason: str
    metric: str
    candidate: float
    champion: float | None = None
    champion_version: int | None = None
    forced: bool = False


def decide(
    candidate: dict[str, float],
    champion: dict[str, float] | None,
    policy: GatePolicy,
    *,
    champion_version: int | None = None,
    force: bool = False,
) -> Decision:
    """Compare `candidate` metrics with `champion` metrics (None when there is no champion yet).

    Raises:
        ModelError: the candidate or the champion has no finite value for `policy.metric`.
    """
    value = _metric(candidate, policy.metric, "candidate")
    if champion is None:
        return Decision(True, "no champion yet: this is the first model, so it is promoted", policy.metric, value)
    baseline = _metric(champion, policy.metric, f"champion version {champion_version}")
    gain = baseline - value if policy.direction == "minimize" else value - baseline
    better = gain > policy.min_improvement or (policy.promote_ties and gain == policy.min_improvement)
    verdict = _explain(policy, value, baseline, gain, champion_version, better)
    if force and not better:
        verdict = f"forced: registered although the gate said no ({verdict})"
    return Decision(
        better or force, verdict, policy.metric, value, baseline, champion_version, forced=force and not better
    )


def _metric(metrics: dict[str, float], name: str, whose: str) -> float:
    value = metrics.get(name)
    if not isinstance(value, int | float) or not math.isfinite(value):
        known = ", ".join(sorted(metrics)) or "none"
        raise ModelError(f"{whose} has no finite {name!r} metric (it has: {known}); choose a gate metric both have")
    return float(value)


def _explain(policy: GatePolicy, value: float, baseline: float, gain: float, version: int | None, better: bool) -> str:
    lower_or_higher = "lower" if policy.direction == "minimize" else "higher"
    numbers = f"candidate {policy.metric} {value:.6g} vs champion (version {version}) {baseline:.6g}"
    needed = f"more than {policy.min_improvement:g}" if policy.min_improvement else "strictly"
    if better:
        return f"promoted: {numbers}; {lower_or_higher} is better and it improves by {gain:.6g}"
    if gain == 0:
        return f"not promoted: {numbers}; equal scores are not promoted unless promote_ties is set"
    return f"not promoted: {numbers}; {lower_or_higher} is better, and the candidate must improve {needed} (improvement {gain:.6g})"
