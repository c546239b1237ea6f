"""The temporary Prefect server of a plain `mlops run` / `mlops train` (no `mlops up`, no PREFECT_API_URL).

Prefect starts one itself when a flow runs with no API (its `SubprocessASGIServer`), but that
process outlives a `kill -9` of the command that started it: a uvicorn on a random port, until
someone kills it by hand. This starts the same server (the same uvicorn command and environment, but for
the application's SQLite writes, `deployments/prefect_app.py`) with the parent-death signal set (`infra/services/deathsig.py`), so it stops with the command however the command ends, and
points the command's flows at it (Prefect's own settings context, not the process environment).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx

from infra.errors import BackendError
from infra.services import deathsig

_ATTEMPTS = 3  # a port taken between choosing it and binding it: another port


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# What Prefect's own temporary server sets (`SubprocessASGIServer`): no UI, the ephemeral server's services
SERVER_ENVIRONMENT = {"PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}


def server_command(port: int) -> list[str]:
    """The uvicorn command of a temporary server on `port`: Prefect's own, but for the application, whose SQLite
    writes begin IMMEDIATE (`deployments/prefect_app.py`: no 503 and 2 s retry when the server's own writers commit
    between a transaction's read and its write)."""
    import prefect

    command = [sys.executable, "-m", "uvicorn", "--app-dir", str(prefect.__module_path__.parent)]
    command += ["--factory", "deployments.prefect_app:create_app", "--host", "127.0.0.1"]
    return [*command, "--port", str(port), "--log-level", "error", "--lifespan", "on"]


class TemporaryServer:
    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self, timeout: float) -> str:
        """Start the server and wait until it answers; return its API URL. A new database starts as a copy of an
        empty, migrated one when this machine has one (`deployments.prefect_database`)."""
        from deployments.prefect_database import NewDatabase, configured_sqlite_file

        with NewDatabase(configured_sqlite_file()) as database:
            url = self._start(timeout)
            database.started()
        return url

    def _start(self, timeout: float) -> str:
        for _ in range(_ATTEMPTS):
            port = _free_port()
            command = deathsig.command(server_command(port))  # the parent-death signal, set with no window (see there)
            env = {**os.environ, **SERVER_ENVIRONMENT}
            print(f"mlops: starting a temporary Prefect server on http://127.0.0.1:{port}", file=sys.stderr)  # noqa: T201
            self.process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL)
            self.url = f"http://127.0.0.1:{port}/api"
            if self._wait(timeout):
                return self.url
        raise BackendError(f"the temporary Prefect server did not start (exit {self.process and self.process.poll()})")

    def _wait(self, timeout: float) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        with httpx.Client(trust_env=False, timeout=2) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    return False
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"{self.url}/health").status_code == 200:
                        return True
                time.sleep(0.1)
        self.stop()
        raise BackendError(
            f"the temporary Prefect server did not answer within {timeout:g} s "
            "(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS)"
        )

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def api_settings(url: str) -> dict[Any, Any]:
    """Prefect's settings for a process talking to the API at `url`: the URL and, when it is plain HTTP, no TLS
    verification. Prefect builds an SSL context from certifi's bundle for every API client it makes (11 in one
    `mlops run`, 20-40 ms of CPU each: most of it parsing the bundle), even for an `http://` API, where no TLS is
    ever spoken; told to skip verification it builds an empty context instead, and nothing on the wire changes.
    An `https://` API keeps Prefect's verification (issue 27)."""
    from prefect.settings import PREFECT_API_TLS_INSECURE_SKIP_VERIFY, PREFECT_API_URL

    updates: dict[Any, Any] = {PREFECT_API_URL: url}
    if url.startswith("http://"):
        updates[PREFECT_API_TLS_INSECURE_SKIP_VERIFY] = True
    return updates


@contextlib.contextmanager
def temporary_server() -> Iterator[str]:
    """A temporary server for one command: Prefect points at it inside the block (no environment variable is
    changed); at the end, runs' logs and events still queued are sent, then the server stops."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.settings import temporary_settings

    timeout = float(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90"))
    server = TemporaryServer()
    url = server.start(timeout)
    try:
        with temporary_settings(updates=api_settings(url)):
            try:
                yield url
            finally:
                APILogWorker.drain_all(timeout=10)
                EventsWorker.drain_all(timeout=10)
    finally:
        server.stop()
