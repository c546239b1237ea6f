"""What the endpoint records about its requests, off the hot path: the request log (one JSON line each on
stdout, written every 10 ms while requests come), the collected inputs and outputs (`collected/<date>T<time>-<n>.jsonl`
segments, as Azure ML's data collector keeps them; the drift monitor reads them) and the requests' spans.

All three are written by one thread, in order, off the event loop; the collected data and the span files are
kept under their caps (`config.Retention`: bytes and age each; the oldest segments are deleted first).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import random
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from infra.common.direct import write_all
from infra.common.segments import SegmentedLog
from infra.common.yielding import background, give_way, polite
from infra.endpoint_server.config import Retention
from infra.telemetry import (
    SpanLog,
    new_span_id,
    new_trace_id,
    parse_traceparent,
    server_mode,
    setup_tracing,
    shutdown_tracing,
    telemetry_folder,
)

# What the requests recorded goes to the writer every LOG_FLUSH_SECONDS while requests come; an idle endpoint has no
# timer (the first record arms the next hand-over), only the expiry once a minute. Small hand-overs keep the tail
# short: the writer's page-cache work (~40 MB/s of collected data at 100 rows and one connection) shares a CPU with
# the event loop, and delays the requests it overlaps by about its length. Side by side (benchmarks/online.py, server
# pinned to one CPU, 3 runs each), p99/p50 at 100 rows and one connection was 7.4-8.9x flushing every 0.2 s,
# 4.8-5.1x every 0.05 s, 3.0-3.5x every 0.02 s and 2.5-2.7x every 0.01 s, with the same req/s (issue 25). Idle
# endpoints' timers woke on the busy one's CPU (5 a second each, before).
LOG_FLUSH_SECONDS = 0.01
WRITER_BACKLOG = round(5 / LOG_FLUSH_SECONDS)  # batches (5 s of them) the writer may be behind before shedding
SHED_REPORT_SECONDS = 1.0  # records shed are counted in a log line at most once a second (and at stop)
EXPIRE_SECONDS = 60.0  # the writer also drops aged segments of an idle endpoint, once a minute
COLLECTED_FOLDER = "collected"
CHECK_HEADER = b"x-mlops-check"  # synthetic traffic (smoke test, rollout checks): traced, not collected
_SMALL_ANSWER = 512  # bytes of an answer kept on its span
_PROPAGATOR = TraceContextTextMapPropagator()

Scope = dict[str, Any]


@dataclass(frozen=True)
class RequestTrace:
    """One traced request: its ids, and the SDK's span when the SDK records it."""

    name: str
    trace_id: str
    span_id: str
    parent_id: str
    sampled: bool
    request_id: str
    start: float
    span: Span | None = None


