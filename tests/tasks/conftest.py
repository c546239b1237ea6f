"""Unit tests of the tasks: each task's function (`task.fn`) called directly on the in-memory fake backend.

No Prefect server and no flow run: the run logger is disabled, and events and artifacts are
recorded instead of sent (sending either needs an API).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prefect.events import Event
from prefect.logging import disable_run_logger

import tasks
from infra.settings import Settings, load_settings
from tests.support.fakes import FakeBackend


@pytest.fixture(autouse=True)
def _no_run_logger() -> Iterator[None]:
    with disable_run_logger():
        yield


@pytest.fixture
def fake(tmp_path: Path) -> FakeBackend:
    return FakeBackend(tmp_path / "fake")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(home=tmp_path / "mlops")


@pytest.fixture(autouse=True)
def events(monkeypatch: pytest.MonkeyPatch) -> list[Event]:
    """Every event a task emits, built as `emit_event` builds it (so a malformed one fails the test).

    Sending one needs an API (Prefect's events worker opens a client, which starts a server when
    there is none), so they are kept here instead.
    """
    emitted: list[Event] = []

    def emit(*, event: str, resource: dict[str, str], related: list[Any] | None = None, **rest: Any) -> Event:
        built = Event(event=event, resource=resource, related=related or [], **rest)
        emitted.append(built)
        return built

    for module in _task_modules():
        if hasattr(module, "emit_event"):
            monkeypatch.setattr(module, "emit_event", emit)
    return emitted


def _task_modules() -> list[Any]:
    return [importlib.import_module(f"tasks.{info.name}") for info in pkgutil.iter_modules(tasks.__path__)]


@pytest.fixture(autouse=True)
def artifacts(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every artifact a task creates or updates, as the keyword arguments it passed (plus `kind`)."""
    recorded: list[dict[str, Any]] = []

    def recorder(kind: str) -> Callable[..., str]:
        def record(*args: Any, **kwargs: Any) -> str:
            recorded.append({"kind": kind, "args": args, **kwargs})
            return f"artifact-{len(recorded)}"

        return record

    for module in _task_modules():
        for name in dir(module):
            if name.startswith(("create_", "update_")) and name.endswith("_artifact"):
                monkeypatch.setattr(module, name, recorder(name.removeprefix("create_").removesuffix("_artifact")))
    return recorded
