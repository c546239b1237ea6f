"""Test isolation, tiers and scheduling.

- Isolation: a private Prefect home, no developer `.env`, no stray MLOPS_ variables.
- Tiers: a test's tier follows from the fixtures it uses (`TIER_FIXTURES`): `flow` (a Prefect server),
  `emulator` (the Azure ML emulator), `platform` (`mlops up`, a browser, or `mlops` commands that start a
  Prefect server of their own), `load` (sustained load on a local endpoint for half a minute or more: the
  flood and the retention tests, which saturate the CPU). The rest is the fast tier (pure code and short-lived
  local services):
  `pytest --tier fast` runs only that, and a guard (tests/support/tier_guard.py) fails the run if any of
  it starts a Prefect server, the emulator or the platform anyway.
- Scheduling under pytest-xdist (`make test`: `-n 3 --dist loadfile`): each file stays whole on one
  worker, and files start longest first, by the durations in `tests/durations.json`
  (`pytest --store-durations` rewrites it), so the longest file does not become the tail.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import tempfile
from collections import defaultdict
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
for _name in [n for n in os.environ if n.startswith("MLOPS_") and n != "MLOPS_TEST_GUARD"]:
    del os.environ[_name]
os.environ["MLOPS_ENV_FILE"] = ""  # never read a developer's .env

from tests.support.cli import WORKER_NICENESS  # noqa: E402
from tests.support.emulator import emulated, emulator_server, own_emulator, private_emulated  # noqa: E402
from tests.support.tier_guard import enable, install, violations  # noqa: E402

__all__ = ["emulated", "emulator_server", "own_emulator", "private_emulated"]

TESTS = Path(__file__).resolve().parent
DURATIONS = TESTS / "durations.json"

# The fixtures that put a test (and everything else in its tier) out of the fast tier.
TIER_FIXTURES = {
    "prefect_server": "flow",
    "emulator_server": "emulator",
    "private_emulated": "emulator",
    "own_emulator": "emulator",
    "platform": "platform",
    "chromium_page": "platform",
    "own_prefect_server": "platform",
    "sustained_load": "load",
}
TIERS = ("flow", "emulator", "platform", "load")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--tier",
        choices=["all", "fast"],
        default="all",
        help="fast: only tests that start no Prefect server, emulator or platform (guarded); all: every test",
    )
    parser.addoption(
        "--store-durations",
        action="store_true",
        help=f"write each test file's duration to {DURATIONS.relative_to(TESTS.parent)} (files start longest first)",
    )


def _guard_report(config: pytest.Config) -> Path:
    return Path(str(config.rootpath)) / "test-results" / "tier-guard.log"


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        os.nice(WORKER_NICENESS)  # below the platforms under test (tests/support/cli.py: run_mlops(priority=True))
    if config.getoption("--tier") == "fast":
        if hasattr(config, "workerinput"):
            install()  # the controller set the report file and PYTHONPATH before starting this worker
        else:
            report = _guard_report(config)
            report.unlink(missing_ok=True)
            enable(report)
    config.stash[_durations_key] = defaultdict(float)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for tier in sorted({TIER_FIXTURES[f] for f in getattr(item, "fixturenames", ()) if f in TIER_FIXTURES}):
            item.add_marker(getattr(pytest.mark, tier))
    if config.getoption("--tier") == "fast":
        slow = [item for item in items if any(item.get_closest_marker(tier) for tier in TIERS)]
        if slow:
            config.hook.pytest_deselected(items=slow)
            kept = set(map(id, slow))
            items[:] = [item for item in items if id(item) not in kept]
    _longest_files_first(items)


def _longest_files_first(items: list[pytest.Item]) -> None:
    """Order files by their stored duration, longest first, keeping the order of tests inside each file."""
    stored: dict[str, float] = json.loads(DURATIONS.read_text()) if DURATIONS.is_file() else {}
    first_seen: dict[str, int] = {}
    for index, item in enumerate(items):
        first_seen.setdefault(item.nodeid.split("::")[0], index)

    def key(pair: tuple[int, pytest.Item]) -> tuple[float, int, int]:
        index, item = pair
        module = item.nodeid.split("::")[0]
        return (-stored.get(module, 0.0), first_seen[module], index)

    items[:] = [item for _, item in sorted(enumerate(items), key=key)]


_durations_key = pytest.StashKey[dict[str, float]]()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    config = _config
    if config is not None and config.getoption("--store-durations"):
        config.stash[_durations_key][report.nodeid.split("::")[0]] += report.duration


_config: pytest.Config | None = None


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    global _config
    _config = session.config


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if hasattr(config, "workerinput"):
        return  # the controller reports for the run
    if config.getoption("--store-durations") and exitstatus == 0:
        measured = config.stash[_durations_key]
        stored: dict[str, float] = json.loads(DURATIONS.read_text()) if DURATIONS.is_file() else {}
        stored.update({module: round(seconds, 1) for module, seconds in measured.items()})
        DURATIONS.write_text(json.dumps(dict(sorted(stored.items())), indent=1) + "\n")
    if config.getoption("--tier") == "fast":
        found = violations(_guard_report(config))
        if found:
            reporter = config.pluginmanager.get_plugin("terminalreporter")
            if reporter is not None:
                reporter.write_line("the fast tier started what it must not (tier guard):", red=True)
                for line in found:
                    reporter.write_line(f"  {line}", red=True)
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh MLOPS_HOME for one test."""
    path = tmp_path / "mlops-home"
    monkeypatch.setenv("MLOPS_HOME", str(path))
    return path


