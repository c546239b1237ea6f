"""Helpers shared by tests: free ports, a seeded workspace, and a bounded loopback load generator."""

from __future__ import annotations

import http.server
import json
import os
import random
import shutil
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from infra.backend import TrainSpec
from infra.local import LocalBackend
from infra.settings import load_settings
from models.diabetes.data import write_sample_csv

ALPHAS = (0.4, 0.1, 5.0)  # versions 1, 2, 3 of the seeded registry
MODEL = "diabetes_regression_model.pkl"
SMOKE = b'{"data": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [10, 9, 8, 7, 6, 5, 4, 3, 2, 1]]}'


_HANDED_OUT: set[int] = set()


def _ephemeral_range() -> tuple[int, int]:
    """The ports the kernel gives outgoing connections (net.ipv4.ip_local_port_range)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def _worker_stripe(ports: range) -> range:
    """This pytest-xdist worker's own share of `ports` (all of them outside xdist).

    `_HANDED_OUT` is per process, so two workers drawing from one range could hand out the same
    port; striping by worker number (`gw0`, `gw1`, ...) makes their draws disjoint.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if not worker.startswith("gw") or count < 2:
        return ports
    index = int(worker[2:])
    width = len(ports) // count
    return range(ports.start + index * width, ports.start + (index + 1) * width)


def free_port() -> int:
    """A loopback port that is free now, that this session has not handed out, and that no outgoing connection takes.

    A port from bind(0) lies in the kernel's ephemeral range, so between this call and the server's bind,
    often minutes later (the platform tests), any process's outgoing connection may be given it:
    that is what made the platform's endpoint fail with "address already in use" once. Ports are
    therefore drawn from outside that range.
    """
    low, high = _ephemeral_range()
    candidates = _worker_stripe(range(20000, low) if low > 21000 else range(high + 1, 65536))
    for port in random.sample(candidates, min(500, len(candidates))):
        if port in _HANDED_OUT:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise RuntimeError(f"no free loopback port outside the ephemeral range {low}-{high}")


def seed_registry(home: Path) -> None:
    """Train and register one version per alpha in `ALPHAS`, through the real local backend."""
    backend = LocalBackend(load_settings(home=home))
    data = write_sample_csv(home / "data" / "diabetes.csv")
    for alpha in ALPHAS:
        output = backend.jobs.train(TrainSpec(job_name=f"seed-{alpha}", data=data, parameters={"alpha": alpha}))
        properties = {"metrics": json.dumps(output.metrics)}  # what register_model records, and the gate reads
        backend.registry.register(MODEL, output.outputs, tags={"alpha": str(alpha)}, properties=properties)


def trained_copies(template: Path, folder: Path) -> list[Path]:
    """Copies of the seeded registry's trained model folders (versions 1, 2, 3: different bytes), under `folder`:
    what a training job writes, to register as uploads; copies, as the template is shared and only ever read."""
    copies = []
    for model in LocalBackend(load_settings(home=template)).registry.list(MODEL):
        copies.append(Path(shutil.copytree(model.path, folder / str(model.version))))
    return copies


def clone_home(template: Path, home: Path) -> Path:
    """A new workspace holding the template's registry (model files stay shared, read-only)."""
    home.mkdir(parents=True)
    shutil.copy2(template / "registry.db", home / "registry.db")
    shutil.copytree(template / "data", home / "data")
    return home


@contextmanager
def flow_workspace(template: Path, home: Path) -> Iterator[LocalBackend]:
    """A seeded workspace as the flows see it (MLOPS_HOME and a free endpoint port in the environment),
    version 1 the champion; the endpoint the flows start is stopped at the end."""
    clone_home(template, home)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLOPS_HOME", str(home))
        patch.setenv("MLOPS_ENDPOINT_PORT", str(free_port()))
        backend = LocalBackend(load_settings())
        backend.registry.set_alias(MODEL, "champion", 1)
        try:
            yield backend
        finally:
            backend.endpoints.stop(backend.settings.endpoint_name)


class LoadGenerator:
    """Scores in a loop from a few threads until stopped (or `max_seconds`); counts every status seen.

    Each thread waits `pause` between an answer and its next request: 4 threads send about 150 requests a
    second, a request every 7 ms or so, instead of as many as two cores can serve (which spent some 40 s of
    CPU per suite run in the test process alone, and as much again in the endpoint, taken from the very
    deploys and restarts the load is there to watch)."""

    def __init__(self, url: str, key: str, *, threads: int = 4, max_seconds: float = 120, pause: float = 0.025) -> None:
        self.url, self.key, self.max_seconds, self.pause = url, key, max_seconds, pause
        self.statuses: Counter[int] = Counter()
        self.deployments: Counter[str] = Counter()
        self.failures: list[str] = []
        self.results: list[tuple[float, float, int | str]] = []  # (sent, answered, status or error) per request
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(threads)]

    def __enter__(self) -> LoadGenerator:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _loop(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        headers = {"authorization": f"Bearer {self.key}", "content-type": "application/json"}
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set() and time.monotonic() < deadline:
                sent = time.monotonic()
                try:
                    response = client.post(self.url, content=SMOKE, headers=headers)
                except httpx.HTTPError as exc:
                    with self._lock:
                        self.failures.append(repr(exc))
                        self.results.append((sent, time.monotonic(), type(exc).__name__))
                    time.sleep(0.02)  # a server that is down is not hammered
                    continue
                with self._lock:
                    self.statuses[response.status_code] += 1
                    self.deployments[response.headers.get("azureml-model-deployment", "")] += 1
                    self.results.append((sent, time.monotonic(), response.status_code))
                self._stop.wait(self.pause)

    @property
    def total(self) -> int:
        return sum(self.statuses.values()) + len(self.failures)


class Receiver(http.server.ThreadingHTTPServer):
    """Keeps every POST it is sent: (path, headers, body)."""

    def __init__(self, port: int) -> None:
        self.posts: list[tuple[str, dict[str, str], bytes]] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(handler) -> None:
                body = handler.rfile.read(int(handler.headers.get("content-length", 0)))
                self.posts.append((handler.path, dict(handler.headers), body))
                answer = b'{"itemsReceived": 1, "itemsAccepted": 1, "errors": []}'
                handler.send_response(200)
                handler.send_header("content-type", "application/json")
                handler.send_header("content-length", str(len(answer)))
                handler.end_headers()
                handler.wfile.write(answer)

            def log_message(handler, *args: object) -> None:
                return None

        super().__init__(("127.0.0.1", port), Handler)


@contextmanager
def receiving() -> Iterator[Receiver]:
    """A `Receiver` on a free loopback port, serving from a thread until the block ends."""
    server = Receiver(free_port())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
