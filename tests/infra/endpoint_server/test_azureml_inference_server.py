"""`score.py` gives identical answers under Azure ML's own inference server (azmlinfsrv, in `.venv-azureml`)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from infra.backend import Bundle
from infra.local import LocalBackend
from infra.settings import checkout_root, load_settings
from models.diabetes.score import predict_locally
from tests.support.helpers import MODEL, SMOKE, clone_home, free_port

VENV = checkout_root() / ".venv-azureml"


@pytest.fixture(scope="module")
def bundle(seeded_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    home = clone_home(seeded_template, tmp_path_factory.mktemp("azml") / "home")
    backend = LocalBackend(load_settings(home=home))
    return backend.bundles.build(backend.registry.get(MODEL, 1))


@pytest.fixture(scope="module")
def azmlinfsrv(bundle: Bundle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Azure ML's server on loopback (gunicorn directly: azmlinfsrv itself always binds 0.0.0.0)."""
    gunicorn = VENV / "bin" / "gunicorn"
    assert gunicorn.is_file(), f"{gunicorn} is missing: run `make azureml-venv` (make test does)"
    port = free_port()
    env = {
        "PATH": os.environ["PATH"],
        "AZUREML_ENTRY_SCRIPT": str(bundle.path / "code" / "score.py"),
        "AZUREML_MODEL_DIR": str(bundle.model_dir),
        "AML_APP_ROOT": str(bundle.path / "code"),
    }
    log = tmp_path_factory.mktemp("azml-log") / "server.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [str(gunicorn), "-b", f"127.0.0.1:{port}", "-w", "1", "azureml_inference_server_http.server.entry:app"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert server.poll() is None, log.read_text()
            try:
                if httpx.get(url + "/", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def ours(bundle: Bundle, seeded_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    home = clone_home(seeded_template, tmp_path_factory.mktemp("ours") / "home")
    backend = LocalBackend(load_settings(home=home, endpoint_port=free_port()))
    state = backend.endpoints.ensure("ep-compare")
    try:
        backend.endpoints.add_deployment("ep-compare", "blue", bundle)
        backend.endpoints.set_traffic("ep-compare", {"blue": 100})
        yield state.scoring_url, backend.endpoints.key("ep-compare")
    finally:
        backend.endpoints.stop("ep-compare")


def _bodies() -> list[bytes]:
    rows = np.random.default_rng(7).normal(0, 0.05, size=(100, 10)).tolist()
    return [SMOKE, json.dumps({"data": rows}).encode(), json.dumps({"data": rows[:1]}).encode()]


@pytest.mark.parametrize("body", _bodies(), ids=["smoke", "100-rows", "1-row"])
def test_identical_results(azmlinfsrv: str, ours: tuple[str, str], bundle: Bundle, body: bytes) -> None:
    theirs = httpx.post(f"{azmlinfsrv}/score", content=body, headers={"content-type": "application/json"}, timeout=10)
    url, key = ours
    mine = httpx.post(
        url, content=body, headers={"authorization": f"Bearer {key}", "content-type": "application/json"}, timeout=10
    )
    assert theirs.status_code == mine.status_code == 200, theirs.text
    assert theirs.json() == mine.json()
    assert mine.json()["result"] == predict_locally(bundle.model_dir, json.loads(body)["data"])


def test_bad_request_is_an_error_there_too(azmlinfsrv: str) -> None:
    """Azure ML's server turns run()'s ScoringInputError into a 5xx; ours answers 400 (tested elsewhere)."""
    response = httpx.post(
        f"{azmlinfsrv}/score", content=b'{"data": [[1, 2]]}', headers={"content-type": "application/json"}, timeout=10
    )
    assert response.status_code >= 400
