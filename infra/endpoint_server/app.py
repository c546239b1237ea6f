"""The endpoint's ASGI application: routing, keys, and the hot path of a scored request.

    GET  /                       liveness ("Healthy")
    GET  /ready                  readiness: 200 once a deployment takes traffic, else 503
    GET  /swagger.json           OpenAPI 3 of the scoring request and response
    POST /score                  Bearer <scoring key>; `azureml-model-deployment: <name>` pins a deployment
    POST /management/keys/regenerate  {"key": "primary"}: a new scoring key (or {"value": "..."}, that one),
                                 served at once and saved to keys.json; the answer names the key, never a value
    /management/...              Bearer <admin key>: `management.Deployments.manage`

Which deployment answers is `traffic`'s; the scoring call (micro-batching, back-pressure) is `batching`'s; what
is recorded about each request, `collect`'s. Once a deployment is chosen, its answer (200, 4xx, 503 or 500) names
it: `azureml-model-deployment`, `x-mlops-model-name`, `x-mlops-model-version`, `x-mlops-bundle-sha256` (bytes
built when the bundle loads); every traced answer carries `x-mlops-trace-id`, and every answer `x-ms-request-id`.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
import time
import traceback
import uuid
from pathlib import Path
from typing import Any

import orjson

from infra.endpoint_server.batching import Scorer
from infra.endpoint_server.collect import Recorder, Scope
from infra.endpoint_server.config import Retention
from infra.endpoint_server.errors import HttpError, json_object
from infra.endpoint_server.management import Deployments
from infra.endpoint_server.traffic import Deployment

KEYS_FILE = "keys.json"
_SCORING_KEYS = ("primary", "secondary")
_JSON = [(b"content-type", b"application/json")]

Receive = Any
Send = Any


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
        scorer: Scorer | None = None,
        retention: Retention | None = None,
    ) -> None:
        self.state_dir = state_dir
        self.name = name
        self.max_body_bytes = max_body_bytes
        self.recorder = Recorder(
            state_dir, name, telemetry_dir=telemetry_dir, collect_percent=collect_percent, retention=retention
        )
        self.deployments = Deployments(state_dir, name)
        self.scorer = scorer or Scorer()
        self._keys: dict[str, str] = json.loads((state_dir / KEYS_FILE).read_text())
        self._scoring_keys = [f"Bearer {self._keys[kind]}".encode() for kind in _SCORING_KEYS]
        self._admin_key = f"Bearer {self._keys['admin']}".encode()
        self._liveness_headers = [(b"content-type", b"text/plain"), (b"x-endpoint-pid", str(os.getpid()).encode())]

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
                    self.deployments.restore()
                except Exception as exc:  # noqa: BLE001 - reported to uvicorn, which stops
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                self.recorder.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.recorder.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        headers = dict(scope["headers"])
        request_id = headers.get(b"x-ms-request-id", b"").decode("latin-1") or uuid.uuid4().hex
        deployment, predictions = "", 0
        path = scope["path"]
        traced = (
            self.recorder.begin(scope, headers, request_id)
            if path == "/score" or path.startswith("/management/")
            else None
        )
        served: list[Deployment] = []  # the deployment chosen, once it is (also when it then fails the request)
        try:
            status, body, extra, _, predictions = await self._route(scope, headers, receive, request_id, served)
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
        chosen = served[0] if served else None
        if chosen is not None:  # deployment, model name and version, bundle hash: built once per deployment
            response_headers.extend(chosen.headers)
        trace_id = traced.trace_id if traced is not None else self.recorder.caller_trace_id(headers)
        if trace_id:
            response_headers.append((b"x-mlops-trace-id", trace_id.encode()))
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": body})
        deployment, model = (chosen.name, chosen.model) if chosen is not None else ("", "")
        if traced is not None:
            self.recorder.end(traced, status, deployment, model, predictions, body)
        bundle = chosen.bundle_sha256 if chosen is not None else ""
        self.recorder.log(scope, headers, request_id, status, deployment, model, predictions, started, traced, bundle)

    async def _route(
        self, scope: Scope, headers: dict[bytes, bytes], receive: Receive, request_id: str, served: list[Deployment]
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]], str, int]:
        method, path = scope["method"], scope["path"]
        if path == "/score":
            _require(method, "POST")
            return await self._score(headers, receive, request_id, served)
        if path == "/":
            _require(method, "GET")
            return 200, b"Healthy", self._liveness_headers, "", 0
        if path == "/ready":
            _require(method, "GET")
            if not self.deployments.split.ready:
                raise HttpError(503, f"endpoint {self.name!r} has no deployment taking traffic yet")
            return 200, orjson.dumps({"ready": True, "traffic": self.deployments.split.traffic}), _JSON, "", 0
        if path == "/swagger.json":
            _require(method, "GET")
            return 200, self.deployments.swagger, _JSON, "", 0
        if path.startswith("/management/"):
            self._authorize(headers, [self._admin_key], "the admin key")
            body = await self._read_body(headers, receive)
            if path == "/management/keys/regenerate" and method == "POST":
                return 200, orjson.dumps({"regenerated": self._regenerate_key(json_object(body))}), _JSON, "", 0
            async with self.deployments.lock:
                answer = await self.deployments.manage(method, path.removeprefix("/management/"), body)
            return 200, orjson.dumps(answer), _JSON, "", 0
        raise HttpError(404, f"no route {method} {path}")

    def _regenerate_key(self, request: dict[str, Any]) -> str:
        """Replace a scoring key (with `value`, or a new random one): requests with the old one are refused from
        now on; the keys file is replaced (owner-only) so a restart serves the same keys. Returns the key's kind."""
        kind, value = request.get("key"), request.get("value")
        if kind not in _SCORING_KEYS:
            raise HttpError(422, f'expected {{"key": "primary" or "secondary"}}, got key {kind!r}')
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise HttpError(422, "a key's value must be a non-empty string")
        keys = {**self._keys, kind: value if value is not None else secrets.token_urlsafe(32)}
        temporary = self.state_dir / f".{KEYS_FILE}.{os.getpid()}"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(keys, handle)
        os.replace(temporary, self.state_dir / KEYS_FILE)
        self._keys = keys
        self._scoring_keys = [f"Bearer {keys[k]}".encode() for k in _SCORING_KEYS]
        return str(kind)

    async def _score(
        self, headers: dict[bytes, bytes], receive: Receive, request_id: str, served: list[Deployment]
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]], str, int]:
        self._authorize(headers, self._scoring_keys, "a scoring key")
        pinned = headers.get(b"azureml-model-deployment")
        deployments = self.deployments.loaded
        split = self.deployments.split
        deployment = split.pick(deployments, pinned)
        served.append(deployment)
        self.scorer.admit()
        body = await self._read_body(headers, receive)
        try:
            text = body.decode()
        except UnicodeDecodeError:
            raise HttpError(400, "the body is not UTF-8 text") from None
        if not pinned:
            split.maybe_mirror(deployments, text, headers, self.recorder)
        try:
            answer = await self.scorer.score(deployment, text, body)
        except ValueError as exc:  # the scoring contract: bad input is a ValueError
            raise HttpError(400, str(exc)) from None
        encoded = orjson.dumps(answer)
        self.recorder.collect(headers, request_id, deployment.name, deployment.model, body, encoded)
        return 200, encoded, _JSON, deployment.name, len(answer.get("result", ()))

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


def _require(method: str, expected: str) -> None:
    if method != expected:
        raise HttpError(405, f"use {expected}, not {method}", [(b"allow", expected.encode())])
