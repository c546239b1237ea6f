"""The PostgreSQL cluster behind `mlops up`: found or refused clearly, created with a private password,
served on loopback only, stopped and started again with its data."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from infra.errors import BackendError, ConfigError
from infra.services import postgres
from infra.services.postgres import Postgres
from tests.support.helpers import free_port


class TestBinaries:
    def test_the_machine_s_postgresql_is_found(self) -> None:
        folder = postgres.binaries()
        assert (folder / "initdb").is_file()
        assert (folder / "postgres").is_file()

    def test_none_installed_names_the_package_and_the_setting(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        monkeypatch.setattr(postgres, "DEBIAN_BINARIES", str(tmp_path / "none" / "*" / "bin"))
        monkeypatch.setenv("PATH", str(tmp_path))
        with pytest.raises(ConfigError, match="PostgreSQL is not installed") as raised:
            postgres.binaries()
        assert "apt-get install postgresql" in str(raised.value)
        assert "MLOPS_PREFECT_DATABASE=sqlite" in str(raised.value)

    def test_a_chosen_folder_without_the_programs_is_named(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match=r"MLOPS_POSTGRES_BIN='.*' holds no initdb and postgres"):
            postgres.binaries(tmp_path)


def _query(cluster: Postgres, sql: str, database: str = "prefect") -> object:
    async def run() -> object:
        connection = await asyncpg.connect(
            host="127.0.0.1", port=cluster.port, user="mlops", password=cluster.password(), database=database
        )
        try:
            return await connection.fetchval(sql)
        finally:
            await connection.close()

    return asyncio.run(run())


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    running = Postgres(tmp_path_factory.mktemp("pg") / "postgres", free_port())
    try:
        running.first_start = running.start()  # type: ignore[attr-defined]
        yield running
    finally:
        running.stop()


class TestCluster:
    def test_created_with_the_prefect_database(self, cluster: Postgres) -> None:
        assert cluster.first_start == "created and started"  # type: ignore[attr-defined]
        assert _query(cluster, "SELECT current_database()") == "prefect"
        log = (cluster.folder / "postgres.log").read_text()
        assert "FATAL" not in log  # start() waited for PostgreSQL's own `ready` before connecting

    def test_password_is_generated_and_private(self, cluster: Postgres) -> None:
        password = cluster.folder / "password"
        assert password.stat().st_mode & 0o777 == 0o600
        assert len(cluster.password()) >= 24
        assert cluster.password() in cluster.url
        assert cluster.password() not in cluster.shown_url

    def test_a_wrong_password_is_refused(self, cluster: Postgres) -> None:
        async def connect() -> None:
            await asyncpg.connect(
                host="127.0.0.1", port=cluster.port, user="mlops", password="wrong", database="prefect"
            )

        with pytest.raises(asyncpg.InvalidPasswordError):
            asyncio.run(connect())

    def test_listens_on_loopback_only_with_no_unix_socket(self, cluster: Postgres) -> None:
        assert _query(cluster, "SHOW listen_addresses") == "127.0.0.1"
        assert _query(cluster, "SHOW unix_socket_directories") == ""

    def test_a_pid_file_naming_another_program_is_not_taken_for_the_server(self, tmp_path: Path) -> None:
        other = Postgres(tmp_path / "other", free_port())
        other.folder.mkdir()
        (other.folder / "postgres.pid").write_text(str(os.getpid()))  # alive, but this test, not PostgreSQL
        assert other.pid() is None

    def test_a_lost_password_is_named_with_what_to_do(self, tmp_path: Path) -> None:
        lost = Postgres(tmp_path / "lost", free_port())
        with pytest.raises(BackendError, match=r"password of the PostgreSQL cluster .* is gone .* delete"):
            lost.password()

    def test_start_while_running_is_a_no_op(self, cluster: Postgres) -> None:
        pid = cluster.pid()
        assert cluster.start() == "running"
        assert cluster.pid() == pid

    def test_a_taken_port_is_named(self, cluster: Postgres, tmp_path: Path) -> None:
        other = Postgres(tmp_path / "other", cluster.port)
        with pytest.raises(BackendError, match=r"port .* taken\? set MLOPS_POSTGRES_PORT"):
            other.start(timeout=30)
        assert other.pid() is None

    def test_stop_then_start_keeps_the_data(self, cluster: Postgres) -> None:
        _query(cluster, "CREATE TABLE kept AS SELECT 42 AS answer")
        pid = cluster.pid()
        assert cluster.stop() is True
        assert cluster.pid() is None
        with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", cluster.port), timeout=2):
            pass
        assert cluster.start() == "started"
        assert cluster.pid() != pid
        assert _query(cluster, "SELECT answer FROM kept") == 42
        assert cluster.stop() is True
        assert cluster.stop() is False
        assert cluster.start() == "started"  # the module fixture stops it
