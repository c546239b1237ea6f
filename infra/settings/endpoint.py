"""The online endpoint (ACI/AKS/WEBAPP_DEPLOYMENT_NAME): its name follows the model package."""

from __future__ import annotations

from pydantic import Field, field_validator

from infra.sections import DERIVED, Section, derived, endpoint_name, endpoint_name_for

DERIVED.add("endpoint_name")


class EndpointSettings(Section):
    """Name, port, body limit, what it keeps for the drift monitor (a share, capped by size and age), micro-batching
    and its queue, and how long it may take to start."""

    endpoint_name: str = Field(
        default_factory=derived(lambda package: endpoint_name_for(package, "endpoint")),
        description="Online endpoint name: 3-32 letters, digits or '-'. Unset: <package>-endpoint.",
    )
    endpoint_port: int = Field(5801, ge=1, le=65535, description="Port of the local endpoint on 127.0.0.1.")
    endpoint_max_body_bytes: int = Field(1 << 20, ge=1024, description="Larger scoring requests get 413.")
    endpoint_collect_percent: float = Field(
        100,
        ge=0,
        le=100,
        description="Share of scored requests whose inputs and outputs the endpoint keeps for the drift monitor.",
    )
    endpoint_batching: bool = Field(
        True,
        description="Score requests that arrive while a scoring call runs together in the next call, when the "
        "bundle's manifest allows it ([score] micro_batching); false: one request per call.",
    )
    endpoint_batch_max_rows: int = Field(1000, ge=1, description="At most this many rows in one batched scoring call.")
    endpoint_max_queue: int = Field(
        128, ge=1, description="Requests waiting to be scored; past it a scoring request gets 503 with Retry-After."
    )
    endpoint_collect_max_mb: float = Field(
        1024,
        gt=0,
        description="Most megabytes (MiB) of collected requests kept on disk; the oldest segments go first.",
    )
    endpoint_collect_max_age_hours: float = Field(
        168, gt=0, description="Collected requests older than this are deleted (default a week)."
    )
    endpoint_start_timeout_seconds: float = Field(60, gt=0, description="How long to wait for the endpoint to answer.")

    @field_validator("endpoint_name")
    @classmethod
    def _online_endpoint_name(cls, value: str) -> str:
        return endpoint_name(value)
