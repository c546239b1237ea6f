"""The local online endpoint: one HTTP process hosting several deployments of `score.py` bundles.

It behaves like an Azure ML managed online endpoint:

    GET  /                       liveness ("Healthy")
    GET  /ready                  readiness: 200 once a deployment takes traffic, else 503
    GET  /swagger.json           OpenAPI 3 of the scoring request and response
    POST /score                  Bearer <scoring key>; `azureml-model-deployment: <name>` pins a deployment
    GET  /management/state       Bearer <admin key>: deployments and traffic
    PUT  /management/deployments/<name>   {"bundle": "<folder>"}: load a bundle (at 0 % traffic)
    DELETE /management/deployments/<name> remove a deployment that takes no traffic
    PUT  /management/traffic     {"blue": 90, "green": 10}: weights summing to 100 (or all 0)
    PUT  /management/mirror      {"green": 20}: also send a copy of 20 % of unpinned requests to green
                                 (its answers are logged and dropped, as Azure ML's mirror traffic)

Management never needs a restart; the state is saved to `state.json` and reloaded at start. Every
request logs one JSON line (request id, trace and span ids, deployment, model version, predictions,
latency) to stdout, flushed five times a second.

Tracing (`infra.telemetry`): a scoring or management request continues the caller's W3C
`traceparent` (or starts a trace) in a span of its own. A scored request's inputs and outputs are
collected, as Azure ML's data collector does, to `collected/<YYYY-MM-DD>.jsonl` (the drift monitor
reads them); requests marked `x-mlops-check` (the smoke test's, the rollout's) are not.
Bad requests get a 4xx JSON error naming the problem; the server keeps serving.

    python -m infra.endpoint_server.server --dir DIR --port PORT [--max-body-bytes N] [--tls-cert F --tls-key F]

A bundle's `bundle.json` may name its scoring script (`"scoring_script"`, relative to `code/`;
default `score.py`), as an Azure ML deployment's `code_configuration` does.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import concurrent.futures
import hmac
import itertools
import json
import os
import random
import sys
import time
import traceback
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from infra.endpoint_server.openapi import openapi_document
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
from model.scripts import NotImportableError, load_script

STATE_FILE = "state.json"
KEYS_FILE = "keys.json"
_JSON = [(b"content-type", b"application/json")]
_module_ids = itertools.count(1)
LOG_FLUSH_SECONDS = 0.2
COLLECTED_FOLDER = "collected"
CHECK_HEADER = b"x-mlops-check"  # synthetic traffic (smoke test, rollout checks): traced, not collected
_SMALL_ANSWER = 512  # bytes of an answer kept on its span
_PROPAGATOR = TraceContextTextMapPropagator()

Receive = Any
Send = Any
Scope = dict[str, Any]


class HttpError(Exception):
    """An answer other than 200, with the message the client reads."""

    def __init__(self, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or []


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


@dataclass(frozen=True)
class Deployment:
    """One loaded bundle: its `score.py` module (with its own model) and where it came from."""

    name: str
    model: str
    bundle: str
    module: ModuleType


def load_bundle(name: str, bundle: Path) -> Deployment:
    """Import the bundle's `code/score.py` as a module of its own and run its `init()` on `model/`.

    Raises:
        HttpError: 422 when the bundle is incomplete; 409 when `init()` refuses it (for example an
            environment mismatch), with init's own message.
    """
    model_dir, manifest_file = bundle / "model", bundle / "bundle.json"
    manifest: dict[str, Any] = json.loads(manifest_file.read_text()) if manifest_file.is_file() else {}
    script = bundle / "code" / str(manifest.get("scoring_script") or "score.py")
    missing = [str(p) for p in (script, model_dir, manifest_file) if not p.exists()]
    if missing:
        raise HttpError(422, f"bundle {bundle} is incomplete: missing {', '.join(missing)}")
    try:
        module = load_script(script, model_dir, name=f"mlops_deployment_{name}_{next(_module_ids)}")
    except NotImportableError:
        raise HttpError(422, f"cannot import {script}") from None
    except Exception as exc:
        raise HttpError(409, f"deployment {name!r} refused bundle {bundle}: {exc}") from exc
    model = str(manifest.get("model", "unknown"))
    return Deployment(name=name, model=model, bundle=str(bundle), module=module)


class EndpointApp:
    """The ASGI application. State lives in memory and in `state_dir/state.json`."""

    def __init__(
        self,
        state_dir: Path,
        *,
        name: str = "endpoint",
        max_body_bytes: int = 1 << 20,
        telemetry_dir: Path | None = None,
        collect_percent: float = 100,
    ) -> None:
        self.state_dir = state_dir
        self.collect_percent = collect_percent
        self.telemetry_dir = telemetry_dir
        self._tracer: trace.Tracer | None = None  # the SDK, when spans go to a remote destination
        self._spans: SpanLog | None = None  # else our own span records, written with the log
        self._collected: list[bytes] = []
        # the collected data and span files are written by one thread, in order, off the event loop
        self._writer = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="endpoint-writer")
        self.name = name
        self.max_body_bytes = max_body_bytes
        keys = json.loads((state_dir / KEYS_FILE).read_text())
        self._scoring_keys = [f"Bearer {keys['primary']}".encode(), f"Bearer {keys['secondary']}".encode()]
        self._admin_key = f"Bearer {keys['admin']}".encode()
        self.deployments: dict[str, Deployment] = {}
        self.traffic: dict[str, int] = {}
        self.mirror: dict[str, int] = {}
        self._names: list[str] = []
        self._bounds: list[int] = []
        self._swagger = b""
        self._lock = asyncio.Lock()
        self._out = sys.stdout
        self._liveness_headers = [(b"content-type", b"text/plain"), (b"x-endpoint-pid", str(os.getpid()).encode())]

    # ---- state ----
    def restore(self) -> None:
        """Reload the saved deployments and traffic (at start); a bundle that no longer loads stops the start."""
        path = self.state_dir / STATE_FILE
        saved = json.loads(path.read_text()) if path.is_file() else {"deployments": {}, "traffic": {}}
        for name, entry in saved["deployments"].items():
            self.deployments[name] = load_bundle(name, Path(entry["bundle"]))
        self._apply_traffic(saved["traffic"])
        self.mirror = {n: p for n, p in saved.get("mirror", {}).items() if n in self.deployments}

    def _apply_traffic(self, traffic: dict[str, int]) -> None:
        names = [n for n in sorted(traffic) if traffic[n] > 0]
        self._names, self._bounds = names, list(itertools.accumulate(traffic[n] for n in names))
        self.traffic = {name: traffic.get(name, 0) for name in self.deployments}
        serving = max(self.traffic, key=lambda n: self.traffic[n], default=None)
        module = self.deployments[serving].module if serving else None
        self._swagger = orjson.dumps(openapi_document(self.name, module))

    def _save(self) -> None:
        state = {
            "deployments": {n: {"bundle": d.bundle, "model": d.model} for n, d in self.deployments.items()},
            "traffic": self.traffic,
            "mirror": self.mirror,
        }
        temporary = self.state_dir / f".{STATE_FILE}.{os.getpid()}"
        temporary.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
        os.replace(temporary, self.state_dir / STATE_FILE)

    def describe(self) -> dict[str, Any]:
        deployments = {
            n: {"model": d.model, "traffic": self.traffic.get(n, 0), "bundle": d.bundle}
            for n, d in self.deployments.items()
        }
        return {"name": self.name, "deployments": deployments, "mirror": self.mirror}

    # ---- ASGI ----
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    self.restore()
                except Exception as exc:  # noqa: BLE001 - reported to uvicorn, which stops
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                self._start_tracing()
                self._schedule_flush()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self._writer.submit(self._write, *self._take())
                self._writer.shutdown(wait=True)
                self._out.flush()
                shutdown_tracing()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _start_tracing(self) -> None:
        service = f"endpoint-{self.name}"
        mode = server_mode()
        if mode == "files":
            self._spans = SpanLog(self.telemetry_dir or telemetry_folder(), service)
        elif mode == "sdk" and setup_tracing(service, self.telemetry_dir, batch=True):
            self._tracer = trace.get_tracer("mlops.endpoint")

    def _schedule_flush(self) -> None:
        """Flush the request log a few times a second: one write per batch instead of one per request; the
        collected data and the spans (larger) are handed to the writer thread."""
        self._out.flush()
        taken = self._take()
        if taken[1] or taken[2]:
            self._writer.submit(self._write, *taken)
        asyncio.get_running_loop().call_later(LOG_FLUSH_SECONDS, self._schedule_flush)

    def _take(self) -> tuple[str, bytes, bytes]:
        """The day, and the collected records and span records buffered since the last flush."""
        collected, self._collected = b"".join(self._collected), []
        spans = self._spans.take() if self._spans is not None else b""
        return time.strftime("%Y-%m-%d", time.gmtime()), collected, spans

    def _write(self, day: str, collected: bytes, spans: bytes) -> None:
        try:
            if collected:
                folder = self.state_dir / COLLECTED_FOLDER
                folder.mkdir(exist_ok=True)
                with open(folder / f"{day}.jsonl", "ab") as out:
                    out.write(collected)
            if spans and self._spans is not None:
                self._spans.write(spans)
        except OSError:  # a full disk loses these records, never a request
            traceback.print_exc()

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        headers = dict(scope["headers"])
        request_id = headers.get(b"x-ms-request-id", b"").decode("latin-1") or uuid.uuid4().hex
        deployment, predictions = "", 0
        path = scope["path"]
        traced = (
            self._begin(scope, headers, request_id) if path == "/score" or path.startswith("/management/") else None
        )
        try:
            status, body, extra, deployment, predictions = await self._route(scope, headers, receive, request_id)
        except HttpError as error:
            status, body, extra = error.status, orjson.dumps({"error": error.message}), _JSON + error.headers
        except Exception as exc:  # noqa: BLE001 - a bug in a scoring script must not take the endpoint down
            traceback.print_exc()
            status, body, extra = 500, orjson.dumps({"error": f"internal error: {type(exc).__name__}: {exc}"}), _JSON
        response_headers = [
            *extra,
            (b"content-length", str(len(body)).encode()),
            (b"x-ms-request-id", request_id.encode("latin-1")),
        ]
        if deployment:
            response_headers.append((b"azureml-model-deployment", deployment.encode()))
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": body})
        model = self.deployments[deployment].model if deployment in self.deployments else ""
        if traced is not None:
            self._end(traced, status, deployment, model, predictions, body)
        self._log(scope, headers, request_id, status, deployment, model, predictions, started, traced)

    def _begin(self, scope: Scope, headers: dict[bytes, bytes], request_id: str) -> RequestTrace | None:
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

    def _end(
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

    def _log(
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
            "predictions": predictions,
            "latency_ms": round((time.perf_counter() - started) * 1000, 3),
        }
        if scope.get("mirror"):
            line["mirror"] = True
        self._out.write(orjson.dumps(line).decode() + "\n")  # flushed by _schedule_flush

    def _collect(
        self, headers: dict[bytes, bytes], request_id: str, deployment: Deployment, request: bytes, answer: bytes
    ) -> None:
        """Keep a scored request's inputs and outputs for the drift monitor (written after the log's flush).

        A JSON body goes in as it came (the scoring script parsed it: no escaping, one line), any other
        body as a string."""
        if CHECK_HEADER in headers or (self.collect_percent < 100 and random.random() * 100 >= self.collect_percent):
            return
        head = orjson.dumps(
            {"time": time.time(), "request_id": request_id, "deployment": deployment.name, "model": deployment.model}
        )
        raw = request.strip()
        embedded = (
            raw.replace(b"\n", b" ").replace(b"\r", b" ") if raw[:1] in (b"{", b"[") else orjson.dumps(request.decode())
        )
        self._collected.append(head[:-1] + b',"request":' + embedded + b',"response":' + answer + b"}\n")

    async def _route(
        self, scope: Scope, headers: dict[bytes, bytes], receive: Receive, request_id: str
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]], str, int]:
        method, path = scope["method"], scope["path"]
        if path == "/score":
            _require(method, "POST")
            return await self._score(headers, receive, request_id)
        if path == "/":
            _require(method, "GET")
            return 200, b"Healthy", self._liveness_headers, "", 0
        if path == "/ready":
            _require(method, "GET")
            if not self._names:
                raise HttpError(503, f"endpoint {self.name!r} has no deployment taking traffic yet")
            return 200, orjson.dumps({"ready": True, "traffic": self.traffic}), _JSON, "", 0
        if path == "/swagger.json":
            _require(method, "GET")
            return 200, self._swagger, _JSON, "", 0
        if path.startswith("/management/"):
            self._authorize(headers, [self._admin_key], "the admin key")
            body = await self._read_body(headers, receive)
            async with self._lock:
                answer = await self._manage(method, path.removeprefix("/management/"), body)
            return 200, orjson.dumps(answer), _JSON, "", 0
        raise HttpError(404, f"no route {method} {path}")

    async def _score(
        self, headers: dict[bytes, bytes], receive: Receive, request_id: str
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]], str, int]:
        self._authorize(headers, self._scoring_keys, "a scoring key")
        pinned = headers.get(b"azureml-model-deployment")
        deployment = self._pick(pinned)
        body = await self._read_body(headers, receive)
        try:
            text = body.decode()
        except UnicodeDecodeError:
            raise HttpError(400, "the body is not UTF-8 text") from None
        if not pinned:
            self._maybe_mirror(text, headers)
        try:
            answer = deployment.module.run(text)
        except ValueError as exc:  # the scoring contract: bad input is a ValueError
            raise HttpError(400, str(exc)) from None
        encoded = orjson.dumps(answer)
        self._collect(headers, request_id, deployment, body, encoded)
        return 200, encoded, _JSON, deployment.name, len(answer.get("result", ()))

    def _maybe_mirror(self, text: str, headers: dict[bytes, bytes]) -> None:
        """Send a copy of the request to each mirror deployment, at its percentage; the answer is only logged."""
        for name, percent in self.mirror.items():
            target = self.deployments.get(name)
            if target is not None and random.random() * 100 < percent:
                asyncio.get_running_loop().create_task(self._send_mirror_copy(target, text, headers))

    async def _send_mirror_copy(self, target: Deployment, text: str, headers: dict[bytes, bytes]) -> None:
        started = time.perf_counter()
        try:
            answer = await asyncio.to_thread(target.module.run, text)
            status, predictions = 200, len(answer.get("result", ()))
        except ValueError:
            status, predictions = 400, 0
        except Exception:  # noqa: BLE001 - a mirror copy's failure is logged, never answered
            traceback.print_exc()
            status, predictions = 500, 0
        scope = {"method": "POST", "path": "/score", "mirror": True}
        self._log(scope, headers, uuid.uuid4().hex, status, target.name, target.model, predictions, started)

    def _pick(self, pinned: bytes | None) -> Deployment:
        if pinned:
            name = pinned.decode("latin-1")
            if name not in self.deployments:
                known = ", ".join(sorted(self.deployments)) or "none"
                raise HttpError(
                    404, f"deployment {name!r} does not exist on endpoint {self.name!r} (deployments: {known})"
                )
            return self.deployments[name]
        if not self._names:
            raise HttpError(503, f"endpoint {self.name!r} has no deployment taking traffic")
        index = bisect.bisect_right(self._bounds, random.random() * self._bounds[-1])
        return self.deployments[self._names[min(index, len(self._names) - 1)]]

    def _authorize(self, headers: dict[bytes, bytes], accepted: list[bytes], what: str) -> None:
        given = headers.get(b"authorization", b"")
        if not any(hmac.compare_digest(given, key) for key in accepted):
            reason = "missing Authorization header" if not given else "the key is not valid"
            raise HttpError(
                401, f"{reason}: send 'Authorization: Bearer <key>' with {what}", [(b"www-authenticate", b"Bearer")]
            )

    async def _read_body(self, headers: dict[bytes, bytes], receive: Receive) -> bytes:
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                raise HttpError(400, "the Content-Length header is not a number")
            if int(declared) > self.max_body_bytes:
                raise HttpError(413, f"the body is {int(declared)} bytes; the limit is {self.max_body_bytes}")
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise HttpError(499, "the client went away")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise HttpError(413, f"the body is over {self.max_body_bytes} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    # ---- management ----
    async def _manage(self, method: str, path: str, body: bytes) -> dict[str, Any]:
        if path == "state" and method == "GET":
            return self.describe()
        if path == "traffic" and method == "PUT":
            self._set_traffic(_json_object(body))
            return self.describe()
        if path == "mirror" and method == "PUT":
            self._set_mirror(_json_object(body))
            return self.describe()
        if path.startswith("deployments/"):
            name = path.removeprefix("deployments/")
            if method == "PUT":
                await self._add(name, _json_object(body))
                return self.describe()
            if method == "DELETE":
                self._remove(name)
                return self.describe()
        raise HttpError(404, f"no management route {method} /management/{path}")

    async def _add(self, name: str, request: dict[str, Any]) -> None:
        if not _valid_name(name):
            raise HttpError(422, f"deployment name {name!r}: use 3-32 letters, digits or '-', starting with a letter")
        if self.traffic.get(name, 0) > 0:
            raise HttpError(
                409,
                f"deployment {name!r} takes {self.traffic[name]} % of traffic; move its traffic before replacing it",
            )
        bundle = request.get("bundle")
        if not isinstance(bundle, str):
            raise HttpError(422, 'expected {"bundle": "<bundle folder>"}')
        loaded = await asyncio.to_thread(load_bundle, name, Path(bundle))
        self.deployments[name] = loaded
        self._apply_traffic(self.traffic)
        self._save()

    def _remove(self, name: str) -> None:
        if name not in self.deployments:
            raise HttpError(404, f"deployment {name!r} does not exist on endpoint {self.name!r}")
        if self.traffic.get(name, 0) > 0:
            raise HttpError(
                409, f"deployment {name!r} takes {self.traffic[name]} % of traffic; move its traffic before removing it"
            )
        del self.deployments[name]
        self.mirror.pop(name, None)
        self._apply_traffic(self.traffic)
        self._save()

    def _set_traffic(self, traffic: dict[str, Any]) -> None:
        unknown = sorted(set(traffic) - set(self.deployments))
        if unknown:
            raise HttpError(
                422,
                f"traffic names unknown deployment(s) {', '.join(unknown)}; deployments: {', '.join(sorted(self.deployments)) or 'none'}",
            )
        if any(type(v) is not int or not 0 <= v <= 100 for v in traffic.values()):
            raise HttpError(422, f"traffic weights must be whole numbers from 0 to 100, got {traffic}")
        if sum(traffic.values()) not in (0, 100):
            raise HttpError(
                422,
                f"traffic weights must sum to 100 (or 0 to stop all traffic), got {sum(traffic.values())} ({traffic})",
            )
        self._apply_traffic({name: traffic.get(name, 0) for name in self.deployments})
        self.mirror = {n: p for n, p in self.mirror.items() if self.traffic.get(n, 0) == 0}
        self._save()

    def _set_mirror(self, mirror: dict[str, Any]) -> None:
        """Azure ML's rules: a mirror target takes no live traffic, and mirrors at most 50 % of requests."""
        unknown = sorted(set(mirror) - set(self.deployments))
        if unknown:
            raise HttpError(422, f"mirror traffic names unknown deployment(s) {', '.join(unknown)}")
        if any(type(v) is not int or not 0 <= v <= 50 for v in mirror.values()):
            raise HttpError(422, f"mirror traffic must be whole percentages from 0 to 50, got {mirror}")
        live = sorted(n for n, v in mirror.items() if v > 0 and self.traffic.get(n, 0) > 0)
        if live:
            raise HttpError(
                422, f"deployment(s) {', '.join(live)} take live traffic and cannot also receive mirror traffic"
            )
        self.mirror = {n: v for n, v in mirror.items() if v > 0}
        self._save()


