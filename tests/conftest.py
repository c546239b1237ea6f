"""Test isolation: a private Prefect home, no developer `.env`, no stray MLOPS_ variables; one Prefect server per session."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Prefect reads these when first imported, so they are set before any test module imports it.
_PREFECT_HOME = tempfile.mkdtemp(prefix="mlops-tests-prefect-")
atexit.register(shutil.rmtree, _PREFECT_HOME, ignore_errors=True)
os.environ["PREFECT_HOME"] = _PREFECT_HOME
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["DO_NOT_TRACK"] = "true"
os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "120"
os.environ.pop("PREFECT_API_URL", None)
for _name in [n for n in os.environ if n.startswith("MLOPS_")]:
    del os.environ[_name]
os.environ["MLOPS_ENV_FILE"] = ""  # never read a developer's .env


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh MLOPS_HOME for one test."""
    path = tmp_path / "mlops-home"
    monkeypatch.setenv("MLOPS_HOME", str(path))
    return path


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[str]:
    """A real Prefect server (SQLite, its own port) for the whole session; yields its API URL."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield str(PREFECT_API_URL.value())


@pytest.fixture(scope="session")
def seeded_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace whose registry holds three trained versions (alpha 0.4, 0.1, 5.0); clone it, don't change it."""
    from tests.helpers import seed_registry

    template = tmp_path_factory.mktemp("seeded") / "home"
    seed_registry(template)
    return template


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Azurite blob service (in memory, loopback, its own port) for the session; yields its connection string."""
    from infra.local.azurite import Azurite
    from tests.helpers import free_port

    service = Azurite(tmp_path_factory.mktemp("azurite"), free_port(), in_memory=True)
    connection = service.start()
    try:
        yield connection
    finally:
        service.stop()


CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture
def chromium_page() -> Iterator[Any]:
    """A Playwright page in Debian's Chromium (never a downloaded browser); a missing Chromium fails the test.

    Function-scoped on purpose: Playwright's event loop ends with the test instead of running under every later one.
    """
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.is_file(), f"{CHROMIUM} is missing: apt-get install chromium (.ci/run installs it)"
    flags = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking"]
    flags += ["--disable-component-update", "--disable-sync"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=flags)
        try:
            yield browser.new_page(viewport={"width": 1400, "height": 1400})
        finally:
            browser.close()
