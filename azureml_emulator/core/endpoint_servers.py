"""The servers behind online endpoints: each emulated online endpoint is one local endpoint server
(`infra.endpoint_server`), over HTTPS with the emulator's certificate, on its own port from `--endpoint-port`
upward. They start and stop with the emulator; a deleted workspace's stop with it.
"""

from __future__ import annotations

import hashlib
import socket
import threading
from pathlib import Path

from azureml_emulator.core.arm import ONLINE
from azureml_emulator.core.emulator import Emulator
from azureml_emulator.core.errors import ArmError
from azureml_emulator.tls import CERT_FILE, KEY_FILE
from infra.endpoint_server import EndpointConfig, LocalEndpoints
from infra.errors import MLOpsError

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def lock(key: str) -> threading.Lock:
    """The lock of one endpoint (`key`: its scope and name), held while its server changes."""
    with _locks_guard:
        return _locks.setdefault(key, threading.Lock())


def endpoint_folder(emulator: Emulator, scope: str, name: str) -> Path:
    return Path(emulator.home) / "endpoints" / hashlib.sha256(scope.encode()).hexdigest()[:12] / name


def runtime(emulator: Emulator, scope: str, name: str, port: int) -> LocalEndpoints:
    """The local endpoint server of one emulated endpoint (`infra.endpoint_server.LocalEndpoints`)."""
    tls_dir = Path(emulator.home) / "tls"
    config = EndpointConfig(
        port=port,
        start_timeout=120,
        tls=(tls_dir / CERT_FILE, tls_dir / KEY_FILE),
        port_variable="MLOPS_AZUREML_EMULATOR_ENDPOINT_PORT",
        # A managed online endpoint answers a request past what its deployments can take with 429 "Too many pending
        # requests" (Microsoft Learn, "Troubleshoot online endpoint deployment and scoring", HTTP status codes); our
        # server's own default is 503. No recording holds scoring traffic.
        busy_status=429,
    )
    return LocalEndpoints(endpoint_folder(emulator, scope, name).parent, config)


def free_port(emulator: Emulator) -> int:
    """The lowest port from `--endpoint-port` that no emulated endpoint holds and nothing listens on."""
    taken = {int(body["_emulator"]["port"]) for _, _, body in emulator.store.all_assets(ONLINE)}
    port = emulator.endpoint_port
    while True:
        if port not in taken:
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    pass
                else:
                    return int(port)
        port += 1
        if port > 65535:
            raise ArmError(503, "ServiceUnavailable", "no free port for another online endpoint")


def start_endpoints(emulator: Emulator) -> list[str]:
    """At the emulator's start: start the server of every online endpoint (deployments and traffic restored)."""
    started = []
    for scope, name, body in emulator.store.all_assets(ONLINE):
        try:
            runtime(emulator, scope, name, body["_emulator"]["port"]).ensure(name)
            started.append(name)
        except MLOpsError as exc:
            print(f"online endpoint {name} did not start: {exc}", flush=True)  # noqa: T201 - its log
    return started


def stop_endpoints(emulator: Emulator) -> None:
    """At the emulator's stop: stop every online endpoint's server (they start again with it)."""
    for scope, name, body in emulator.store.all_assets(ONLINE):
        runtime(emulator, scope, name, body["_emulator"]["port"]).stop(name)


def stop_scope_endpoints(emulator: Emulator, scope: str) -> None:
    """A deleted workspace's online endpoints stop serving."""
    for endpoint_scope, name, body in emulator.store.all_assets(ONLINE):
        if endpoint_scope == scope:
            runtime(emulator, scope, name, body["_emulator"]["port"]).stop(name)
