"""Tracing with OpenTelemetry: one trace from a flow run, through its tasks, to each scoring request.

Prefect already starts a span for every flow run and task run (attributes `prefect.run.id`,
`prefect.run.type`, `prefect.run.name`) once a tracer provider is installed; `setup_tracing()`
installs one. The smoke test and the rollout's checks send the current span as a W3C `traceparent`,
and the endpoint continues that trace (`infra.endpoint_server.server`).

Where spans go, first match wins:

    APPLICATIONINSIGHTS_CONNECTION_STRING   Azure Monitor (Application Insights)
    OTEL_EXPORTER_OTLP_ENDPOINT             an OTLP/HTTP collector (`/v1/traces` is appended)
    otherwise                               JSON lines under MLOPS_HOME/telemetry/, which `mlops trace` reads

`MLOPS_TRACING=false` turns tracing off (the endpoint still logs a caller's trace id).
"""

from __future__ import annotations

import functools
import json
import os
import random
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)

from infra.common.segments import SegmentedLog

TELEMETRY_FOLDER = "telemetry"
SPAN_FILE_PREFIX = "spans-"
AZURE_MONITOR_VARIABLE = "APPLICATIONINSIGHTS_CONNECTION_STRING"
OTLP_VARIABLE = "OTEL_EXPORTER_OTLP_ENDPOINT"
_OFF = {"0", "false", "off", "no"}

_installed: dict[str, str] = {}
_lock = threading.Lock()


def tracing_enabled() -> bool:
    """MLOPS_TRACING (environment or .env, as every setting, parsed by its settings section alone); default on."""
    from infra.errors import ConfigError
    from infra.settings import load_section
    from infra.settings.tracing import TracingSettings

    try:
        return load_section(TracingSettings).tracing
    except ConfigError:  # a bad value (or a missing MLOPS_ENV_FILE) stops the command elsewhere
        return bool(TracingSettings.model_fields["tracing"].default)


def server_mode() -> str | None:
    """How a server traces its requests: None (off), `files` (its own span records, written in batches: a
    few microseconds a request), or `sdk` (the OpenTelemetry SDK, for a remote destination)."""
    if not tracing_enabled():
        return None
    return "files" if destination() == "files" else "sdk"


def destination() -> str:
    """Where this process's spans go: `azure-monitor`, `otlp` or `files`."""
    if os.environ.get(AZURE_MONITOR_VARIABLE):
        return "azure-monitor"
    if os.environ.get(OTLP_VARIABLE):
        return "otlp"
    return "files"


def setup_tracing(service: str, folder: Path | Callable[[], Path] | None = None, *, batch: bool = False) -> str | None:
    """Install this process's tracer provider (once; later calls keep the first) and say where spans go.

    `folder` is where the `files` destination writes: a path, or a function called at each export
    (a flow process may serve several MLOPS_HOMEs, as the tests do); default MLOPS_HOME/telemetry.
    `batch` exports from a background thread (a server's hot path) instead of at each span's end.
    Returns None when tracing is off.
    """
    if not tracing_enabled():
        return None
    with _lock:
        if "destination" in _installed:
            return _installed["destination"]
        kind = destination()
        exporter = _exporter(kind, service, folder if folder is not None else telemetry_folder)
        processor = (
            BatchSpanProcessor(exporter, schedule_delay_millis=200, max_queue_size=65_536)
            if batch or kind != "files"
            else SimpleSpanProcessor(exporter)
        )
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        provider.add_span_processor(processor)
        trace.set_tracer_provider(provider)
        _installed["destination"] = kind
        return kind


