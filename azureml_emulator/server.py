"""The Azure ML emulator's HTTPS server: the ARM and data-plane routes azure-ai-ml's `MLClient` calls.

    python -m azureml_emulator --home DIR --port PORT [--workspace SUB/RG/WS ...] [--identity-datastores]

It reads each request, finds its handler in the route table (`core/routing.py`) and answers; the
handler modules (`handlers/`, one per resource family) add their routes there, and this module
wires them up. Served (`{WS}` = /subscriptions/{s}/resourceGroups/{rg}/providers/
Microsoft.MachineLearningServices/workspaces/{w}, `{OP}` = /subscriptions/{s}/providers/
Microsoft.MachineLearningServices/locations/{l}, `{RG}` = /subscriptions/{s}/resourceGroups/{rg}):

  handlers/control.py
    GET  /emulator/health, GET /emulator/requests[?bodies=true]   for `mlops emulator status` and the tests
    PUT  /emulator/taken-endpoint-names/{name}      a name someone else holds in the region
    PUT  /emulator/storage-data-role                {"granted": false}: the caller lacks a data role on storage
  handlers/workspace.py
    GET  {WS}                                       the workspace (404 for one the emulator does not hold)
    PATCH|DELETE {WS}                               its tags and names; its deletion (202)
    GET  /discovery                                 the workspace's service endpoints (all this server)
    PUT|GET {RG}/providers/Microsoft.Resources/deployments/{d}[/operationStatuses/{id}|/operations]
                                                    workspace creation, as `workspaces.begin_create` does it
    GET|DELETE {RG}/providers/{storage account|key vault|App Insights|registry type}/{name}
  handlers/assets.py
    GET  {WS}/datastores[/{name}], POST .../listSecrets
    GET|PUT {WS}/{codes|data|environments|models}[/{name}[/versions[/{version}]]]
    POST {WS}/codes/{name}/versions/{v}/startPendingUpload
  handlers/registries.py                          (`{REG}` = /mferp/managementfrontend/subscriptions/{s}/resourceGroups/
                                                    {rg}/providers/Microsoft.MachineLearningServices/registries/{r})
    GET  /registrymanagement/v1.0/registries/{r}/discovery   a registry's region and endpoint
    GET  {REG}/models[/{n}[/versions]], GET|PUT {REG}/models/{n}/versions/{v}, GET /assetstore/v1.0/operations/{id}
    PUT  {REG}/tempdatarefs/{n}/versions/{v}, POST {REG}/datarefs/{n}/versions/{v}   where its files go, and are
  handlers/jobs.py
    PUT|GET {WS}/jobs/{name}, GET {WS}/jobs, POST {WS}/jobs/{name}/cancel (202 + Location)
    GET  {WS}/operationResults/{id}                 the cancel's long-running operation
    GET  /history/v1.0{WS}/.../runs/{id}[/details|/children], POST /history/v1.0{WS}/rundata    run history (jobs.stream, download, a batch job's step)
    POST /data/v1.0{WS}/dataversion/batchGetResolvedUris
  handlers/operations.py
    GET  {OP}/mfeOperationsStatus/{id}, {OP}/mfeOperationResults/{id}, {OP}/workspaceOperationsStatus/{id}
  handlers/online.py
    GET  {WS}/onlineEndpoints, GET|PUT|DELETE {WS}/onlineEndpoints/{e}, POST .../listKeys|regenerateKeys|token
    GET  {WS}/onlineEndpoints/{e}/deployments, GET|PUT|DELETE .../deployments/{d}, POST .../deployments/{d}/getLogs
  handlers/batch.py
    GET  {WS}/batchEndpoints, GET|PUT|DELETE {WS}/batchEndpoints/{e}[/deployments/{d}], GET .../deployments
    POST /inference/batch/{s}/{rg}/{w}/{e}/jobs     the invoke (its scoring URI)
  handlers/compute.py
    GET  {WS}/computes, GET|PUT|DELETE {WS}/computes/{c}, POST .../listNodes
  handlers/schedules.py
    GET  {WS}/schedules, GET|PUT|DELETE {WS}/schedules/{name}
  handlers/tracking.py
    GET  /mlflow/v2.0{WS}/api/2.0/mlflow/runs/get, POST .../runs/{update|log-batch|log-metric|log-parameter|set-tag}
                                                    MLflow tracking: a job's logged parameters and metrics
  core/blobs.py
    /{account}.blob.{suffix}/{container}/{blob}     blob storage

Every ARM call needs an `api-version` and a bearer token; errors answer in ARM's format,
`{"error": {"code", "message", "details", "additionalInfo"}}`. Jobs really run (see `runner.py`).
"""

