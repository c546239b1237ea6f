"""Errors answered in ARM's format, `{"error": {"code", "message", "target", "details", "additionalInfo"}}`."""

from __future__ import annotations

from typing import Any


class ArmError(Exception):
    """An error answer in ARM's format."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}

    def payload(self) -> dict[str, Any]:
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "target": None,
                "details": [],
                "additionalInfo": [],
            }
        }


def not_found(what: str) -> ArmError:
    return ArmError(404, "UserError", f"{what} not found", {"x-ms-error-code": "ResourceNotFound"})
