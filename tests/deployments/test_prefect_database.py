"""A new Prefect database starts as a copy of an empty, migrated one (deployments/prefect_database.py)."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from deployments.prefect_database import NewDatabase, configured_sqlite_file, sqlite_file, template_path


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MLOPS_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _migrate(database: Path, *, run_rows: int = 0) -> None:
    """What a server's start leaves in a new database (a revision, block types), and rows a run would write.
    Closed before it returns: `with sqlite3.connect()` only commits, and the connection, kept by a reference
    cycle, was closed by a later garbage collection, which checkpointed the WAL into the file in the middle of
    test_a_database_that_exists_is_never_touched (a fresh-clone failure)."""
    with contextlib.closing(sqlite3.connect(database)) as connection, connection:
        connection.execute("PRAGMA journal_mode = WAL")  # as Prefect's server opens it
        connection.execute("CREATE TABLE alembic_version (version_num TEXT)")
        connection.execute("INSERT INTO alembic_version VALUES ('a1b2c3')")
        connection.execute("CREATE TABLE block_type (id TEXT, slug TEXT)")
        connection.executemany("INSERT INTO block_type VALUES (?, ?)", [("1", "secret"), ("2", "json")])
        connection.execute("CREATE TABLE flow_run (id TEXT)")
        connection.executemany("INSERT INTO flow_run VALUES (?)", [(str(i),) for i in range(run_rows)])


def _rows(database: Path, table: str) -> list[tuple[str, ...]]:
    with contextlib.closing(sqlite3.connect(database)) as connection:
        return connection.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()


def test_the_first_new_database_is_kept_and_the_next_one_starts_as_its_copy(cache: Path, tmp_path: Path) -> None:
    first = tmp_path / "ws1" / "prefect.db"
    with NewDatabase(first) as new:
        assert not new.copied  # nothing kept yet: this server migrates
        first.parent.mkdir()
        _migrate(first)
        new.started()
    kept = template_path()
    assert kept.parent.parent == cache
    assert kept.is_file()
    assert _rows(kept, "alembic_version") == [("a1b2c3",)]
    with contextlib.closing(sqlite3.connect(kept)) as connection:  # one file, nothing beside it to lose
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("delete",)

    second = tmp_path / "ws2" / "prefect" / "prefect.db"  # its folder does not exist yet either
    with NewDatabase(second) as new:
        assert new.copied
        new.started()
    assert _rows(second, "alembic_version") == [("a1b2c3",)]
    assert _rows(second, "block_type") == [("1", "secret"), ("2", "json")]
    assert _rows(second, "flow_run") == []


def test_a_database_a_run_wrote_to_is_not_kept(cache: Path, tmp_path: Path) -> None:
    database = tmp_path / "prefect.db"
    with NewDatabase(database) as new:
        _migrate(database, run_rows=1)
        new.started()
    assert not template_path().exists()
    assert list(template_path().parent.glob("*.partial")) == []
    with NewDatabase(tmp_path / "next.db") as new:
        assert not new.copied


def test_a_database_that_exists_is_never_touched(cache: Path, tmp_path: Path) -> None:
    kept = tmp_path / "kept.db"
    _migrate(kept)
    template = template_path()
    template.parent.mkdir(parents=True)
    template.write_bytes(kept.read_bytes())
    mine = tmp_path / "mine.db"
    _migrate(mine, run_rows=3)
    before = mine.read_bytes()
    with NewDatabase(mine) as new:
        assert not new.copied
        new.started()
    assert mine.read_bytes() == before
    assert template.read_bytes() == kept.read_bytes()  # a used database does not replace the kept one


def test_a_second_server_waits_for_the_first_ones_copy_instead_of_migrating_too(cache: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "a.db", tmp_path / "b.db"
    copied: list[bool] = []

    def later() -> None:
        with NewDatabase(second) as new:
            copied.append(new.copied)
            new.started()

    with NewDatabase(first) as new:
        waiting = threading.Thread(target=later)
        waiting.start()
        time.sleep(0.3)
        assert copied == []  # still waiting on the lock the migrating server holds
        _migrate(first)
        new.started()
    waiting.join(timeout=30)
    assert copied == [True]
    assert _rows(second, "alembic_version") == [("a1b2c3",)]


def test_an_unreadable_kept_database_means_a_migration_not_a_failure(
    cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    template = template_path()
    template.parent.mkdir(parents=True)
    template.write_bytes(b"not a database" * 100)
    database = tmp_path / "prefect.db"
    with NewDatabase(database) as new:
        assert not new.copied
    assert not database.exists()
    assert "could not copy the empty Prefect database" in capsys.readouterr().err


def test_which_file_a_server_would_open() -> None:
    assert sqlite_file("sqlite+aiosqlite:////data/p.db") == Path("/data/p.db")
    assert sqlite_file("sqlite+aiosqlite:///:memory:") is None
    assert sqlite_file("postgresql+asyncpg://u@h/db") is None
    assert configured_sqlite_file({"PREFECT_HOME": "/x/prefect"}) == Path("/x/prefect/prefect.db")
    assert (
        configured_sqlite_file({"PREFECT_HOME": "/x", "PREFECT_API_DATABASE_CONNECTION_URL": "postgresql://h"}) is None
    )
    assert configured_sqlite_file({"PREFECT_SERVER_DATABASE_CONNECTION_URL": "sqlite:///y.db"}) == Path("y.db")


def test_the_session_server_runs_on_a_database_at_the_kept_ones_revision(prefect_server: str) -> None:
    """The real thing: the kept copy came from a real server's start, and the session's server, started on a copy
    of it (or the one that made it), found nothing to migrate: a copy behind Prefect's head would be upgraded at
    start and its revision would differ from the kept one's."""
    import httpx

    serving = configured_sqlite_file()  # the harness points this process's settings at its database
    assert serving is not None
    assert serving.is_file()
    assert _rows(serving, "alembic_version") == _rows(template_path(), "alembic_version") != []
    assert len(_rows(template_path(), "block_type")) > 10  # Prefect's own block types
    assert httpx.get(f"{prefect_server}/health", timeout=10).json() is True
