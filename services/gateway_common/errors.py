"""The one error shape of the contract, shared by both services.

`{"error": {"status": 400, "code": "invalid_parameter", "field": "ms", "message": "..."}}`
with `field` only where one applies.
"""

from __future__ import annotations

from typing import Any

# Code for each status the services produce themselves (nginx adds 502/503/504).
CODE_BY_STATUS: dict[int, str] = {
    400: "bad_request",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_body",
    500: "internal_error",
}


class ApiError(Exception):
    """A client-facing error: raised by validators, rendered by each app's error handler."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field

    def to_body(self) -> dict[str, Any]:
        return error_body(self.status, self.code, self.message, self.field)


def error_body(status: int, code: str, message: str, field: str | None = None) -> dict[str, Any]:
    """Build the contract's error document."""
    error: dict[str, Any] = {"status": status, "code": code}
    if field is not None:
        error["field"] = field
    error["message"] = message
    return {"error": error}


def code_for_status(status: int) -> str:
    """Contract code for a status raised by a framework (404, 405, 413, ...)."""
    return CODE_BY_STATUS.get(status, "http_error")


def not_found_error(method: str, path: str) -> ApiError:
    return ApiError(404, "not_found", f"no route for {method} {path}")


def method_not_allowed_error(method: str, path: str) -> ApiError:
    return ApiError(405, "method_not_allowed", f"method {method} is not allowed for {path}")


def internal_error() -> ApiError:
    return ApiError(500, "internal_error", "internal server error")
