"""The emulator's state: one SQLite file shared by the server's threads and the job runner.

    workspaces  (scope)                               scope = "<subscription>/<resource group>/<workspace>"
    assets      (scope, kind, name, version, body)    codes, data, environments, models; version "" = container
    jobs        (scope, name, body, status, ...)      the job's ARM body and its run-history fields; `parent`
                                                      names a pipeline job's step (a batch job's child)
    blobs       (container, path, metadata, ...)      the bytes live in files under `blobs/`
    requests    (method, path, api_version, status)   every request served, for tests and `mlops emulator status`;
                                                      `body`: a JSON request's body (the recordings contract test)

Every write is one short transaction; the busy timeout makes concurrent writers wait, not fail.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS workspaces (scope TEXT PRIMARY KEY, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS assets (
    scope TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL, version TEXT NOT NULL,
    body TEXT NOT NULL, created TEXT NOT NULL, modified TEXT NOT NULL,
    PRIMARY KEY (scope, kind, name, version)
);
CREATE TABLE IF NOT EXISTS jobs (
    scope TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL, status TEXT NOT NULL,
    created TEXT NOT NULL, started TEXT, ended TEXT, error TEXT, attempts INTEGER NOT NULL DEFAULT 0,
    parent TEXT, runnable INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (scope, name)
);
CREATE TABLE IF NOT EXISTS blobs (
    container TEXT NOT NULL, path TEXT NOT NULL, size INTEGER NOT NULL, etag TEXT NOT NULL,
    md5 TEXT NOT NULL, content_type TEXT NOT NULL, metadata TEXT NOT NULL, modified TEXT NOT NULL,
    PRIMARY KEY (container, path)
);
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, method TEXT NOT NULL, path TEXT NOT NULL,
    api_version TEXT, status INTEGER NOT NULL, user_agent TEXT, body TEXT
);
"""


_BLOB_COLUMNS = "path, size, etag, md5, content_type, metadata, modified"


def _blob(row: tuple[Any, ...]) -> dict[str, Any]:
    """A blob's properties from its row (the columns after `path`)."""
    size, etag, md5, content_type, metadata, modified = row
    return {
        "size": size,
        "etag": etag,
        "md5": md5,
        "content_type": content_type,
        "metadata": json.loads(metadata),
        "modified": modified,
    }


def now() -> str:
    """ISO 8601 UTC with 7 fractional digits and a Z, as Azure ML writes times."""
    stamp = datetime.now(UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond:06d}0Z"


