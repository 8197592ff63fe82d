"""Errors the server answers with: one exception type carrying a status code, and the
stable messages clients (and tests) can rely on.

Every error body is `{"error": "<message>"}`, as TF Serving's REST API answers.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi.responses import JSONResponse

__all__ = [
    "ErrorResponse",
    "ServingError",
    "admin_disabled",
    "bad_argument",
    "label_not_found",
    "model_not_found",
    "model_not_ready",
    "too_large",
    "unauthorized",
    "unknown_ids",
    "version_not_found",
]


class ErrorResponse(JSONResponse):
    """An error body, ASCII-escaped: a message that echoes a client's string (a lone
    surrogate, say) must not fail to encode and turn a 400 into a 500."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode()


class ServingError(Exception):
    """A request the server refuses; `status_code` is the HTTP code, `message` the body text."""

    def __init__(self, status_code: int, message: str):
        super().__init__(message)
        self.status_code = status_code
        self.message = message


def model_not_found(name: str) -> ServingError:
    return ServingError(404, f"Servable not found for request: Latest({name})")


def version_not_found(name: str, version: int | str) -> ServingError:
    return ServingError(404, f"Servable not found for request: Specific({name}, {version})")


def label_not_found(name: str, label: str) -> ServingError:
    return ServingError(404, f"Unrecognized servable version label: {label} (model {name})")


def model_not_ready(name: str) -> ServingError:
    return ServingError(503, f"model {name} has no version loaded yet")


def bad_argument(message: str) -> ServingError:
    return ServingError(400, message)


def unknown_ids(field: str, ids: list) -> ServingError:
    shown = ids[:20]
    more = f" (and {len(ids) - len(shown)} more)" if len(ids) > len(shown) else ""
    return ServingError(400, f"unknown {field}: {shown}{more}")


def too_large(what: str, size: int, limit: int) -> ServingError:
    return ServingError(413, f"{what} too large: {size} > limit {limit}")


def unauthorized() -> ServingError:
    return ServingError(401, "missing or wrong bearer token (Authorization: Bearer <token>)")


def admin_disabled() -> ServingError:
    return ServingError(
        403, "admin endpoints are disabled: start the server with PEPPERCORN_ADMIN_TOKEN set"
    )
