"""The application our SQLite-backed Prefect servers run: Prefect's own (`prefect.server.api.server:create_app`),
with its SQLite write transactions begun IMMEDIATE.

Prefect begins a write transaction on SQLite DEFERRED (`AioSqliteConfiguration.begin_transaction`, unless the
caller asks `with_for_update`): it reads, then writes. When another connection commits between the two (the
server's own services write events, task runs and logs all the time), SQLite refuses the write with
`SQLITE_BUSY_SNAPSHOT` at once: its busy handler, and so the server's 60 s `busy_timeout`, is never called for
it (https://www.sqlite.org/isolation.html, https://www.sqlite.org/rescode.html#busy_snapshot). The API then
answers 503 and Prefect's client tries again 2.0-2.1 s later: in `mlops run` with a temporary server, about every
other sub-flow started 2 s late (issue 27). `BEGIN IMMEDIATE` takes the write lock when the transaction begins, so
a second writer waits for the first (the busy timeout) instead of failing. Reads outside a transaction are
unchanged; PostgreSQL is untouched.

Run as `uvicorn --factory deployments.prefect_app:create_app` (`deployments/temporary_server.py`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from prefect.server.database.configurations import AioSqliteConfiguration

_PREFECTS_BEGIN = AioSqliteConfiguration.begin_transaction


@asynccontextmanager
async def _begin_immediately(
    self: AioSqliteConfiguration,
    session: Any,
    with_for_update: bool = False,  # noqa: ARG001 - every write transaction takes the lock at its start
) -> AsyncIterator[Any]:
    async with _PREFECTS_BEGIN(self, session, with_for_update=True) as transaction:
        yield transaction


def begin_writes_immediately() -> None:
    """Make every SQLite write transaction of this process's Prefect server begin IMMEDIATE."""
    AioSqliteConfiguration.begin_transaction = _begin_immediately  # type: ignore[method-assign]


def create_app() -> Any:
    """Prefect's server application, its SQLite writes begun IMMEDIATE (for uvicorn's `--factory`)."""
    from prefect.server.api.server import create_app as prefects_app

    begin_writes_immediately()
    return prefects_app()
