"""The platform's other databases: a PostgreSQL the user already runs (MLOPS_PREFECT_DATABASE_URL), and a missing
PostgreSQL refused in one line before anything starts. SQLite (MLOPS_PREFECT_DATABASE=sqlite) is checked where a
platform already runs on it: tests/e2e/test_azureml_platform.py (one `mlops up` fewer, 34 s)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from deployments.platform import Platform as PlatformProcesses
from infra.services.postgres import Postgres
from infra.settings import load_settings
from tests.e2e.platform_harness import Platform
from tests.support.helpers import free_port


def _up_and_down(platform: Platform) -> tuple[str, dict[str, object]]:
    """`mlops up`, the platform part of `mlops status --json`, `mlops down`."""
    try:
        up = platform.mlops("up")
        assert up.returncode == 0, up.stdout + up.stderr
        status = json.loads(platform.mlops("status", "--json").stdout)["platform"]
        own = json.loads(platform.mlops("platform", "status", "--json").stdout)  # the platform part alone
        assert (own["running"], own["api_url"], own["database"]) == (True, status["api_url"], status["database"])
        assert platform.api_get("/health") is True
    finally:
        platform.mlops("down")
    return up.stdout, status


@pytest.fixture
def users_postgres(tmp_path: Path) -> Iterator[Postgres]:
    """A PostgreSQL 'the user already runs' (a cluster of the test's own)."""
    cluster = Postgres(tmp_path / "users-postgres", free_port())
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


def test_the_user_s_own_postgresql_is_used_and_no_database_started(
    tmp_path: Path, users_postgres: Postgres, own_prefect_server: None
) -> None:
    platform = Platform(tmp_path / "home")
    plain_url = users_postgres.url.replace("postgresql+asyncpg://", "postgresql://")  # as users write it
    platform.extra = {"MLOPS_PREFECT_DATABASE_URL": plain_url, "MLOPS_BLOB_EMULATOR": "none"}
    report, status = _up_and_down(platform)
    shown = f"postgresql+asyncpg://mlops:***@127.0.0.1:{users_postgres.port}/prefect"
    assert f"database: your PostgreSQL at {shown}" in report
    assert status["database"] == {"kind": "postgres", "managed_by": "you", "url": shown}
    assert not (platform.home / "platform" / "postgres").exists()
    assert users_postgres.password() not in report + json.dumps(status)
    assert users_postgres.pid() is not None  # `mlops down` leaves the user's database alone


def test_missing_postgresql_is_one_line_and_exit_2(tmp_path: Path, own_prefect_server: None) -> None:
    platform = Platform(tmp_path / "home")
    platform.extra = {"MLOPS_POSTGRES_BIN": str(tmp_path)}  # a folder without PostgreSQL's programs
    result = platform.mlops("platform", "up")
    assert result.returncode == 2
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert "holds no initdb and postgres programs" in line
    assert "apt-get install postgresql" in line
    assert "MLOPS_PREFECT_DATABASE=sqlite" in line
    assert not (platform.home / "platform" / "server.pid").exists()


def test_a_taken_database_port_is_one_line_and_exit_1(tmp_path: Path, own_prefect_server: None) -> None:
    platform = Platform(tmp_path / "home")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", platform.postgres_port))
        taken.listen()
        result = platform.mlops("platform", "up")
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()[:1]
    assert line.startswith("mlops platform up: PostgreSQL exited at start")
    assert "set MLOPS_POSTGRES_PORT" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (platform.home / "platform" / "server.pid").exists()


def test_only_the_server_gets_the_database_url(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PREFECT_API_DATABASE_CONNECTION_URL", "sqlite:///somewhere-else.db")
    processes = PlatformProcesses(load_settings(home=tmp_path / "home", prefect_database_url="postgres://u:pw@h:1/d"))
    assert processes.server_env()["PREFECT_API_DATABASE_CONNECTION_URL"] == "postgresql+asyncpg://u:pw@h:1/d"
    assert processes.server_env()["PREFECT_SERVER_LOG_RETRYABLE_ERRORS"] == "true"  # a 503 leaves an ERROR line
    assert "PREFECT_API_DATABASE_CONNECTION_URL" not in processes.env()  # the worker and its flow runs
    assert processes.database()["url"] == "postgresql+asyncpg://u:***@h:1/d"
