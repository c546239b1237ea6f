"""The local model registry: a SQLite file mirroring Azure ML's (name, version, tags, properties, path).

Versions auto-increment per name. Registration is one `BEGIN IMMEDIATE` transaction, so concurrent
writers (threads or processes) get distinct consecutive versions and none is lost. It is idempotent
on content: the folder's SHA-256 is unique per name, so the same bytes return the existing version.
Model files are stored content-addressed under `artifacts/<sha256>/`, copied before the row is
written, so a registered version never points at a missing or half-written folder.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from infra.backend import ModelVersion, Registration
from infra.common.hashing import folder_sha256
from infra.errors import MissingResourceError, TransientBackendError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS model_versions (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    content_hash TEXT NOT NULL,
    path TEXT NOT NULL,
    tags TEXT NOT NULL,
    properties TEXT NOT NULL,
    created_time TEXT NOT NULL,
    archived INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (name, version),
    UNIQUE (name, content_hash)
);
CREATE TABLE IF NOT EXISTS model_aliases (
    name TEXT NOT NULL,
    alias TEXT NOT NULL,
    version INTEGER NOT NULL,
    updated_time TEXT NOT NULL,
    PRIMARY KEY (name, alias),
    FOREIGN KEY (name, version) REFERENCES model_versions (name, version)
);
"""
_COLUMNS = "name, version, content_hash, path, tags, properties, created_time, archived"


class LocalRegistry:
    """SQLite registry at `db_path`; model files under `artifacts/` beside it."""

    def __init__(self, db_path: Path, *, busy_timeout_seconds: float = 60.0) -> None:
        self.db_path = db_path
        self.artifacts = db_path.parent / "artifacts"
        self._timeout = busy_timeout_seconds
        self._ready = False

    def create(self) -> None:
        """Create the file and tables unless they exist (writers call it; readers of a missing registry see it empty)."""
        if self._ready:
            return
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        with self._transaction(schema=False) as db:  # executescript() would commit early
            for statement in filter(str.strip, _SCHEMA.split(";")):
                db.execute(statement)
        self._ready = True

    @contextmanager
    def _transaction(self, *, schema: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken at once (`BEGIN IMMEDIATE`), committed or rolled back."""
        if schema:
            self.create()
        db = sqlite3.connect(self.db_path, timeout=self._timeout, isolation_level=None)
        try:
            db.execute("PRAGMA foreign_keys = ON")
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                msg = f"model registry {self.db_path} stayed locked by another writer for {self._timeout:g} s"
                raise TransientBackendError(msg) from exc
            raise
        finally:
            db.close()

    def register(self, name: str, source: Path, *, tags: dict[str, str], properties: dict[str, str]) -> Registration:
        content_hash = folder_sha256(source)
        stored = self._store(source, content_hash)
        with self._transaction() as db:
            row = db.execute(
                f"SELECT {_COLUMNS} FROM model_versions WHERE name = ? AND content_hash = ?", (name, content_hash)
            ).fetchone()
            if row is not None:
                return Registration(model=_to_version(row), created=False)
            (latest,) = db.execute(
                "SELECT COALESCE(MAX(version), 0) FROM model_versions WHERE name = ?", (name,)
            ).fetchone()
            row = (name, latest + 1, content_hash, str(stored), _dump(tags), _dump(properties), _now(), 0)
            db.execute(f"INSERT INTO model_versions ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row)
        return Registration(model=_to_version(row), created=True)

    def _store(self, source: Path, content_hash: str) -> Path:
        """Copy `source` to `artifacts/<hash>/` unless it is there; the rename makes the copy all-or-nothing."""
        target = self.artifacts / content_hash
        if target.is_dir():
            return target
        self.artifacts.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=self.artifacts))
        try:
            shutil.copytree(source, staging, dirs_exist_ok=True)
            os.rename(staging, target)
        except OSError:
            if not target.is_dir():  # a concurrent writer did not win the race for us
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target

    def get(self, name: str, version: int) -> ModelVersion:
        row = self._read_one(f"SELECT {_COLUMNS} FROM model_versions WHERE name = ? AND version = ?", (name, version))
        if row is None:
            known = [str(v.version) for v in self.list(name, include_archived=True)]
            raise MissingResourceError(
                f"model {name!r} has no version {version} (registered versions: {', '.join(known) or 'none'})"
            )
        return _to_version(row)

    def list(self, name: str | None = None, *, include_archived: bool = False) -> list[ModelVersion]:
        query = f"SELECT {_COLUMNS} FROM model_versions WHERE (? IS NULL OR name = ?)"
        if not include_archived:
            query += " AND archived = 0"
        with self._reader() as db:
            rows = db.execute(query + " ORDER BY name, version", (name, name)).fetchall()
        return [_to_version(row) for row in rows]

    def set_alias(self, name: str, alias: str, version: int) -> None:
        self.get(name, version)  # a clear error for a missing version, before the write
        with self._transaction() as db:
            db.execute(
                "INSERT INTO model_aliases (name, alias, version, updated_time) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version, updated_time = excluded.updated_time",
                (name, alias, version, _now()),
            )

    def archive(self, name: str, version: int) -> bool:
        """Hide a version from `list()` (its files and row stay, as Azure ML's archive does); False if it already was."""
        self.get(name, version)
        with self._transaction() as db:
            changed = db.execute(
                "UPDATE model_versions SET archived = 1 WHERE name = ? AND version = ? AND archived = 0",
                (name, version),
            ).rowcount
        return changed == 1

    def get_alias(self, name: str, alias: str) -> ModelVersion | None:
        version = self.aliases(name).get(alias)
        return None if version is None else self.get(name, version)

    def aliases(self, name: str) -> dict[str, int]:
        with self._reader() as db:
            rows = db.execute(
                "SELECT alias, version FROM model_aliases WHERE name = ? ORDER BY alias", (name,)
            ).fetchall()
        return {alias: int(version) for alias, version in rows}

    def _read_one(self, query: str, args: tuple[object, ...]) -> tuple[object, ...] | None:
        with self._reader() as db:
            row: tuple[object, ...] | None = db.execute(query, args).fetchone()
        return row

    @contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        """A connection for reading; an empty in-memory registry when none exists yet (reading creates nothing)."""
        if not self.db_path.is_file():
            db = sqlite3.connect(":memory:")
            db.executescript(_SCHEMA)
        else:
            self.create()
            db = sqlite3.connect(self.db_path, timeout=self._timeout)
        try:
            yield db
        finally:
            db.close()


def _to_version(row: tuple[object, ...]) -> ModelVersion:
    name, version, content_hash, path, tags, properties, created, archived = row
    return ModelVersion(
        name=str(name),
        version=int(str(version)),
        content_hash=str(content_hash),
        path=str(path),
        tags=json.loads(str(tags)),
        properties=json.loads(str(properties)),
        created_time=datetime.fromisoformat(str(created)),
        archived=bool(archived),
    )


def _dump(mapping: dict[str, str]) -> str:
    return json.dumps({str(k): str(v) for k, v in mapping.items()}, sort_keys=True)


def _now() -> str:
    return datetime.now(UTC).isoformat()
