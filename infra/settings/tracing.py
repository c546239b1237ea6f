"""Tracing (OpenTelemetry): on or off. Where spans go is `infra.telemetry`'s (standard OpenTelemetry variables)."""

from __future__ import annotations

from pydantic import Field

from infra.sections import Section


class TracingSettings(Section):
    """MLOPS_TRACING, read once here for the CLI, the flows and the servers (`infra.telemetry.tracing_enabled`)."""

    tracing: bool = Field(True, description="Trace flow runs, tasks and scoring requests (OpenTelemetry).")