def _require(method: str, expected: str) -> None:
    if method != expected:
        raise HttpError(405, f"use {expected}, not {method}", [(b"allow", expected.encode())])


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError as exc:
        raise HttpError(400, f"the body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise HttpError(400, "expected a JSON object")
    return value


def _valid_name(name: str) -> bool:
    return 3 <= len(name) <= 32 and name[0].isalpha() and all(c.isalnum() or c == "-" for c in name)


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m infra.endpoint_server.server")
    parser.add_argument("--dir", type=Path, required=True, help="endpoint folder with keys.json (and state.json)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", default="endpoint")
    parser.add_argument("--max-body-bytes", type=int, default=1 << 20)
    parser.add_argument("--tls-cert", type=Path, help="serve HTTPS with this certificate (PEM) ...")
    parser.add_argument("--tls-key", type=Path, help="... and this key")
    parser.add_argument("--telemetry-dir", type=Path, help="where spans go as files (default MLOPS_HOME/telemetry)")
    parser.add_argument("--collect-percent", type=float, default=100, help="share of scored requests collected")
    args = parser.parse_args(argv)
    app = EndpointApp(
        args.dir,
        name=args.name,
        max_body_bytes=args.max_body_bytes,
        telemetry_dir=args.telemetry_dir,
        collect_percent=args.collect_percent,
    )
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
        ssl_certfile=args.tls_cert,
        ssl_keyfile=args.tls_key,
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
