"""The one folder hash (infra/common/hashing.py): registries, batch inputs, training code and code snapshots."""

from __future__ import annotations

import hashlib
from pathlib import Path, PurePosixPath

import pytest

from infra.common.hashing import code_files, code_sha256, files_sha256, folder_sha256
from infra.errors import BackendError


def _write(folder: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


FILES = {"model.joblib": b"\x00\x01model", "metrics.json": b'{"mse": 1.0}', "sub/notes.txt": b"x", "a.b/c": b"y"}


def test_the_same_files_give_the_same_hash_whatever_order_they_were_written_in(tmp_path: Path) -> None:
    first = _write(tmp_path / "first", FILES)
    second = _write(tmp_path / "second", dict(reversed(list(FILES.items()))))
    assert folder_sha256(first) == folder_sha256(second)
    assert len(folder_sha256(first)) == 64
    pairs = [(first / name, PurePosixPath(name)) for name in FILES]
    assert files_sha256(pairs) == files_sha256(reversed(pairs)) == folder_sha256(first)


def test_one_changed_byte_changes_the_hash(tmp_path: Path) -> None:
    folder = _write(tmp_path / "m", FILES)
    before = folder_sha256(folder)
    (folder / "model.joblib").write_bytes(b"\x00\x02model")
    assert folder_sha256(folder) != before


def test_a_renamed_file_changes_the_hash(tmp_path: Path) -> None:
    folder = _write(tmp_path / "m", FILES)
    before = folder_sha256(folder)
    (folder / "sub" / "notes.txt").rename(folder / "sub" / "notes2.txt")
    assert folder_sha256(folder) != before


def test_an_added_empty_file_changes_the_hash(tmp_path: Path) -> None:
    folder = _write(tmp_path / "m", FILES)
    before = folder_sha256(folder)
    (folder / "empty").write_bytes(b"")
    assert folder_sha256(folder) != before


def test_the_hash_is_the_one_registries_stored_before(tmp_path: Path) -> None:
    """Content hashes already in a registry stay valid: the same bytes as the former copies computed (each
    relative path, NUL, the file's SHA-256; files in path order)."""
    folder = _write(tmp_path / "m", FILES)
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    assert folder_sha256(folder) == digest.hexdigest()


@pytest.mark.parametrize("make", [lambda p: p / "missing", lambda p: p])
def test_an_empty_or_missing_folder_has_nothing_to_register(tmp_path: Path, make: object) -> None:
    folder = make(tmp_path)  # type: ignore[operator]
    with pytest.raises(BackendError, match="nothing to register"):
        folder_sha256(folder)


def test_the_code_hash_leaves_out_caches_and_hidden_files(tmp_path: Path) -> None:
    package = _write(tmp_path / "pkg", {"train.py": b"print(1)", "mlops-model.toml": b"[model]"})
    before = code_sha256(package)
    assert before == folder_sha256(package)  # one hash: a package's code hash is its folder's
    _write(package, {"__pycache__/train.cpython-311.pyc": b"\x00", ".hidden/x": b"1", "old.pyc": b"\x00"})
    assert code_sha256(package) == before
    assert [p.name for p in code_files(package)] == ["mlops-model.toml", "train.py"]
    (package / "train.py").write_bytes(b"print(2)")
    assert code_sha256(package) != before
