"""The one hash of a set of files: a model's registered folder, a batch input, a model package's code.

Each file contributes its name (a relative POSIX path), a NUL byte and the SHA-256 of its bytes, files in the
order of their names (as `pathlib` sorts paths). The registry's content hash (both adapters and the test
fake), the batch input's data asset version, the training code's hash and the code snapshot's folder
name are all this one function over different files.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path, PurePath, PurePosixPath

from infra.errors import BackendError
from model.paths import model_package

# Files of a model package that do not change what training produces.
_NOT_CODE = (".pyc", ".pyo")


def files_sha256(files: Iterable[tuple[Path, PurePath]]) -> str:
    """SHA-256 over `(file, name)` pairs: each name and the file's bytes, sorted by name."""
    digest = hashlib.sha256()
    for path, name in sorted(files, key=lambda pair: pair[1]):
        digest.update(name.as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def folder_sha256(folder: Path) -> str:
    """SHA-256 over a folder's files: each relative path and its bytes, in sorted order.

    Raises:
        BackendError: the folder holds no file (or does not exist): there is nothing to register.
    """
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    if not files:
        raise BackendError(f"{folder}: nothing to register (the folder is empty or missing)")
    return files_sha256((path, PurePosixPath(path.relative_to(folder).as_posix())) for path in files)


def code_files(package: Path | None = None) -> list[Path]:
    """A model package's files (its scripts in any language, manifest, parameters), sorted: what the code hash
    covers and a training job's code snapshot holds."""
    root = package or model_package()
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file()
        and p.suffix not in _NOT_CODE
        and not any(part.startswith(".") or part == "__pycache__" for part in p.relative_to(root).parts)
    )


def code_sha256(package: Path | None = None) -> str:
    """SHA-256 over the model package's source files (relative path and bytes, sorted)."""
    root = package or model_package()
    return files_sha256((path, PurePosixPath(path.relative_to(root).as_posix())) for path in code_files(root))
