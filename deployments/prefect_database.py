"""A new SQLite database for Prefect's server starts as a copy of an empty, migrated one.

Prefect's server brings a new SQLite database to its schema at start: some 200 Alembic migrations, about
4.5 s of CPU (9.7 s to the first answer instead of 5.2 s, measured on this 2-core machine), paid by every
new workspace's first `mlops run` and every `mlops up` on SQLite. The first server of a Prefect version on
this machine migrates as before; right after it answers, a copy of its database is kept (the schema, the
Alembic revision and Prefect's block types: nothing a run wrote, which is checked). Every later new
database starts as that copy, and Prefect, which still runs its migrations at start, finds nothing to do.

The copy is keyed by Prefect's version and its SQLite migration files, and lives in `MLOPS_CACHE_DIR`
(default `$XDG_CACHE_HOME/mlops`, else `~/.cache/mlops`). Deleting it costs one slow start, nothing else.
A database that exists is never touched, and a copy that cannot be made or read means a migration at start,
as without it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import sys
from pathlib import Path
from types import TracebackType

# What an empty, migrated database holds; a table with rows outside these means the copy was taken too late.
_TEMPLATE_TABLES = frozenset({"alembic_version", "block_type", "block_schema", "block_schema_reference"})
_LOCK_TIMEOUT = 120.0  # a second server waits this long for the first one's copy, then migrates itself


def cache_dir() -> Path:
    configured = os.environ.get("MLOPS_CACHE_DIR")
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mlops"


def template_path() -> Path:
    """Where the empty database of the installed Prefect (its version and its SQLite migrations) is kept."""
    import prefect

    versions = Path(prefect.__module_path__) / "server" / "database" / "_migrations" / "versions" / "sqlite"
    names = sorted(p.name for p in versions.glob("*.py")) if versions.is_dir() else []
    digest = hashlib.sha256("\n".join(names).encode()).hexdigest()[:12]
    return cache_dir() / "prefect-database" / f"prefect-{prefect.__version__}-{digest}.db"


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite database URL (`sqlite+aiosqlite:///path`), or None for any other database."""
    for prefix in ("sqlite+aiosqlite:///", "sqlite:///"):
        if url.startswith(prefix):
            path = url.removeprefix(prefix).split("?", 1)[0]
            return None if path in ("", ":memory:") else Path(path).expanduser()
    return None


def configured_sqlite_file(env: dict[str, str] | None = None) -> Path | None:
    """The SQLite file a Prefect server started with `env` (default: this process's settings) would open."""
    if env is None:
        from prefect.settings import get_current_settings

        url = get_current_settings().server.database.connection_url
        return sqlite_file(url.get_secret_value() if url is not None else "")
    for name in ("PREFECT_SERVER_DATABASE_CONNECTION_URL", "PREFECT_API_DATABASE_CONNECTION_URL"):
        if env.get(name):
            return sqlite_file(env[name])
    home = env.get("PREFECT_HOME") or str(Path.home() / ".prefect")
    return Path(home).expanduser() / "prefect.db"


class NewDatabase:
    """Around the start of a server: `with NewDatabase(file) as new: start it; new.started()`.

    On entering, a database file that does not exist yet is copied from the kept one. With none kept, the
    first of several servers starting at once migrates and the others wait for its copy (a file lock, at
    most `_LOCK_TIMEOUT`); `started()`, called once the server answers, keeps the copy and lets them go.
    """

    def __init__(self, database: Path | None) -> None:
        self.database = database
        self.copied = False
        self._lock: object | None = None

    def __enter__(self) -> NewDatabase:
        if self.database is None or self.database.exists():
            self.database = None  # nothing to do: another database, or one that exists
            return self
        template = template_path()
        if self._copy_from(template):
            return self
        from filelock import FileLock, Timeout

        template.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(template) + ".lock")
        try:
            lock.acquire(timeout=_LOCK_TIMEOUT)
        except Timeout:
            return self  # migrate without waiting longer
        if self._copy_from(template):  # made while this one waited
            lock.release()
        else:
            self._lock = lock
        return self

    def started(self) -> None:
        """The server answers: its migrations are done; keep a copy of its database if it had to migrate."""
        try:
            if self._lock is not None and self.database is not None and self.database.exists():
                _keep(self.database, template_path())
        finally:
            self._release()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._release()

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()  # type: ignore[attr-defined]
            self._lock = None

    def _copy_from(self, template: Path) -> bool:
        if self.database is None or not template.is_file():
            return False
        self.database.parent.mkdir(parents=True, exist_ok=True)
        partial = self.database.with_name(self.database.name + ".copying")
        try:
            with (
                contextlib.closing(sqlite3.connect(template)) as source,
                contextlib.closing(sqlite3.connect(partial)) as target,
            ):
                source.backup(target)
            os.replace(partial, self.database)
        except (OSError, sqlite3.Error) as error:
            partial.unlink(missing_ok=True)
            print(f"mlops: could not copy the empty Prefect database ({error}); migrating instead", file=sys.stderr)  # noqa: T201
            return False
        self.copied = True
        return True


def _keep(database: Path, template: Path) -> None:
    """A consistent copy of `database` (the server is running: SQLite's backup, not a file copy), kept only if
    it holds nothing but the schema and block types."""
    partial = template.with_name(template.name + f".{os.getpid()}.partial")
    try:
        with (
            contextlib.closing(sqlite3.connect(database)) as source,
            contextlib.closing(sqlite3.connect(partial)) as target,
        ):
            source.backup(target)
            tables = [row[0] for row in target.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            written = [t for t in tables if t not in _TEMPLATE_TABLES and _has_rows(target, t)]
            target.execute("PRAGMA journal_mode = DELETE")  # one file, no -wal beside it
        if written:
            partial.unlink(missing_ok=True)
            return
        os.replace(partial, template)
    except (OSError, sqlite3.Error):
        partial.unlink(missing_ok=True)


def _has_rows(connection: sqlite3.Connection, table: str) -> bool:
    quoted = table.replace('"', '""')
    return connection.execute(f'SELECT 1 FROM "{quoted}" LIMIT 1').fetchone() is not None