from __future__ import annotations

import json
import signal
import ssl
import threading
import traceback
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from azureml_emulator.core.arm import STORAGE_SUFFIX
from azureml_emulator.core.context import Context
from azureml_emulator.core.emulator import Emulator
from azureml_emulator.core.endpoint_servers import start_endpoints, stop_endpoints
from azureml_emulator.core.errors import ArmError
from azureml_emulator.core.registries import add_registry
from azureml_emulator.core.routing import Routes
from azureml_emulator.handlers import (
    assets,
    batch,
    compute,
    control,
    jobs,
    online,
    operations,
    registries,
    schedules,
    tracking,
    workspace,
)
from azureml_emulator.runner import JobRunner
from azureml_emulator.tls import CERT_FILE, KEY_FILE, ensure_certificates

_MAX_BODY = 512 * 1024 * 1024
ROUTES = Routes()
for family in (control, workspace, assets, registries, jobs, operations, online, batch, compute, schedules, tracking):
    family.register(ROUTES)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # every request goes to the store's log instead

    def do_GET(self) -> None:
        self._serve("GET")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_HEAD(self) -> None:
        self._serve("HEAD")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def _serve(self, method: str) -> None:
        emulator = self.server.emulator
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        headers = {key.lower(): value for key, value in self.headers.items()}
        length = int(headers.get("content-length") or 0)
        body = self.rfile.read(length) if 0 < length <= _MAX_BODY else b""
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = self._read_chunked()
        query = {key: values[0] for key, values in parse_qs(parts.query, keep_blank_values=True).items()}
        api_version = query.get("api-version")
        first = path.lstrip("/").split("/", 1)[0]
        if first.endswith(f".blob.{STORAGE_SUFFIX}"):
            _, container, blob = [*path.lstrip("/").split("/", 2), "", ""][:3]
            answer = emulator.blobs.handle(method, container, blob, parts.query, headers, body)
            emulator.store.log_request(method, path, api_version, answer.status, headers.get("user-agent", ""))
            self._answer(answer.status, answer.body, answer.headers, method)
            return
        status, payload, extra = self._dispatch(method, path, query, headers, body)
        data = b"" if payload is None else json.dumps(payload).encode()
        response_headers = {"Content-Type": "application/json; charset=utf-8", "x-ms-request-id": str(uuid.uuid4())}
        response_headers["x-ms-correlation-request-id"] = response_headers["x-ms-request-id"]
        if status >= 400:
            response_headers["x-ms-response-type"] = "error"
        # Logged before it is answered, so a client holding an answer finds it in the log. The log is the emulator's
        # own (GET /emulator/requests, for `mlops emulator status` and the tests), not something Azure serves.
        if not path.startswith("/emulator/"):
            logged = _json_text(body) if "json" in headers.get("content-type", "") else None
            emulator.store.log_request(method, path, api_version, status, headers.get("user-agent", ""), logged)
        self._answer(status, data, {**response_headers, **extra}, method)

    def _dispatch(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        try:
            handler, params = ROUTES.find(method, path)
        except ArmError as error:
            return error.status, error.payload(), error.headers
        context = Context(self.server.emulator, method, path, query, headers, body, params)
        try:
            context.check_request(
                anonymous=path.startswith(("/discovery", "/emulator/", "/inference/")),
                # MLflow's REST API has no api-version; a registry operation is polled at its Location as given
                api_version=not path.startswith(("/mlflow/", "/assetstore/")),
            )
            answer = handler(context)
        except ArmError as exc:
            return exc.status, exc.payload(), exc.headers
        except Exception as exc:  # noqa: BLE001 - a bug of ours answers 500 and the server keeps serving
            traceback.print_exc()
            return 500, ArmError(500, "InternalServerError", f"emulator error: {exc}").payload(), {}
        if len(answer) == 2:
            return answer[0], answer[1], {}
        return answer  # type: ignore[return-value]

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        while True:
            size = int(self.rfile.readline().strip().split(b";")[0], 16)
            if size == 0:
                self.rfile.readline()
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    def _answer(self, status: int, data: bytes, headers: dict[str, str], method: str) -> None:
        self.send_response(status)
        for key, value in headers.items():
            if key.lower() != "content-length":
                self.send_header(key, value)
        length = headers.get("Content-Length", str(len(data)))
        self.send_header("Content-Length", length if method == "HEAD" else str(len(data)))
        self.end_headers()
        if method != "HEAD" and data:
            self.wfile.write(data)


def _json_text(body: bytes) -> str | None:
    """A request body for the log: its JSON text, or None when it is empty or not JSON."""
    try:
        return json.dumps(json.loads(body)) if body else None
    except ValueError:
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, emulator: Emulator, tls: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", emulator.port), _RequestHandler)
        self.emulator = emulator
        self.tls = tls

    def finish_request(self, request: Any, client_address: Any) -> None:
        """The TLS handshake happens here, in the connection's own thread, so a slow client holds up no other."""
        request.settimeout(60)
        try:
            connection = self.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            print(f"TLS handshake with {client_address[0]}:{client_address[1]} failed: {exc}", flush=True)  # noqa: T201 - its log
            return
        super().finish_request(connection, client_address)


def serve(
    home: Path,
    port: int,
    workspaces: list[str],
    *,
    registries: tuple[str, ...] = (),
    max_jobs: int = 2,
    endpoint_port: int | None = None,
    lro_scale: float = 0.0,
    identity_datastores: bool = False,
) -> None:
    """Serve until SIGTERM/SIGINT: create the certificates and workspaces, re-queue interrupted jobs, run jobs."""
    ensure_certificates(home / "tls")
    emulator = Emulator(
        home, port, endpoint_port=endpoint_port, lro_scale=lro_scale, identity_datastores=identity_datastores
    )
    for scope in workspaces:
        emulator.store.add_workspace(scope)
    for scope in registries:
        add_registry(emulator.store, scope)
    requeued = emulator.store.requeue_interrupted()
    if requeued:
        print(f"re-queued jobs a stopped emulator left running: {', '.join(requeued)}", flush=True)  # noqa: T201 - its log
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(home / "tls" / CERT_FILE, home / "tls" / KEY_FILE)
    server = _Server(emulator, context)
    runner = JobRunner(emulator, slots=max_jobs)
    runner.start()
    started = start_endpoints(emulator)
    if started:
        print(f"online endpoints serving again: {', '.join(started)}", flush=True)  # noqa: T201 - its log
    print(f"Azure ML emulator serving {emulator.base_url} from {home}", flush=True)  # noqa: T201 - its log
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        runner.stop()
        stop_endpoints(emulator)
        server.server_close()


def shutdown_on_signals() -> None:
    """SIGTERM stops the server like Ctrl-C does (its `finally` stops the runner and running jobs)."""

    def stop(signum: int, frame: object) -> None:  # noqa: ARG001
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    threading.current_thread().name = "emulator"