class Recorder:
    """The request log, the collected data and the spans of the endpoint `name`, whose folder is `state_dir`.

    The event loop only appends each request's lines to lists; every 10 ms while requests come (no timer when
    idle: the first record arms it) the lists are handed, whole, to one writer thread, which writes them as they
    are (`writev`: no joined copy, the GIL released): the log to stdout (a pipe to the supervisor, which may block),
    the collected data and spans to their segments, keeping the caps (`retention`). The writer gives way to
    requests: it does not preempt the event loop when woken, and yields between its steps (`infra.common.yielding`).
    """

    def __init__(
        self,
        state_dir: Path,
        name: str,
        *,
        telemetry_dir: Path | None,
        collect_percent: float,
        retention: Retention | None = None,
    ) -> None:
        self.state_dir = state_dir
        self.name = name
        self.telemetry_dir = telemetry_dir
        self.collect_percent = collect_percent
        self.retention = retention or Retention()
        self._tracer: trace.Tracer | None = None  # the SDK, when spans go to a remote destination
        self._spans: SpanLog | None = None  # else our own span records, written with the log
        self._log: list[bytes] = []
        self._collected: list[bytes] = []
        self._collected_segments = SegmentedLog(
            state_dir / COLLECTED_FOLDER,
            "",
            max_bytes=self.retention.collect_bytes,
            max_age_seconds=self.retention.collect_age_seconds,
        )
        self._writer = concurrent.futures.ThreadPoolExecutor(  # gives way to requests (`infra.common.yielding`)
            max_workers=1, thread_name_prefix="endpoint-writer", initializer=background
        )
        self._submitted = 0  # batches handed to the writer (counted by the event loop) ...
        self._written = 0  # ... and written (counted by the writer)
        self._loop: asyncio.AbstractEventLoop | None = None  # the event loop's, from `start`
        self._armed = False  # a hand-over is scheduled
        self.shed = 0  # collected records and spans dropped because the writer was WRITER_BACKLOG batches behind
        self._unreported = 0  # ... of which no log line has told yet
        self._reported_at = 0.0  # time.monotonic() of that line
        self.out = sys.stdout

    def start(self) -> None:
        """At startup: set up tracing and start flushing."""
        service = f"endpoint-{self.name}"
        mode = server_mode()
        if mode == "files":
            self._spans = SpanLog(
                self.telemetry_dir or telemetry_folder(),
                service,
                max_bytes=self.retention.telemetry_bytes,
                max_age_seconds=self.retention.telemetry_age_seconds,
            )
        elif mode == "sdk" and setup_tracing(service, self.telemetry_dir, batch=True):
            self._tracer = trace.get_tracer("mlops.endpoint")
        self._loop = asyncio.get_running_loop()
        self._loop.call_later(EXPIRE_SECONDS, self._expire)

    def stop(self) -> None:
        """At shutdown: write what is buffered, wait for the writer, flush the log, end tracing."""
        log, collected, spans = self._take()
        if self._unreported:
            log.append(self._shed_line())
        self._writer.submit(self._write, log, collected, spans)
        self._writer.shutdown(wait=True)
        self._collected_segments.close()
        if self._spans is not None:
            self._spans.close()
        self.out.flush()
        shutdown_tracing()

    def _arm(self) -> None:
        """A record was buffered: the next hand-over within LOG_FLUSH_SECONDS, unless one is scheduled."""
        if not self._armed and self._loop is not None:
            self._armed = True
            self._loop.call_later(LOG_FLUSH_SECONDS, self._flush)

    def _flush(self) -> None:
        """Hand what the requests recorded to the writer, every LOG_FLUSH_SECONDS while requests come: the event
        loop never writes to a file or a pipe (a pipe write blocks while the supervisor's reader sleeps) nor joins
        the bodies (a fifth of a second's collected bodies at 100 rows a request is megabytes: 1.5 ms of the loop's
        CPU measured). A hand-over that finds nothing ends the rhythm until the next record (once records shed are
        told: a log line says how many, when shedding starts and at most once a second after)."""
        taken = self._take()
        if self._submitted - self._written > WRITER_BACKLOG:  # the disk cannot keep up: keep the log only
            dropped = len(taken[1]) + len(taken[2])
            self.shed += dropped
            self._unreported += dropped
            taken = (taken[0], [], [])
        if self._unreported and time.monotonic() - self._reported_at >= SHED_REPORT_SECONDS:
            taken[0].append(self._shed_line())
        if any(taken):
            self._submitted += 1
            self._writer.submit(self._write, *taken)
        elif not self._unreported:  # records shed and not told yet keep the rhythm: their line within a second
            self._armed = False
            return
        asyncio.get_running_loop().call_later(LOG_FLUSH_SECONDS, self._flush)

    def _shed_line(self) -> bytes:
        """A line of the request log telling how many collected records and spans were dropped since the last one."""
        line = {
            "time": time.time(),
            "event": "shed",
            "shed": self._unreported,
            "shed_since_start": self.shed,
            "reason": f"the writer was over {WRITER_BACKLOG} hand-overs ({WRITER_BACKLOG * LOG_FLUSH_SECONDS:g} s) behind:"
            " collected requests and spans dropped, every request still logged",
        }
        self._unreported, self._reported_at = 0, time.monotonic()
        return orjson.dumps(line) + b"\n"

    def _expire(self) -> None:
        """Once a minute the writer drops the segments past their age, an idle endpoint's too."""
        self._submitted += 1
        self._writer.submit(self._write, [], [], [])
        asyncio.get_running_loop().call_later(EXPIRE_SECONDS, self._expire)

    def _take(self) -> tuple[list[bytes], list[bytes], list[bytes]]:
        """The log lines, collected records and span records buffered since the last flush."""
        log, self._log = self._log, []
        collected, self._collected = self._collected, []
        spans = self._spans.take() if self._spans is not None else []
        return log, collected, spans

    def _write(self, log: list[bytes], collected: list[bytes], spans: list[bytes]) -> None:
        polite(self._submitted - self._written <= 1)  # gives way to requests unless batches wait after this one
        try:
            if log:
                self.out.flush()  # anything printed
                write_all(self.out.fileno(), log)
            give_way()
            self._collected_segments.write(collected)
            give_way()
            if self._spans is not None:
                self._spans.write(spans)
        except OSError:  # a full disk loses these records, never a request
            traceback.print_exc()
        except Exception:  # noqa: BLE001 - the writer thread must go on writing the next batch
            traceback.print_exc()
        finally:
            self._written += 1

    def held(self) -> dict[str, int]:
        """Bytes held on disk now: collected requests and this endpoint's span files."""
        spans = self._spans.held_bytes if self._spans is not None else 0
        return {"collected": self._collected_segments.held_bytes, "spans": spans}

    def begin(self, scope: Scope, headers: dict[bytes, bytes], request_id: str) -> RequestTrace | None:
        """The request's span: continuing the caller's `traceparent`, or the root of a new trace."""
        given = headers.get(b"traceparent", b"").decode("latin-1")
        caller = parse_traceparent(given) if given else None
        name = f"{scope['method']} {scope['path']}"
        if self._spans is not None:
            trace_id, parent, sampled = caller or (new_trace_id(), "", True)
            return RequestTrace(name, trace_id, new_span_id(), parent, sampled, request_id, time.time())
        if self._tracer is None:
            return None
        context = _PROPAGATOR.extract({"traceparent": given}) if caller else None
        span = self._tracer.start_span(
            name,
            context=context,
            kind=SpanKind.SERVER,
            attributes={"mlops.endpoint": self.name, "mlops.request_id": request_id},
        )
        ids = span.get_span_context()
        return RequestTrace(
            name,
            f"{ids.trace_id:032x}",
            f"{ids.span_id:016x}",
            caller[1] if caller else "",
            True,
            request_id,
            0.0,
            span,
        )

    def end(
        self, traced: RequestTrace, status: int, deployment: str, model: str, predictions: int, body: bytes
    ) -> None:
        attributes: dict[str, Any] = {
            "mlops.endpoint": self.name,
            "mlops.request_id": traced.request_id,
            "http.response.status_code": status,
            "mlops.deployment": deployment,
            "mlops.model": model,
            "mlops.predictions": predictions,
        }
        problem = body[:_SMALL_ANSWER].decode(errors="replace") if status >= 400 else ""
        if not problem and len(body) <= _SMALL_ANSWER:
            attributes["mlops.answer"] = body.decode(errors="replace")
        if traced.span is not None:  # the SDK's span, for a remote destination
            traced.span.set_attributes(attributes)
            if status >= 500:
                traced.span.set_status(Status(StatusCode.ERROR, problem))
            traced.span.end()
        elif self._spans is not None and traced.sampled:
            self._spans.add(
                {
                    "trace_id": traced.trace_id,
                    "span_id": traced.span_id,
                    "parent_id": traced.parent_id or None,
                    "name": traced.name,
                    "kind": "SERVER",
                    "service": self._spans.service,
                    "start": traced.start,
                    "end": time.time(),
                    "status": "ERROR" if status >= 500 else "UNSET",
                    "status_message": problem,
                    "attributes": attributes,
                }
            )
            self._arm()

    def log(
        self,
        scope: Scope,
        headers: dict[bytes, bytes],
        request_id: str,
        status: int,
        deployment: str,
        model: str,
        predictions: int,
        started: float,
        traced: RequestTrace | None = None,
        bundle: str = "",
    ) -> None:
        if traced is not None:
            trace_id, span_id, parent = traced.trace_id, traced.span_id, traced.parent_id
        else:  # not traced: still name the caller's trace
            given = headers.get(b"traceparent", b"").decode("latin-1")
            caller = parse_traceparent(given) if given else None
            trace_id, span_id, parent = (caller[0], "", caller[1]) if caller else ("", "", "")
        line = {
            "time": time.time(),
            "request_id": request_id,
            "trace_id": trace_id,
            "span_id": span_id,
            "parent_span_id": parent,
            "method": scope["method"],
            "path": scope["path"],
            "status": status,
            "deployment": deployment,
            "model": model,
            "bundle_sha256": bundle,
            "predictions": predictions,
            "latency_ms": round((time.perf_counter() - started) * 1000, 3),
        }
        if scope.get("mirror"):
            line["mirror"] = True
        self._log.append(orjson.dumps(line) + b"\n")  # written by the writer thread
        self._arm()

    @staticmethod
    def caller_trace_id(headers: dict[bytes, bytes]) -> str:
        """The trace id of the caller's valid `traceparent` (an untraced request still names it), else ""."""
        given = headers.get(b"traceparent")
        caller = parse_traceparent(given.decode("latin-1")) if given else None
        return caller[0] if caller else ""

    def collect(
        self, headers: dict[bytes, bytes], request_id: str, deployment: str, model: str, request: bytes, answer: bytes
    ) -> None:
        """Keep a scored request's inputs and outputs for the drift monitor (written after the log's flush).

        A JSON body goes in as it came (the scoring script parsed it: no escaping, one line), any other
        body as a string."""
        if CHECK_HEADER in headers or (self.collect_percent < 100 and random.random() * 100 >= self.collect_percent):
            return
        head = orjson.dumps({"time": time.time(), "request_id": request_id, "deployment": deployment, "model": model})
        raw = request.strip()
        embedded = (
            raw.replace(b"\n", b" ").replace(b"\r", b" ") if raw[:1] in (b"{", b"[") else orjson.dumps(request.decode())
        )
        self._collected.append(head[:-1] + b',"request":' + embedded + b',"response":' + answer + b"}\n")
        self._arm()
