"""The environment lock: the Python and library versions a model was trained with.

Scoring refuses a model whose lock disagrees with the running environment (MLOpsPython's users lost
deployments to an unpinned scikit-learn; see its issue 127).
"""

from __future__ import annotations

import platform
from importlib import metadata
from typing import Any

# The libraries whose versions decide whether a pickled model loads and predicts the same.
LOCKED_LIBRARIES: tuple[str, ...] = ("scikit-learn", "numpy", "scipy", "joblib", "pandas")


def capture() -> dict[str, Any]:
    """Return `{"python": "3.11.7", "libraries": {name: version}}` for the running interpreter."""
    return {
        "python": platform.python_version(),
        "libraries": {name: metadata.version(name) for name in LOCKED_LIBRARIES},
    }


def mismatches(lock: dict[str, Any], current: dict[str, Any] | None = None) -> list[str]:
    """Describe each library (and the Python minor version) that differs between `lock` and `current`.

    Returns one sentence per difference, empty when the environments agree.
    """
    current = current if current is not None else capture()
    problems: list[str] = []
    locked_python, running_python = str(lock.get("python", "")), str(current.get("python", ""))
    if locked_python.split(".")[:2] != running_python.split(".")[:2]:
        problems.append(f"python: model trained with {locked_python}, running {running_python}")
    locked_libs: dict[str, str] = lock.get("libraries") or {}
    running_libs: dict[str, str] = current.get("libraries") or {}
    for name, version in sorted(locked_libs.items()):
        running = running_libs.get(name)
        if running != version:
            problems.append(f"{name}: model trained with {version}, running {running or 'not installed'}")
    return problems