def shutdown_tracing() -> None:
    """Export what is queued (a server calls this as it stops)."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.shutdown()


def _exporter(kind: str, service: str, folder: Path | Callable[[], Path]) -> SpanExporter:
    if kind == "azure-monitor":
        from azure.monitor.opentelemetry.exporter import AzureMonitorTraceExporter

        if os.environ.get("DO_NOT_TRACK", "").strip().lower() not in ("", *_OFF):
            # the exporter's own usage reports ("statsbeat") to Microsoft
            os.environ.setdefault("APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL", "true")
        retry_folder = (folder() if callable(folder) else folder) / "azure-monitor-retry"
        exporter: SpanExporter = AzureMonitorTraceExporter(
            connection_string=os.environ[AZURE_MONITOR_VARIABLE], storage_directory=str(retry_folder)
        )
        return exporter
    if kind == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    return JsonLinesSpanExporter(folder, service)


def telemetry_folder() -> Path:
    """MLOPS_HOME/telemetry for the MLOPS_HOME of the environment now."""
    return _home_for(os.environ.get("MLOPS_HOME")) / TELEMETRY_FOLDER


@functools.lru_cache(maxsize=64)
def _home_for(variable: str | None) -> Path:
    from infra.errors import ConfigError
    from infra.settings import checkout_root, load_settings

    try:
        return load_settings().home
    except ConfigError:  # a bad setting stops the command elsewhere; spans still need a place
        return Path(variable).expanduser().resolve() if variable else checkout_root() / ".mlops"


# ---- the W3C header ----
def current_traceparent() -> dict[str, str]:
    """The current span as headers (`traceparent`), or a fresh trace's when no span is recording."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    if "traceparent" not in carrier:
        carrier["traceparent"] = f"00-{os.urandom(16).hex()}-{os.urandom(8).hex()}-01"
    return carrier


def parse_traceparent(value: str) -> tuple[str, str, bool] | None:
    """(trace id, parent span id, sampled) of a valid W3C `traceparent` value, else None."""
    parts = value.strip().split("-")
    if len(parts) < 4 or len(parts[0]) != 2 or parts[0] == "ff" or len(parts[1]) != 32 or len(parts[2]) != 16:
        return None
    trace_id, span_id, flags = parts[1].lower(), parts[2].lower(), parts[3][:2]
    if len(flags) != 2 or not _is_hex(trace_id + span_id + flags) or trace_id == "0" * 32 or span_id == "0" * 16:
        return None
    return trace_id, span_id, bool(int(flags, 16) & 1)


def new_trace_id() -> str:
    return f"{random.getrandbits(128) or 1:032x}"


def new_span_id() -> str:
    return f"{random.getrandbits(64) or 1:016x}"


def _is_hex(text: str) -> bool:
    try:
        int(text, 16)
    except ValueError:
        return False
    return True


def annotate(attributes: dict[str, str]) -> None:
    """Add attributes to the current span (the flow run's, when called in a flow's body)."""
    trace.get_current_span().set_attributes(attributes)


# ---- the `files` destination ----
class SpanLog:
    """Span records appended to segments `<folder>/spans-<service>.<date>T<time>-<n>.jsonl`: `add` buffers, `take`
    hands the buffered records over, `write` appends them, keeping at most `max_bytes` and nothing older than
    `max_age_seconds` (the oldest segments are deleted first; `infra.common.segments`).

    A server's hot path uses this instead of the SDK's span objects (about 40 µs each here, over a
    tenth of a scoring request); the records are the ones `JsonLinesSpanExporter` writes.
    """

    def __init__(
        self, folder: Path, service: str, *, max_bytes: int = 256 << 20, max_age_seconds: float = 7 * 86400
    ) -> None:
        self.folder = folder
        self.service = service
        self._segments = SegmentedLog(
            folder,
            f"{SPAN_FILE_PREFIX}{service}.",
            max_bytes=max_bytes,
            max_age_seconds=max_age_seconds,
            legacy=re.compile(re.escape(f"{SPAN_FILE_PREFIX}{service}-") + r"\d+\.jsonl"),  # one file a process, before
        )
        self._lines: list[bytes] = []

    @property
    def held_bytes(self) -> int:
        return self._segments.held_bytes

    def add(self, record: dict[str, Any]) -> None:
        self._lines.append(orjson.dumps(record) + b"\n")

    def take(self) -> list[bytes]:
        """The records added since the last `take`, for `write` (written there as they are, off the event loop)."""
        lines, self._lines = self._lines, []
        return lines

    def write(self, lines: list[bytes]) -> None:
        if self.folder.parent.is_dir():  # a deleted workspace is not recreated by its spans
            self._segments.write(lines)

    def flush(self) -> None:
        self.write(self.take())

    def close(self) -> None:
        self._segments.close()


