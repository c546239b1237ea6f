"""The environment lock written at training."""

from __future__ import annotations

import platform
from importlib import metadata

from model import environment


def test_capture_lists_every_locked_library_with_its_running_version() -> None:
    lock = environment.capture()
    assert lock["python"] == platform.python_version()
    assert lock["libraries"] == {name: metadata.version(name) for name in environment.LOCKED_LIBRARIES}
    assert {"scikit-learn", "numpy", "joblib"} <= set(lock["libraries"])
