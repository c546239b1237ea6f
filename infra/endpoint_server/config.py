"""How an endpoint server is run: one value, from the settings (or the emulator) to the server's command line."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from infra.settings import Settings

MIB = 1 << 20


@dataclass(frozen=True)
class EndpointConfig:
    """`port` on 127.0.0.1; `tls` (certificate, key) makes it answer HTTPS; `telemetry_dir` is where its spans go
    as files (default: MLOPS_HOME/telemetry of its environment); `port_variable` is named when the port is taken;
    `batching`, `batch_max_rows` and `max_queue` are the scoring queue's (`infra.endpoint_server.batching`); the
    `collect_*` and `telemetry_*` caps bound what it keeps on disk (MiB and hours); `preload` names the libraries
    (distributions) the server imports in the background as it starts, before any deployment asks for them (set
    by `mlops run`, which starts its endpoint long before it deploys; elsewhere a deployment follows the start)."""

    port: int
    max_body_bytes: int = 1 << 20
    start_timeout: float = 60
    tls: tuple[Path, Path] | None = None
    port_variable: str = "MLOPS_ENDPOINT_PORT"
    telemetry_dir: Path | None = None
    collect_percent: float = 100
    batching: bool = True
    batch_max_rows: int = 1000
    max_queue: int = 128
    busy_status: int = 503  # the answer past `max_queue`; the Azure ML emulator's endpoints say 429, as Azure does
    collect_max_mb: float = 1024
    collect_max_age_hours: float = 168
    telemetry_max_mb: float = 256
    telemetry_max_age_hours: float = 168
    preload: tuple[str, ...] = ()
    python: str = sys.executable

    @classmethod
    def from_settings(cls, settings: Settings) -> EndpointConfig:
        """The local backend's endpoint, as MLOPS_ENDPOINT_* and MLOPS_HOME say."""
        return cls(
            port=settings.endpoint_port,
            max_body_bytes=settings.endpoint_max_body_bytes,
            start_timeout=settings.endpoint_start_timeout_seconds,
            telemetry_dir=settings.telemetry_dir,
            collect_percent=settings.endpoint_collect_percent,
            batching=settings.endpoint_batching,
            batch_max_rows=settings.endpoint_batch_max_rows,
            max_queue=settings.endpoint_max_queue,
            collect_max_mb=settings.endpoint_collect_max_mb,
            collect_max_age_hours=settings.endpoint_collect_max_age_hours,
            telemetry_max_mb=settings.telemetry_max_mb,
            telemetry_max_age_hours=settings.telemetry_max_age_hours,
        )

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    def server_arguments(self) -> list[str]:
        """The server's options (`python -m infra.endpoint_server.server --dir D --name N` takes them)."""
        arguments = ["--port", str(self.port), "--max-body-bytes", str(self.max_body_bytes)]
        if self.tls:
            arguments += ["--tls-cert", str(self.tls[0]), "--tls-key", str(self.tls[1])]
        if self.telemetry_dir:
            arguments += ["--telemetry-dir", str(self.telemetry_dir)]
        arguments += ["--batch-max-rows", str(self.batch_max_rows), "--max-queue", str(self.max_queue)]
        if self.busy_status != 503:
            arguments += ["--busy-status", str(self.busy_status)]
        if not self.batching:
            arguments.append("--no-batching")
        return [
            *arguments,
            *("--collect-percent", str(self.collect_percent)),
            *("--collect-max-mb", str(self.collect_max_mb), "--collect-max-age-hours", str(self.collect_max_age_hours)),
            *("--telemetry-max-mb", str(self.telemetry_max_mb)),
            *("--telemetry-max-age-hours", str(self.telemetry_max_age_hours)),
            *(word for library in self.preload for word in ("--preload", library)),
        ]

    @property
    def retention(self) -> Retention:
        """The caps on what the server keeps on disk, as its `Recorder` takes them."""
        return Retention(
            collect_bytes=int(self.collect_max_mb * MIB),
            collect_age_seconds=self.collect_max_age_hours * 3600,
            telemetry_bytes=int(self.telemetry_max_mb * MIB),
            telemetry_age_seconds=self.telemetry_max_age_hours * 3600,
        )


@dataclass(frozen=True)
class Retention:
    """How much of its collected requests and of its span files an endpoint keeps: bytes and age, each."""

    collect_bytes: int = 1024 * MIB
    collect_age_seconds: float = 168 * 3600
    telemetry_bytes: int = 256 * MIB
    telemetry_age_seconds: float = 168 * 3600