class JsonLinesSpanExporter(SpanExporter):
    """One JSON object per span, appended to `<folder>/spans-<service>-<pid>.jsonl` (one file per process)."""

    def __init__(self, folder: Path | Callable[[], Path], service: str) -> None:
        self._folder = folder
        self._service = service
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        folder = self._folder() if callable(self._folder) else self._folder
        if not folder.parent.is_dir():  # the workspace is gone (or not made yet): spans never recreate it
            return SpanExportResult.SUCCESS
        lines = b"".join(orjson.dumps(span_record(span, self._service), default=str) + b"\n" for span in spans)
        try:
            folder.mkdir(exist_ok=True)
            with self._lock, open(folder / f"{SPAN_FILE_PREFIX}{self._service}-{os.getpid()}.jsonl", "ab") as out:
                out.write(lines)
        except OSError:
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def span_record(span: ReadableSpan, service: str) -> dict[str, Any]:
    context = span.get_span_context()
    parent = span.parent
    return {
        "trace_id": f"{context.trace_id:032x}" if context else "",
        "span_id": f"{context.span_id:016x}" if context else "",
        "parent_id": f"{parent.span_id:016x}" if parent else None,
        "name": span.name,
        "kind": span.kind.name,
        "service": service,
        "start": (span.start_time or 0) / 1e9,
        "end": (span.end_time or 0) / 1e9,
        "status": span.status.status_code.name,
        "status_message": span.status.description or "",
        "attributes": {k: list(v) if isinstance(v, tuple) else v for k, v in (span.attributes or {}).items()},
    }


# ---- reading the local telemetry back ----
@dataclass
class Span:
    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    service: str
    start: float
    end: float
    status: str
    attributes: dict[str, Any]
    children: list[Span] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return max(self.end - self.start, 0.0)

    @property
    def run_type(self) -> str:
        return str(self.attributes.get("prefect.run.type", ""))


def read_spans(folder: Path) -> list[Span]:
    """Every span recorded under `folder`, oldest first (a half-written last line is skipped)."""
    spans: list[Span] = []
    for path in sorted(folder.glob(f"{SPAN_FILE_PREFIX}*.jsonl")):
        for line in path.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            spans.append(
                Span(
                    trace_id=entry["trace_id"],
                    span_id=entry["span_id"],
                    parent_id=entry.get("parent_id"),
                    name=entry["name"],
                    service=entry.get("service", ""),
                    start=float(entry["start"]),
                    end=float(entry["end"]),
                    status=entry.get("status", ""),
                    attributes=entry.get("attributes", {}),
                )
            )
    spans.sort(key=lambda s: s.start)
    return spans


def find_trace(spans: Iterable[Span], identifier: str) -> tuple[str, Span] | None:
    """The trace id and the span that `identifier` names: a flow or task run id, a request id, a trace id."""
    wanted = identifier.strip().lower()
    for span in spans:
        ids = (span.attributes.get("prefect.run.id"), span.attributes.get("mlops.request_id"), span.span_id)
        if wanted in {str(i).lower() for i in ids if i} or span.trace_id == wanted:
            return span.trace_id, span
    return None


def build_tree(spans: Iterable[Span], trace_id: str) -> list[Span]:
    """The spans of one trace as trees (roots first; a span whose parent was not recorded is a root)."""
    members = [s for s in spans if s.trace_id == trace_id]
    by_id = {s.span_id: s for s in members}
    for span in members:
        span.children = []
    roots: list[Span] = []
    for span in members:
        parent = by_id.get(span.parent_id or "")
        (parent.children if parent is not None else roots).append(span)
    return roots


def ancestors(spans: Iterable[Span], leaf: Span) -> list[Span]:
    """The chain from the trace's root down to `leaf`."""
    by_id = {s.span_id: s for s in spans if s.trace_id == leaf.trace_id}
    chain = [leaf]
    while chain[-1].parent_id in by_id and len(chain) < 64:
        chain.append(by_id[chain[-1].parent_id or ""])
    return list(reversed(chain))
