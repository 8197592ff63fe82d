"""Pure-ASGI middleware around every request: JSON bodies, the body-size limit, metrics, and
the 500 for a server bug."""

from __future__ import annotations

import json
import logging
import time

from starlette.exceptions import HTTPException

from serving.metrics import ServerMetrics

__all__ = ["LimitsAndMetrics"]

log = logging.getLogger(__name__)


class LimitsAndMetrics:
    """Refuses bodies over `max_body_bytes` with 413; times and counts every request by the
    route it matched (its path template, so label cardinality stays bounded)."""

    def __init__(self, app, metrics: ServerMetrics, max_body_bytes: int):
        self.app = app
        self.metrics = metrics
        self.max_body = max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope = _json_body(scope)
        start = time.perf_counter()
        status, started = [500], [False]
        limit = self.max_body

        async def send_and_record(message):
            if message["type"] == "http.response.start":
                status[0], started[0] = message["status"], True
            await send(message)

        try:
            length = _content_length(scope)
            if length is not None and length > limit:
                message = f"request body too large: {length} > {limit}"
                await _send_json(send_and_record, 413, message)
                return
            received = 0

            async def limited_receive():
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > limit:
                        # FastAPI passes HTTPExceptions raised while reading the body through.
                        raise HTTPException(413, f"request body too large: over {limit} bytes")
                return message

            try:
                await self.app(scope, limited_receive, send_and_record)
            except Exception:
                if started[0]:
                    raise
                # Answered here rather than by Starlette's ServerErrorMiddleware, which
                # re-raises after answering, so the server also drops the keep-alive
                # connection and prints the traceback a second time.
                log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
                await _send_json(send_and_record, 500, "internal server error (logged)")
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "unmatched"
            self.metrics.observe_request(endpoint, status[0], time.perf_counter() - start)


def _json_body(scope):
    """Every body is JSON, whatever the Content-Type says.

    TF Serving reads request bodies as JSON regardless of the header, and its documented
    examples (`curl -d '{"instances": ...}'`) send curl's default form Content-Type; FastAPI
    would parse those as forms, so the header is normalised here.
    """
    if scope.get("method") not in ("POST", "PUT", "PATCH"):
        return scope
    # Even JSON-ish types are replaced: FastAPI parses only application/json and */*+json,
    # so `text/json` would reach the handler as bytes and fail validation.
    headers = [(k, v) for k, v in scope.get("headers", ()) if k != b"content-type"]
    return {**scope, "headers": [*headers, (b"content-type", b"application/json")]}


def _content_length(scope) -> int | None:
    for key, value in scope.get("headers", ()):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_json(send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
