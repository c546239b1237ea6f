"""Tracing (OpenTelemetry): on or off. Where spans go is `infra.telemetry`'s (standard OpenTelemetry variables)."""

from __future__ import annotations

from pydantic import Field

from infra.sections import Section


class TracingSettings(Section):
    """MLOPS_TRACING, read once here for the CLI, the flows and the servers (`infra.telemetry.tracing_enabled`), and how
    much of its span files an endpoint keeps."""

    tracing: bool = Field(True, description="Trace flow runs, tasks and scoring requests (OpenTelemetry).")
    telemetry_max_mb: float = Field(
        256, gt=0, description="Most megabytes (MiB) of span files an endpoint keeps under MLOPS_HOME/telemetry."
    )
    telemetry_max_age_hours: float = Field(
        168, gt=0, description="An endpoint's span files older than this are deleted."
    )
