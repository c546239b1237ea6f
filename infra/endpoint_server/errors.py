"""The endpoint's answers other than 200: raised anywhere while a request is handled, answered as JSON."""

from __future__ import annotations

from typing import Any

import orjson


class HttpError(Exception):
    """An answer other than 200, with the message the client reads."""

    def __init__(self, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or []


def json_object(body: bytes) -> dict[str, Any]:
    """A request body that must be a JSON object (an empty body is `{}`)."""
    try:
        value = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError as exc:
        raise HttpError(400, f"the body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise HttpError(400, "expected a JSON object")
    return value
