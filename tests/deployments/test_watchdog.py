"""The platform's endpoint watchdog (deployments/watchdog.py), without the rest of the platform: `kill -9` of the
endpoint's supervisor, and the endpoint serves again with its deployments and traffic; a stop is left alone.
Under `mlops platform up` itself: tests/e2e/test_platform.py (TestSupervision)."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from deployments.watchdog import Watchdog
from infra.local import LocalBackend
from infra.services.processes import supervisor_pid
from infra.settings import load_settings
from tests.support.helpers import MODEL, SMOKE, clone_home, free_port

ENDPOINT = "watched-endpoint"
T = TypeVar("T")


def _until(check: Callable[[], T | None], timeout: float, failure: Callable[[], str]) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (answer := check()) is not None:
            return answer
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout:g} s; the watchdog's log:\n{failure()}")


@pytest.fixture
def watched(seeded_template: Path, tmp_path: Path) -> Iterator[tuple[LocalBackend, Watchdog]]:
    """An endpoint serving version 1 (blue, 80 %) and 2 (green, 20 %), and a watchdog over it."""
    home = clone_home(seeded_template, tmp_path / "home")
    backend = LocalBackend(load_settings(home=home, endpoint_port=free_port(), endpoint_name=ENDPOINT))
    endpoints = backend.endpoints
    watchdog = Watchdog(home / "platform")
    endpoints.ensure(ENDPOINT)
    try:
        for deployment, version in (("blue", 1), ("green", 2)):
            endpoints.add_deployment(ENDPOINT, deployment, backend.bundles.build(backend.registry.get(MODEL, version)))
        endpoints.set_traffic(ENDPOINT, {"blue": 80, "green": 20})
        env = {
            **os.environ,
            "MLOPS_HOME": str(home),
            "MLOPS_ENDPOINT_NAME": ENDPOINT,
            "MLOPS_ENDPOINT_PORT": str(backend.settings.endpoint_port),
        }
        assert watchdog.start(env) == "started"
        yield backend, watchdog
    finally:
        watchdog.stop()
        endpoints.stop(ENDPOINT)


def test_a_killed_supervisor_is_replaced_and_the_endpoint_serves_its_deployments_again(
    watched: tuple[LocalBackend, Watchdog],
) -> None:
    backend, watchdog = watched
    endpoints, process = backend.endpoints, backend.endpoints.process(ENDPOINT)
    supervisor, server = supervisor_pid(process.pid_file), process.pid()
    assert supervisor is not None
    assert server is not None
    os.kill(supervisor, signal.SIGKILL)  # its server dies with it (the parent-death signal)

    def serving() -> int | None:
        pid = process.pid()
        return pid if pid not in (None, server) and process.running() else None

    killed = time.monotonic()
    _until(serving, timeout=60, failure=lambda: watchdog.log.read_text())
    took = time.monotonic() - killed
    assert took < 10, f"serving again after {took:.1f} s, not within 10 s:\n{watchdog.log.read_text()}"
    state = endpoints.get(ENDPOINT)
    assert state is not None
    assert state.running
    assert {n: (d.model, d.traffic) for n, d in state.deployments.items()} == {
        "blue": (f"{MODEL}:1", 80),
        "green": (f"{MODEL}:2", 20),
    }
    assert state.health is not None
    assert (state.health["state"], state.health["supervised"]) == ("running", True)
    answer = httpx.post(
        state.scoring_url, content=SMOKE, headers={"authorization": f"Bearer {endpoints.key(ENDPOINT)}"}, timeout=10
    )
    assert answer.status_code == 200

    def said_all() -> list[str] | None:
        """The watchdog's lines once it logged the endpoint serving (a moment after the server's first answers)."""
        lines = [json.loads(line)["watchdog"] for line in watchdog.log.read_text().splitlines() if '"watchdog"' in line]
        return lines if len(lines) >= 3 else None

    said = _until(said_all, timeout=30, failure=lambda: watchdog.log.read_text())
    assert said[0] == f"watching endpoint {ENDPOINT} every 0.5 s"
    assert said[1].startswith(f"endpoint {ENDPOINT}: supervisor pid {supervisor} died (killed?) after ")
    assert said[1].endswith(", recording no stop; starting it again")
    assert (
        said[2]
        == f"endpoint {ENDPOINT}: serving again at {state.scoring_url} (blue: {MODEL}:1 80 %, green: {MODEL}:2 20 %)"
    )
    assert len(said) == 3

    assert endpoints.stop(ENDPOINT)  # a stop on purpose: the watchdog leaves it stopped
    time.sleep(1.5)  # three of the watchdog's rounds
    assert process.pid() is None
    assert len(watchdog.log.read_text().splitlines()) == len(said)
    assert watchdog.pid() is not None
