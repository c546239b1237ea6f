"""Bounded disk: a minute of load on an endpoint with small caps leaves its collected requests and its span files
under their caps at every moment, and the drift monitor's reader says its window was cut short.

The load is a light Python client (one connection, paced at about 150 requests of 100 rows a second, ~3 MB/s of
collected data): moderate CPU beside the rest of the suite, yet hundreds of times each cap over the minute.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cli.endpoint import status
from cli.platform import describe_endpoint, disk_line
from infra.common.segments import held_bytes
from infra.local import LocalBackend
from infra.settings import load_settings
from tests.support.helpers import MODEL, clone_home, free_port

ENDPOINT = "retention-endpoint"  # MLOPS_ENDPOINT_NAME, so that `mlops endpoint status` shows it
COLLECT_CAP, SPANS_CAP = 256 * 1024, 64 * 1024  # bytes
LOAD_SECONDS, PACE = 60.0, 1 / 150
BODY = json.dumps({"data": [[0.01 * (i % 97) + j for j in range(10)] for i in range(100)]}).encode()


@pytest.fixture(scope="module")
def endpoint(seeded_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBackend]:
    home = clone_home(seeded_template, tmp_path_factory.mktemp("retention") / "home")
    settings = load_settings(
        home=home,
        endpoint_port=free_port(),
        endpoint_name=ENDPOINT,
        endpoint_collect_max_mb=COLLECT_CAP / (1 << 20),
        telemetry_max_mb=SPANS_CAP / (1 << 20),
    )
    backend = LocalBackend(settings)
    bundle = backend.bundles.build(backend.registry.get(MODEL, 1))
    backend.endpoints.ensure(ENDPOINT)
    try:
        backend.endpoints.add_deployment(ENDPOINT, "blue", bundle)
        backend.endpoints.set_traffic(ENDPOINT, {"blue": 100})
        yield backend
    finally:
        backend.endpoints.stop(ENDPOINT)


def _load(url: str, key: str, stop: threading.Event, answers: list[int]) -> None:
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    with httpx.Client(timeout=10, trust_env=False) as client:
        next_at = time.monotonic()
        while not stop.is_set():
            answers.append(client.post(url, content=BODY, headers=headers).status_code)
            next_at += PACE
            time.sleep(max(0.0, next_at - time.monotonic()))


def test_a_minute_of_load_stays_under_the_caps(
    endpoint: LocalBackend, capsys: pytest.CaptureFixture[str], sustained_load: None
) -> None:
    endpoints = endpoint.endpoints
    collected = endpoints.process(ENDPOINT).folder / "collected"
    spans = endpoint.settings.telemetry_dir
    spans_prefix = f"spans-endpoint-{ENDPOINT}."
    started = time.time()
    stop, answers = threading.Event(), []
    loader = threading.Thread(
        target=_load, args=(endpoints.process(ENDPOINT).url() + "/score", endpoints.key(ENDPOINT), stop, answers)
    )
    loader.start()
    most = {"collected": 0, "spans": 0}
    try:
        while time.time() - started < LOAD_SECONDS:
            most["collected"] = max(most["collected"], held_bytes(collected, ""))
            most["spans"] = max(most["spans"], held_bytes(spans, spans_prefix))
            time.sleep(0.25)
    finally:
        stop.set()
        loader.join()
    time.sleep(0.5)  # the writer's last batch
    assert set(answers) == {200}
    written = len(answers) * len(BODY)
    assert written > 50 * COLLECT_CAP  # the load wrote far more than the caps hold ...
    assert 0 < most["collected"] <= COLLECT_CAP  # ... and at no moment did the disk hold more
    assert 0 < most["spans"] <= SPANS_CAP
    window = endpoints.collected(ENDPOINT, started)
    assert 0 < len(window.requests) < len(answers)
    assert window.requests[-1].time > time.time() - 5  # the newest are the ones kept
    assert window.dropped_before is not None
    assert window.dropped_before >= started
    assert endpoints.collected(ENDPOINT, time.time() + 1).dropped_before is None  # a window after it was not
    state = endpoints.get(ENDPOINT)
    assert state is not None
    assert state.disk is not None
    assert 0 < state.disk["collected"].held_bytes <= state.disk["collected"].cap_bytes == COLLECT_CAP
    assert 0 < state.disk["spans"].held_bytes <= state.disk["spans"].cap_bytes == SPANS_CAP
    described = describe_endpoint(state)
    assert described is not None
    assert disk_line("collected", described["disk"]["collected"]).startswith("collected: 0.")
    assert "of 0.25 MiB" in disk_line("collected", described["disk"]["collected"])
    assert status(endpoint.settings, argparse.Namespace(json=False)) == 0  # `mlops endpoint status`
    shown = capsys.readouterr().out
    assert "disk, collected: 0." in shown
    assert "of 0.25 MiB" in shown
    assert "disk, spans: 0.0" in shown
    assert "of 0.0625 MiB" in shown
