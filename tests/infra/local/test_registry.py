"""The local SQLite registry: versions, tags, aliases, idempotency and concurrent writers."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from infra.common.hashing import folder_sha256
from infra.errors import MissingResourceError, TransientBackendError
from infra.local.registry import LocalRegistry


def _artifact(root: Path, content: str) -> Path:
    folder = root / f"artifact-{abs(hash(content))}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.joblib").write_text(content)
    (folder / "metrics.json").write_text('{"mse": 1.0}')
    return folder


@pytest.fixture
def registry(tmp_path: Path) -> LocalRegistry:
    return LocalRegistry(tmp_path / "ws" / "registry.db")


class TestVersions:
    def test_versions_increment_per_name(self, registry: LocalRegistry, tmp_path: Path) -> None:
        first = registry.register("a", _artifact(tmp_path, "one"), tags={"mse": "1"}, properties={})
        second = registry.register("a", _artifact(tmp_path, "two"), tags={}, properties={})
        other = registry.register("b", _artifact(tmp_path, "one"), tags={}, properties={})
        assert (first.model.version, second.model.version, other.model.version) == (1, 2, 1)
        assert first.created
        assert second.created
        assert other.created
        assert [m.id for m in registry.list()] == ["a:1", "a:2", "b:1"]

    def test_tags_properties_path_and_time_are_kept(self, registry: LocalRegistry, tmp_path: Path) -> None:
        source = _artifact(tmp_path, "bytes")
        registered = registry.register("m", source, tags={"mse": "3.5", "git_sha": "abc"}, properties={"k": "v"}).model
        again = registry.get("m", 1)
        assert again == registered
        assert again.tags == {"mse": "3.5", "git_sha": "abc"}
        assert again.properties == {"k": "v"}
        assert again.content_hash == folder_sha256(source)
        assert (Path(again.path) / "model.joblib").read_text() == "bytes"
        assert again.created_time.tzinfo is not None

    def test_same_bytes_return_the_existing_version(self, registry: LocalRegistry, tmp_path: Path) -> None:
        first = registry.register("m", _artifact(tmp_path, "same"), tags={"run": "1"}, properties={})
        copy = tmp_path / "copy"
        copy.mkdir()
        for file in Path(first.model.path).iterdir():
            (copy / file.name).write_bytes(file.read_bytes())
        second = registry.register("m", copy, tags={"run": "2"}, properties={})
        assert not second.created
        assert second.model == first.model
        assert len(registry.list("m")) == 1

    def test_missing_version_names_the_known_ones(self, registry: LocalRegistry, tmp_path: Path) -> None:
        registry.register("m", _artifact(tmp_path, "x"), tags={}, properties={})
        with pytest.raises(MissingResourceError, match=r"model 'm' has no version 7 \(registered versions: 1\)"):
            registry.get("m", 7)

    def test_empty_folder_is_refused(self, registry: LocalRegistry, tmp_path: Path) -> None:
        (tmp_path / "empty").mkdir()
        with pytest.raises(Exception, match="nothing to register"):
            registry.register("m", tmp_path / "empty", tags={}, properties={})
        assert registry.list() == []


class TestAliases:
    def test_alias_moves_between_versions(self, registry: LocalRegistry, tmp_path: Path) -> None:
        registry.register("m", _artifact(tmp_path, "1"), tags={}, properties={})
        registry.register("m", _artifact(tmp_path, "2"), tags={}, properties={})
        assert registry.get_alias("m", "champion") is None
        registry.set_alias("m", "champion", 1)
        assert registry.get_alias("m", "champion").version == 1  # type: ignore[union-attr]
        registry.set_alias("m", "champion", 2)
        assert registry.aliases("m") == {"champion": 2}

    def test_alias_to_missing_version_is_refused(self, registry: LocalRegistry) -> None:
        with pytest.raises(MissingResourceError):
            registry.set_alias("m", "champion", 3)
        assert registry.aliases("m") == {}


def _register_in_process(db: str, source: str, barrier: multiprocessing.synchronize.Barrier) -> int:  # type: ignore[name-defined]
    registry = LocalRegistry(Path(db))
    barrier.wait()
    return registry.register("m", Path(source), tags={"source": source}, properties={}).model.version


class TestConcurrentWriters:
    WRITERS = 8

    def test_distinct_models_get_distinct_consecutive_versions(self, tmp_path: Path) -> None:
        db = tmp_path / "ws" / "registry.db"
        sources = [str(_artifact(tmp_path, f"model-{i}")) for i in range(self.WRITERS)]
        context = multiprocessing.get_context("spawn")
        with context.Manager() as manager:
            barrier = manager.Barrier(self.WRITERS)
            with context.Pool(self.WRITERS) as pool:
                versions = pool.starmap(_register_in_process, [(str(db), s, barrier) for s in sources])
        assert sorted(versions) == list(range(1, self.WRITERS + 1))
        stored = LocalRegistry(db).list("m")
        assert sorted(m.tags["source"] for m in stored) == sorted(sources)
        assert {m.version: m.tags["source"] for m in stored} == dict(zip(versions, sources, strict=True))

    def test_same_model_from_many_writers_is_one_version(self, tmp_path: Path) -> None:
        db = tmp_path / "ws" / "registry.db"
        sources = []
        for i in range(self.WRITERS):
            folder = tmp_path / f"copy-{i}"
            folder.mkdir()
            (folder / "model.joblib").write_text("identical")
            sources.append(str(folder))
        context = multiprocessing.get_context("spawn")
        with context.Manager() as manager:
            barrier = manager.Barrier(self.WRITERS)
            with context.Pool(self.WRITERS) as pool:
                versions = pool.starmap(_register_in_process, [(str(db), s, barrier) for s in sources])
        assert versions == [1] * self.WRITERS
        assert [m.version for m in LocalRegistry(db).list("m")] == [1]
        leftovers = [p.name for p in (db.parent / "artifacts").iterdir()]
        assert leftovers == [folder_sha256(Path(sources[0]))]


def test_a_locked_registry_is_a_transient_error_and_registers_nothing(registry: LocalRegistry, tmp_path: Path) -> None:
    """Another writer holding the database past the timeout: a retryable error, and no half-registered version."""
    registry.register("m", _artifact(tmp_path, "1"), tags={}, properties={})
    blocker = sqlite3.connect(registry.db_path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        slow = LocalRegistry.__new__(LocalRegistry)
        slow.db_path, slow.artifacts, slow._timeout, slow._ready = registry.db_path, registry.artifacts, 0.2, True
        with pytest.raises(TransientBackendError, match="stayed locked by another writer"):
            slow.register("m", _artifact(tmp_path, "2"), tags={}, properties={})
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert [m.version for m in registry.list("m")] == [1]
