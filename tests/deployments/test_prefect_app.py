"""The temporary server's application (deployments/prefect_app.py): Prefect's, its SQLite writes begun IMMEDIATE.

Each case runs in a process of its own: the change is to a Prefect class, for the whole process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from deployments import temporary_server

# A write transaction through Prefect's SQLite configuration reads, another connection then writes and commits, and
# the transaction writes: what Prefect's server does when its own services commit between an API call's read and
# its write (issue 27).
RACE = """
import asyncio, sqlite3, sys
import sqlalchemy as sa
from prefect.server.database.configurations import AioSqliteConfiguration

if sys.argv[2] == "ours":
    from deployments.prefect_app import begin_writes_immediately

    begin_writes_immediately()


async def main(path):
    config = AioSqliteConfiguration(connection_url=f"sqlite+aiosqlite:///{path}")
    engine = await config.engine()
    async with engine.begin() as connection:
        await connection.execute(sa.text("create table t (x int)"))
    other = sqlite3.connect(path, timeout=0.2, isolation_level=None)
    try:
        async with await config.session(engine) as session:
            async with config.begin_transaction(session):
                await session.execute(sa.text("select count(*) from t"))
                try:
                    other.execute("insert into t values (1)")
                    print("other: wrote")
                except sqlite3.OperationalError as exc:
                    print(f"other: {exc}")
                await session.execute(sa.text("insert into t values (2)"))
        print("ours: committed")
    except Exception as exc:
        print(f"ours: {type(exc).__name__}: {str(exc).splitlines()[0]}")
    finally:
        other.close()
        await engine.dispose()


asyncio.run(main(sys.argv[1]))
"""


def _race(tmp_path: Path, app: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", RACE, str(tmp_path / f"{app}.db"), app],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return result.stdout.splitlines()


@pytest.mark.parametrize(
    ("app", "lines"),
    [
        # Prefect's own: the other connection's commit lands, and the transaction's write fails at once (the 503)
        ("prefect", ["other: wrote", "ours: OperationalError: (sqlite3.OperationalError) database is locked"]),
        # ours: the transaction holds the write lock from its start; the other writer waits (here 0.2 s, then gives up)
        ("ours", ["other: database is locked", "ours: committed"]),
    ],
)
def test_a_write_transaction_that_read_first_survives_a_concurrent_commit_only_in_our_app(
    tmp_path: Path, app: str, lines: list[str]
) -> None:
    assert _race(tmp_path, app) == lines


def test_the_temporary_server_runs_our_app() -> None:
    command = temporary_server.server_command(4321)
    assert command[command.index("--factory") + 1] == "deployments.prefect_app:create_app"
    assert command[command.index("--port") + 1] == "4321"
