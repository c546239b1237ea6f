"""A `prefect server start` on a free loopback port for the benchmarks, on SQLite or on a PostgreSQL cluster of
its own (the platform's, `infra.services.postgres`), stopped when done."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def postgres_cluster(folder: Path) -> Iterator[str]:
    """A new PostgreSQL cluster in `folder` on a free port, as `mlops platform up` runs it; yields its SQLAlchemy URL."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from infra.services.postgres import Postgres

    cluster = Postgres(folder, free_port())
    cluster.start()
    try:
        yield cluster.url
    finally:
        cluster.stop()


@contextmanager
def running_server(work: Path, env: dict[str, str], name: str = "server") -> Iterator[str]:
    """Start the server with `env` (its PREFECT_HOME, and PREFECT_API_DATABASE_CONNECTION_URL for PostgreSQL),
    log to `work/<name>.log`; yield its API URL."""
    port = free_port()
    command = [
        str(Path(sys.executable).parent / "prefect"),
        "server",
        "start",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    url = f"http://127.0.0.1:{port}/api"
    with (work / f"{name}.log").open("w") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            deadline = time.monotonic() + 120
            while not _healthy(url):
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit(f"the Prefect server did not start; see {work / f'{name}.log'}")
                time.sleep(0.5)
            yield url
        finally:
            server.terminate()
            server.wait(timeout=30)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
