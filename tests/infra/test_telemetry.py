"""Tracing: the W3C header, the span files and the trees read back, and the two remote destinations
(an OTLP collector, Application Insights' ingestion API), each received by a real HTTP server here."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from infra import telemetry
from tests.support.helpers import Receiver, receiving

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
from opentelemetry import trace
from infra.telemetry import current_traceparent, setup_tracing, shutdown_tracing
print(setup_tracing("probe-service"))
with trace.get_tracer("probe").start_as_current_span("probe-span", attributes={"mlops.request_id": "r-1"}):
    print(current_traceparent()["traceparent"])
shutdown_tracing()
"""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as server:
        yield server


def _probe(home: Path, **env: str) -> list[str]:
    home.mkdir(parents=True, exist_ok=True)  # a workspace that exists (spans never create one)
    clean = {
        k: v for k, v in os.environ.items() if k not in (telemetry.AZURE_MONITOR_VARIABLE, telemetry.OTLP_VARIABLE)
    }
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**clean, "MLOPS_HOME": str(home), "MLOPS_ENV_FILE": "", "DO_NOT_TRACK": "true", **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return result.stdout.split()


class TestTraceparent:
    def test_valid_values_parse(self) -> None:
        value = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        assert telemetry.parse_traceparent(value) == ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", True)
        assert telemetry.parse_traceparent(value.removesuffix("01") + "00") == (
            "0af7651916cd43dd8448eb211c80319c",
            "b7ad6b7169203331",
            False,
        )

    @pytest.mark.parametrize(
        "value",
        [
            "",
            "garbage",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b71692033-01",  # short span id
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",  # all-zero trace id
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",  # forbidden version
            "00-0af7651916cd43dd8448eb211c80319z-b7ad6b7169203331-01",  # not hex
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0x",  # flags not hex
        ],
    )
    def test_invalid_values_do_not(self, value: str) -> None:
        assert telemetry.parse_traceparent(value) is None

    def test_outside_any_span_a_fresh_trace_is_sent(self) -> None:
        first, second = (telemetry.current_traceparent()["traceparent"] for _ in range(2))
        assert telemetry.parse_traceparent(first) is not None
        assert first != second


class TestSpanFiles:
    def test_spans_are_written_and_read_back_as_a_tree(self, tmp_path: Path) -> None:
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(telemetry.JsonLinesSpanExporter(tmp_path, "svc")))
        tracer = provider.get_tracer("test")
        with tracer.start_as_current_span("flow", attributes={"prefect.run.id": "run-1", "prefect.run.type": "flow"}):
            with (
                tracer.start_as_current_span("task", attributes={"prefect.run.type": "task"}),
                tracer.start_as_current_span("POST /score", attributes={"mlops.request_id": "req-1"}),
            ):
                pass
            with tracer.start_as_current_span("other task"):
                pass
        with tracer.start_as_current_span("unrelated"):
            pass
        spans = telemetry.read_spans(tmp_path)
        assert len(spans) == 5
        trace_id, request = telemetry.find_trace(spans, "req-1") or ("", None)
        assert request is not None
        assert request.name == "POST /score"
        assert telemetry.find_trace(spans, "RUN-1") == (trace_id, spans[0])
        roots = telemetry.build_tree(spans, trace_id)
        assert [r.name for r in roots] == ["flow"]
        assert [c.name for c in roots[0].children] == ["task", "other task"]
        assert [s.name for s in telemetry.ancestors(spans, request)] == ["flow", "task", "POST /score"]
        assert telemetry.find_trace(spans, "nothing-like-it") is None

    def test_a_deleted_workspace_is_not_recreated_by_its_spans(self, tmp_path: Path) -> None:
        provider = TracerProvider()
        gone = tmp_path / "deleted-home" / "telemetry"
        provider.add_span_processor(SimpleSpanProcessor(telemetry.JsonLinesSpanExporter(gone, "svc")))
        with provider.get_tracer("test").start_as_current_span("after teardown"):
            pass
        log = telemetry.SpanLog(gone, "endpoint")
        log.add({"name": "late request"})
        log.flush()
        assert not gone.parent.exists()

    def test_a_half_written_line_is_skipped(self, tmp_path: Path) -> None:
        good = {"trace_id": "a" * 32, "span_id": "b" * 16, "name": "x", "start": 1, "end": 2}
        (tmp_path / "spans-x-1.jsonl").write_text(json.dumps(good) + "\n" + '{"trace_id": "cut sho')
        assert [s.name for s in telemetry.read_spans(tmp_path)] == ["x"]

    def test_files_are_the_default_destination(self, tmp_path: Path) -> None:
        kind, header = _probe(tmp_path / "home")
        assert kind == "files"
        spans = telemetry.read_spans(tmp_path / "home" / "telemetry")
        assert [(s.name, s.service) for s in spans] == [("probe-span", "probe-service")]
        assert header.split("-")[1:3] == [spans[0].trace_id, spans[0].span_id]

    def test_tracing_can_be_turned_off(self, tmp_path: Path) -> None:
        assert _probe(tmp_path / "home", MLOPS_TRACING="false")[0] == "None"
        assert not (tmp_path / "home" / "telemetry").exists()


class TestRemoteDestinations:
    def test_an_otlp_collector_receives_the_spans(self, receiver: Receiver, tmp_path: Path) -> None:
        kind, header = _probe(tmp_path / "home", OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{receiver.server_port}")
        assert kind == "otlp"
        [(path, _, body)] = receiver.posts
        assert path == "/v1/traces"
        request = ExportTraceServiceRequest.FromString(body)
        [resource] = request.resource_spans
        service = {a.key: a.value.string_value for a in resource.resource.attributes}["service.name"]
        [span] = resource.scope_spans[0].spans
        assert (service, span.name, span.trace_id.hex()) == ("probe-service", "probe-span", header.split("-")[1])
        assert not (tmp_path / "home" / "telemetry").exists()

    def test_application_insights_receives_the_spans(self, receiver: Receiver, tmp_path: Path) -> None:
        connection = (
            "InstrumentationKey=00000000-0000-0000-0000-000000000000;"
            f"IngestionEndpoint=http://127.0.0.1:{receiver.server_port}/"
        )
        kind, header = _probe(tmp_path / "home", APPLICATIONINSIGHTS_CONNECTION_STRING=connection)
        assert kind == "azure-monitor"
        items = []
        for path, headers, body in receiver.posts:
            assert path == "/v2.1/track"
            items += json.loads(gzip.decompress(body) if headers.get("Content-Encoding") == "gzip" else body)
        [span] = [i for i in items if i["name"].endswith("RemoteDependency")]
        assert span["data"]["baseData"]["name"] == "probe-span"
        assert span["tags"]["ai.operation.id"] == header.split("-")[1]
        assert span["tags"]["ai.cloud.role"] == "probe-service"