@pytest.fixture
def sustained_load() -> None:
    """Marks a test that loads a local endpoint for half a minute or more: the `load` tier (not in `--tier fast`)."""


@pytest.fixture(scope="session")
def prefect_server(mlops_cache: Path) -> Iterator[str]:
    """A real Prefect server (SQLite, its own port) for this pytest process; yields its API URL.

    One per xdist worker, not one shared by all: a server outlives no test that uses it only if the
    process that started it stays until every user is done, which a worker cannot know of the others.
    Each worker starts one the first time a test needs it (in parallel, about 10 s each).
    """
    from unittest import mock

    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL, get_current_settings
    from prefect.testing.utilities import prefect_test_harness

    from deployments.prefect_database import NewDatabase
    from deployments.temporary_server import SERVER_ENVIRONMENT, server_command

    def our_app(server: SubprocessASGIServer) -> subprocess.Popen[bytes]:
        """The harness's server process, running the application `mlops`'s temporary server runs (its SQLite
        writes begun IMMEDIATE: deployments/prefect_app.py), with the harness's settings (its database)."""
        settings = get_current_settings().to_environment_variables(exclude_unset=True)
        return subprocess.Popen(server_command(server.port), env={**os.environ, **SERVER_ENVIRONMENT, **settings})

    # Prefect's harness makes a folder for its database with `mkdtemp`; it gets one whose database is a copy of
    # the run's empty migrated one (deployments/prefect_database.py), as `mlops run`'s temporary server does.
    folder = Path(tempfile.mkdtemp(prefix="mlops-tests-server-"))
    with (
        NewDatabase(folder / "prefect-test.db") as database,
        mock.patch("prefect.testing.utilities.mkdtemp", return_value=str(folder)),
        mock.patch.object(SubprocessASGIServer, "_run_uvicorn_command", our_app),
        prefect_test_harness(server_startup_timeout=120),
    ):
        database.started()
        yield str(PREFECT_API_URL.value())


@pytest.fixture(scope="session", autouse=True)
def mlops_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`MLOPS_CACHE_DIR` for the run (shared by its workers, never the developer's own): the empty Prefect
    database is migrated once per run and copied for every other new one."""
    base = tmp_path_factory.getbasetemp()
    path = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "mlops-cache"
    os.environ["MLOPS_CACHE_DIR"] = str(path)
    return path


@pytest.fixture
def own_prefect_server() -> None:
    """For a test whose `mlops` commands start a Prefect server of their own (a temporary one, or `mlops up`'s):
    it puts the test in the platform tier."""


@pytest.fixture(scope="session")
def seeded_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace whose registry holds three trained versions (alpha 0.4, 0.1, 5.0); clone it, don't change it.

    Under xdist it is made once for the whole run, by the first worker to need it (the others wait on a
    file lock and reuse it): it is only ever read, and its files are only ever copied.
    """
    from filelock import FileLock

    from tests.support.helpers import seed_registry

    if not os.environ.get("PYTEST_XDIST_WORKER"):
        template = tmp_path_factory.mktemp("seeded") / "home"
        seed_registry(template)
        return template
    shared = tmp_path_factory.getbasetemp().parent  # this run's folder, above every worker's own
    template, done = shared / "seeded" / "home", shared / "seeded" / "done"
    with FileLock(str(shared / "seeded.lock")):
        if not done.is_file():
            shutil.rmtree(template, ignore_errors=True)
            seed_registry(template)
            done.touch()
    return template


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Azurite blob service (in memory, loopback, its own port) for the session; yields its connection string."""
    from infra.services.azurite import Azurite
    from tests.support.helpers import free_port

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
