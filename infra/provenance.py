"""Fingerprints of what went into a model: the training code, the source revision, the CI build."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from model.paths import code_root, model_package

# Files of a model package that do not change what training produces.
_NOT_CODE = (".pyc", ".pyo")


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
    digest = hashlib.sha256()
    for path in code_files(root):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def git_sha(cwd: Path | None = None) -> str | None:
    """The source revision: CI's variable when set (GitHub, Azure DevOps), else `git rev-parse HEAD`, else None."""
    for variable in ("GITHUB_SHA", "BUILD_SOURCEVERSION"):
        if os.environ.get(variable):
            return os.environ[variable]
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd or code_root(),
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    sha = result.stdout.strip()
    return sha if result.returncode == 0 and sha else None
