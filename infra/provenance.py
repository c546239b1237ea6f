"""The source revision a model was trained from (the training code's hash is `infra.common.hashing.code_sha256`)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from model.paths import code_root


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
