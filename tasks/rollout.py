"""The values a deployment rollout works with: its policy (a flow parameter) and its plan."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class RolloutPolicy(BaseModel):
    """How traffic moves to a new deployment: the steps (percent), and what each step's check requires."""

    model_config = ConfigDict(frozen=True)

    steps: list[int] = Field(
        default=[10, 50, 100], description="Traffic percentages for the new deployment, ending at 100."
    )
    requests_per_step: int = Field(
        default=20, ge=1, le=10_000, description="Requests sent through the endpoint at each step."
    )
    max_latency_ms: float = Field(default=1000.0, gt=0, description="Slowest acceptable answer at a step.")
    mirror_percent: int = Field(
        default=0,
        ge=0,
        le=50,
        description="A mirror step before live traffic moves: this share of requests is also copied to the new "
        "deployment (mirror traffic; its answers are dropped). 0: no mirror step.",
    )

    @field_validator("steps")
    @classmethod
    def _steps(cls, steps: list[int]) -> list[int]:
        if not steps or steps[-1] != 100 or any(not 0 < s <= 100 for s in steps) or steps != sorted(set(steps)):
            raise ValueError(f"steps must rise strictly within 1..100 and end at 100, got {steps}")
        return steps


class RolloutPlan(BaseModel):
    """The new deployment staged beside the live one, and what every deployment should answer to the smoke request."""

    model_config = ConfigDict(frozen=True)

    endpoint: str
    new: str
    live: str | None
    model: str
    previous_traffic: dict[str, int]
    expected: dict[str, list[float]]
    request: str = ""  # the smoke request: the new bundle's sample request
