"""`flow`: Prefect's flow decorator, for a `Flow` whose parameters are made JSON by pydantic-core.

Prefect turns a flow run's parameters into JSON with FastAPI's `jsonable_encoder`, and importing it imports
FastAPI: 0.1-0.5 s of each `mlops run`'s start (more while the process imports the scoring libraries beside it),
for parameters that are numbers, strings, paths and pydantic models (issue 27). `to_jsonable_python` gives those
the same JSON; parameters holding a future or a state (stored as placeholders), or a value it cannot carry, go to
Prefect's own method as before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import prefect
from prefect.client.schemas.objects import State
from prefect.futures import PrefectFuture
from pydantic_core import PydanticSerializationError, to_jsonable_python

P = ParamSpec("P")
R = TypeVar("R")


class Flow(prefect.Flow[P, R]):
    def serialize_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        if any(isinstance(value, (PrefectFuture, State)) for value in parameters.values()):
            return super().serialize_parameters(parameters)  # placeholders, not the objects' fields
        try:
            return {key: to_jsonable_python(value) for key, value in parameters.items()}
        except (PydanticSerializationError, TypeError, ValueError, RecursionError):
            return super().serialize_parameters(parameters)


def flow(**options: Any) -> Callable[[Callable[P, R]], Flow[P, R]]:
    """`@flow(name=..., ...)` as Prefect's, returning our `Flow`."""

    def decorate(fn: Callable[P, R]) -> Flow[P, R]:
        return Flow(fn, **options)

    return decorate
