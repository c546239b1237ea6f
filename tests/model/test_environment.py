"""The environment lock and its comparison."""

from __future__ import annotations

from model import environment


def test_capture_lists_every_locked_library() -> None:
    lock = environment.capture()
    assert set(lock["libraries"]) == set(environment.LOCKED_LIBRARIES)
    assert environment.mismatches(lock) == []


def test_mismatches_name_library_and_both_versions() -> None:
    lock = environment.capture()
    current = {"python": lock["python"], "libraries": {**lock["libraries"], "scikit-learn": "0.22.2"}}
    problems = environment.mismatches(lock, current)
    assert problems == [f"scikit-learn: model trained with {lock['libraries']['scikit-learn']}, running 0.22.2"]


def test_python_minor_version_matters_but_patch_does_not() -> None:
    lock = {"python": "3.11.7", "libraries": {}}
    assert environment.mismatches(lock, {"python": "3.11.9", "libraries": {}}) == []
    assert environment.mismatches(lock, {"python": "3.12.1", "libraries": {}}) == [
        "python: model trained with 3.11.7, running 3.12.1"
    ]
