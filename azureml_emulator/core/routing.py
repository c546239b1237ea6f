"""The route table: each handler module adds its routes (`register(routes)`); the server finds a request's handler."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from azureml_emulator.core.context import Context
from azureml_emulator.core.errors import ArmError

WORKSPACE = (
    r"/subscriptions/(?P<sub>[^/]+)/resource[gG]roups/(?P<rg>[^/]+)"
    r"/providers/Microsoft\.MachineLearningServices/workspaces/(?P<ws>[^/]+)"
)
Answer = tuple[int, Any] | tuple[int, Any, dict[str, str]]  # status, JSON body (None: none), extra headers
Handler = Callable[[Context], Answer]


class Routes:
    """(method, path pattern, handler) in the order added; a request goes to the first that matches it."""

    def __init__(self) -> None:
        self._table: list[tuple[str, re.Pattern[str], Handler]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        """Serve `method` on the paths `pattern` matches whole; `{WS}` in it stands for a workspace's ARM path."""
        self._table.append((method, re.compile(pattern.replace("{WS}", WORKSPACE) + "$"), handler))

    def find(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        """The handler of `method` on `path`, and the path's parameters; ARM's 405 or 404 when there is none."""
        served = False
        for route_method, pattern, handler in self._table:
            match = pattern.match(path)
            if match is None:
                continue
            if route_method == method:
                return handler, match.groupdict()
            served = True
        if served:
            raise ArmError(405, "MethodNotAllowed", f"{method} is not supported on {path}")
        raise ArmError(404, "NoRegisteredProviderFound", f"the emulator does not serve {method} {path}")
