"""The environment lock: the Python and library versions a model was trained with.

Training writes it beside the model; `models.diabetes.score.init()` refuses a model whose lock disagrees with
the running environment (MLOpsPython's users lost deployments to an unpinned scikit-learn, its issue 127).
"""

from __future__ import annotations

import contextlib
import importlib
import platform
import threading
from collections.abc import Iterable
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


def top_level_modules(library: str) -> list[str]:
    """The modules an installed distribution (`scikit-learn`) puts at the top of `sys.path` (`sklearn`), from its
    `top_level.txt` or else its file list; none for a distribution that is not installed."""
    try:
        distribution = metadata.distribution(library)
    except metadata.PackageNotFoundError:
        return []
    listed = distribution.read_text("top_level.txt")
    if listed:
        return sorted(set(listed.split()))
    names: set[str] = set()
    for file in distribution.files or []:
        parts = file.parts
        if (len(parts) == 2 and parts[1] == "__init__.py") or (len(parts) == 1 and parts[0].endswith(".py")):
            names.add(parts[0].removesuffix(".py"))
    return sorted(name for name in names if name.isidentifier())


_LATER: list[str] = []  # libraries to import once this process starts waiting (`import_when_waiting`)
_STARTED: list[threading.Thread] = []


def import_when_waiting(libraries: Iterable[str]) -> None:
    """Import `libraries` in the background, but only from when this process first waits on other work
    (`waiting()`: the training job). `mlops run` needs the model's libraries (the smoke test's expected answers,
    batch scoring) only after training, or not at all in an unchanged re-run, whose batch reuses earlier scores:
    imported from its start, they competed for the GIL with every step before (issue 27)."""
    _LATER.extend(libraries)


def waiting() -> None:
    """This process is about to wait (on a training job): the libraries `import_when_waiting` named start now."""
    if _LATER:
        libraries = list(_LATER)
        _LATER.clear()
        _STARTED.append(import_in_background(libraries))


def join_imports() -> None:
    """Wait for the imports `waiting()` started (an interpreter's exit must not find one half-way) and forget
    the ones not started."""
    _LATER.clear()
    while _STARTED:
        _STARTED.pop().join()


def import_in_background(libraries: Iterable[str]) -> threading.Thread:
    """Import the top-level modules of `libraries` (distribution names) in a daemon thread of their own.

    For a process that will load a model with them later and waits on other processes first (`mlops run`
    waits for the sample-data and training commands and the endpoint's start before it batch-scores in
    this process): scikit-learn's import is about 0.8 s of CPU, done here while the main thread is idle.
    Nothing is imported that the process would not import anyway; an import that fails is left for the
    code that needs it to fail on, with its own error."""

    def warm() -> None:
        for library in libraries:
            for module in top_level_modules(library):
                with contextlib.suppress(Exception):
                    importlib.import_module(module)

    thread = threading.Thread(target=warm, name="mlops-import-libraries", daemon=True)
    thread.start()
    return thread