class Store:
    """The SQLite file at `path`; one connection per thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        path.parent.mkdir(parents=True, exist_ok=True)
        with self.transaction() as db:
            for statement in filter(str.strip, _SCHEMA.split(";")):
                db.execute(statement)
            columns = {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
            for column, kind in (("parent", "TEXT"), ("runnable", "INTEGER NOT NULL DEFAULT 1")):
                if column not in columns:  # a home made by an emulator before pipeline jobs
                    db.execute(f"ALTER TABLE jobs ADD COLUMN {column} {kind}")
            if "body" not in {row[1] for row in db.execute("PRAGMA table_info(requests)")}:  # a home from before
                db.execute("ALTER TABLE requests ADD COLUMN body TEXT")

    def _connection(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode = WAL")
            self._local.db = db
        return db

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._connection()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return self._connection().execute(sql, args).fetchall()

    # ---- workspaces ----
    def add_workspace(self, scope: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR IGNORE INTO workspaces (scope, created) VALUES (?, ?)", (scope, now()))

    def workspace_created(self, scope: str) -> str | None:
        rows = self.query("SELECT created FROM workspaces WHERE scope = ?", (scope,))
        return str(rows[0][0]) if rows else None

    # ---- assets ----
    def get_asset(self, scope: str, kind: str, name: str, version: str = "") -> dict[str, Any] | None:
        rows = self.query(
            "SELECT body FROM assets WHERE scope = ? AND kind = ? AND name = ? AND version = ?",
            (scope, kind, name, version),
        )
        return json.loads(rows[0][0]) if rows else None

    def put_asset(self, scope: str, kind: str, name: str, version: str, body: dict[str, Any]) -> None:
        stamp = now()
        with self.transaction() as db:
            db.execute(
                "INSERT INTO assets (scope, kind, name, version, body, created, modified) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (scope, kind, name, version) DO UPDATE SET body = excluded.body, modified = excluded.modified",
                (scope, kind, name, version, json.dumps(body), stamp, stamp),
            )

    def list_assets(self, scope: str, kind: str, name: str | None = None) -> list[dict[str, Any]]:
        """Containers (`name` None) or the versions of one name, oldest first."""
        if name is None:
            rows = self.query(
                "SELECT body FROM assets WHERE scope = ? AND kind = ? AND version = '' ORDER BY name", (scope, kind)
            )
        else:
            rows = self.query(
                "SELECT body FROM assets WHERE scope = ? AND kind = ? AND name = ? AND version != '' ORDER BY created",
                (scope, kind, name),
            )
        return [json.loads(row[0]) for row in rows]

    def delete_asset(self, scope: str, kind: str, name: str, version: str = "") -> bool:
        with self.transaction() as db:
            cursor = db.execute(
                "DELETE FROM assets WHERE scope = ? AND kind = ? AND name = ? AND version = ?",
                (scope, kind, name, version),
            )
        return cursor.rowcount > 0

    def all_assets(self, kind: str) -> list[tuple[str, str, dict[str, Any]]]:
        """(scope, name, body) of every resource of `kind` in every workspace (online endpoints at start, say)."""
        rows = self.query(
            "SELECT scope, name, body FROM assets WHERE kind = ? AND version = '' ORDER BY scope, name", (kind,)
        )
        return [(str(scope), str(name), json.loads(body)) for scope, name, body in rows]

    def delete_workspace(self, scope: str) -> None:
        """Forget a workspace and everything in it (jobs and assets); blobs stay, as a storage account outlives it."""
        with self.transaction() as db:
            for table in ("workspaces", "assets", "jobs"):
                db.execute(f"DELETE FROM {table} WHERE scope = ?", (scope,))

    # ---- jobs ----
    def get_job(self, scope: str, name: str) -> dict[str, Any] | None:
        rows = self.query(
            "SELECT body, status, created, started, ended, error, attempts, parent FROM jobs WHERE scope = ? AND name = ?",
            (scope, name),
        )
        if not rows:
            return None
        body, status, created, started, ended, error, attempts, parent = rows[0]
        return {
            "body": json.loads(body),
            "status": status,
            "created": created,
            "started": started,
            "ended": ended,
            "error": json.loads(error) if error else None,
            "attempts": attempts,
            "parent": parent,
        }

    def insert_job(self, scope: str, name: str, body: dict[str, Any]) -> bool:
        """Add a job at status NotStarted; False when the name is taken (nothing changes then)."""
        with self.transaction() as db:
            changed = db.execute(
                "INSERT OR IGNORE INTO jobs (scope, name, body, status, created) VALUES (?, ?, ?, 'NotStarted', ?)",
                (scope, name, json.dumps(body), now()),
            ).rowcount
        return changed == 1

    def insert_pipeline(self, scope: str, name: str, body: dict[str, Any], children: dict[str, dict[str, Any]]) -> bool:
        """A pipeline job and its steps, in one transaction: the steps run (NotStarted, queued as any job); the
        pipeline does not run itself, its status follows its steps' (`set_status`). False when a name is taken."""
        stamp = now()
        with self.transaction() as db:
            taken = db.execute(
                f"SELECT 1 FROM jobs WHERE scope = ? AND name IN ({', '.join('?' for _ in range(len(children) + 1))})",
                (scope, name, *children),
            ).fetchone()
            if taken:
                return False
            db.execute(
                "INSERT INTO jobs (scope, name, body, status, created, runnable) VALUES (?, ?, ?, 'NotStarted', ?, 0)",
                (scope, name, json.dumps(body), stamp),
            )
            for child, child_body in children.items():
                db.execute(
                    "INSERT INTO jobs (scope, name, body, status, created, parent) VALUES (?, ?, ?, 'NotStarted', ?, ?)",
                    (scope, child, json.dumps(child_body), stamp, name),
                )
        return True

    def children(self, scope: str, name: str) -> list[str]:
        rows = self.query("SELECT name FROM jobs WHERE scope = ? AND parent = ? ORDER BY created, name", (scope, name))
        return [str(row[0]) for row in rows]

    def update_job_body(self, scope: str, name: str, body: dict[str, Any]) -> None:
        with self.transaction() as db:
            db.execute("UPDATE jobs SET body = ? WHERE scope = ? AND name = ?", (json.dumps(body), scope, name))

    def list_jobs(self, scope: str) -> list[str]:
        """The workspace's jobs, oldest first; a pipeline's steps are not among them (they are its children)."""
        rows = self.query("SELECT name FROM jobs WHERE scope = ? AND parent IS NULL ORDER BY created", (scope,))
        return [str(row[0]) for row in rows]

    def set_status(self, scope: str, name: str, status: str, *, only_from: tuple[str, ...] = (), **fields: Any) -> bool:
        """Move a job to `status` (only from one of `only_from` when given); False if it was not there.

        A pipeline's step carries its pipeline along (a batch job has one step: its status is the job's)."""
        assignments = ["status = ?"] + [f"{column} = ?" for column in fields]
        values: list[Any] = [status] + [json.dumps(v) if column == "error" else v for column, v in fields.items()]
        sql = f"UPDATE jobs SET {', '.join(assignments)} WHERE scope = ? AND name = ?"
        values += [scope, name]
        if only_from:
            sql += f" AND status IN ({', '.join('?' for _ in only_from)})"
            values += list(only_from)
        with self.transaction() as db:
            changed = db.execute(sql, values).rowcount == 1
            if changed:
                parent = db.execute("SELECT parent FROM jobs WHERE scope = ? AND name = ?", (scope, name)).fetchone()
                if parent and parent[0]:
                    db.execute(
                        f"UPDATE jobs SET {', '.join(assignments)} WHERE scope = ? AND name = ?",
                        [*values[: len(assignments)], scope, parent[0]],
                    )
        return changed

    def claim_job(self) -> tuple[str, str] | None:
        """Take the oldest queued job for running (Queued → Starting); None when none waits."""
        with self.transaction() as db:
            row = db.execute(
                "SELECT scope, name FROM jobs WHERE status = 'Queued' AND runnable = 1 ORDER BY created LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            db.execute("UPDATE jobs SET status = 'Starting', attempts = attempts + 1 WHERE scope = ? AND name = ?", row)
        return str(row[0]), str(row[1])

    def requeue_interrupted(self) -> list[str]:
        """Jobs a stopped emulator left half-run go back to the queue (they run again from the start)."""
        with self.transaction() as db:
            rows = db.execute(
                "SELECT name FROM jobs WHERE runnable = 1"
                " AND status IN ('NotStarted', 'Starting', 'Preparing', 'Running', 'Finalizing')"
            ).fetchall()
            db.execute(
                "UPDATE jobs SET status = 'Queued' WHERE runnable = 1"
                " AND status IN ('NotStarted', 'Starting', 'Preparing', 'Running', 'Finalizing')"
            )
        return [str(row[0]) for row in rows]

    # ---- blobs ----
    def get_blob(self, container: str, path: str) -> dict[str, Any] | None:
        rows = self.query(
            f"SELECT {_BLOB_COLUMNS} FROM blobs WHERE container = ? AND path = ?",
            (container, path),
        )
        return _blob(rows[0][1:]) if rows else None

    def put_blob(self, container: str, path: str, **fields: Any) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO blobs (container, path, size, etag, md5, content_type, metadata, modified) "
                "VALUES (:container, :path, :size, :etag, :md5, :content_type, :metadata, :modified) "
                "ON CONFLICT (container, path) DO UPDATE SET size = excluded.size, etag = excluded.etag, "
                "md5 = excluded.md5, content_type = excluded.content_type, metadata = excluded.metadata, "
                "modified = excluded.modified",
                {"container": container, "path": path, **fields, "metadata": json.dumps(fields["metadata"])},
            )

    def set_blob_metadata(self, container: str, path: str, metadata: dict[str, str], etag: str, modified: str) -> bool:
        with self.transaction() as db:
            return (
                db.execute(
                    "UPDATE blobs SET metadata = ?, etag = ?, modified = ? WHERE container = ? AND path = ?",
                    (json.dumps(metadata), etag, modified, container, path),
                ).rowcount
                == 1
            )

    def list_blobs(self, container: str, prefix: str) -> list[tuple[str, dict[str, Any]]]:
        rows = self.query(
            f"SELECT {_BLOB_COLUMNS} FROM blobs WHERE container = ? AND substr(path, 1, ?) = ? ORDER BY path",
            (container, len(prefix), prefix),
        )
        return [(str(row[0]), _blob(row[1:])) for row in rows]

    def delete_blob(self, container: str, path: str) -> bool:
        with self.transaction() as db:
            return db.execute("DELETE FROM blobs WHERE container = ? AND path = ?", (container, path)).rowcount == 1

    # ---- the request log ----
    def log_request(
        self, method: str, path: str, api_version: str | None, status: int, user_agent: str, body: str | None = None
    ) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO requests (time, method, path, api_version, status, user_agent, body) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (now(), method, path, api_version, status, user_agent, body),
            )

    def requests(self, *, bodies: bool = False) -> list[dict[str, Any]]:
        """The log, oldest first; with `bodies`, each JSON request's body too (parsed; None for the others)."""
        rows = self.query("SELECT time, method, path, api_version, status, user_agent, body FROM requests ORDER BY id")
        keys = ("time", "method", "path", "api_version", "status", "user_agent")
        logged = [dict(zip(keys, row[:-1], strict=True)) for row in rows]
        if bodies:
            for entry, row in zip(logged, rows, strict=True):
                entry["body"] = None if row[-1] is None else json.loads(row[-1])
        return logged
