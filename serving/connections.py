"""Connection limits for the server: header and body timeouts, and a cap on connections.

uvicorn alone never cuts a slow client: its keep-alive timer starts only after a response
and stops at the next request's first byte, so a client trickling a byte every few seconds
(slowloris), or connecting and sending nothing, holds its connection forever. Here:

- the request line and headers must arrive within `header_timeout_s` of the request's first
  byte (of the connection opening, for its first request), and the body within
  `body_timeout_s` after the headers: else `408 {"error": ...}` and the connection is closed.
  A connection that sent nothing is closed without a 408 (browsers open spare connections
  ahead of need; Apache and nginx close those silently too);
- an idle keep-alive connection is closed after `keep_alive_s` (uvicorn's own timer);
- a request on a connection beyond `max_connections` (or beyond that many requests in flight)
  is answered `503 {"error": ...}`, uvicorn's `limit_concurrency` answered in JSON; beyond
  twice that many connections, new ones are closed at once without being read, so a flood
  cannot hold the process's file descriptors while each waits out its header timeout.
"""

from __future__ import annotations

import json
import logging
import resource
import time
from typing import Any

from serving.settings import Settings

__all__ = ["uvicorn_options"]

log = logging.getLogger(__name__)

try:
    from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
except ImportError:  # httptools missing: pyproject installs uvicorn[standard], which has it
    HttpToolsProtocol = None


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for `uvicorn.run` enforcing `settings`' connection limits."""
    options: dict[str, Any] = {
        "timeout_keep_alive": settings.keep_alive_s,
        # uvicorn answers 503 once `len(connections) >= limit`, itself included: + 1 serves
        # exactly max_connections (our protocol below does its own check, in JSON).
        "limit_concurrency": settings.max_connections + 1,
    }
    _raise_open_files_limit(2 * settings.max_connections + 64)
    if HttpToolsProtocol is None:
        log.warning("httptools is not installed: no request header or body timeouts")
        return options
    return {**options, "http": _protocol(settings)}


def _raise_open_files_limit(needed: int) -> None:
    # Connections beyond the hard cap are closed at once, but not before they are accepted:
    # the process must have descriptors for them, or accept() fails and /readyz stops answering.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        new = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        if new < needed:
            log.warning("open files limit %d < %d needed for serving.max_connections", new, needed)


def _protocol(settings: Settings) -> type:
    class LimitedHttpToolsProtocol(_Limited, HttpToolsProtocol):
        header_timeout_s = settings.header_timeout_s
        body_timeout_s = settings.body_timeout_s
        max_connections = settings.max_connections

    return LimitedHttpToolsProtocol


class _Limited:
    """Mixin over uvicorn's HttpToolsProtocol: one deadline per connection, for the request
    headers or the body being read (none while the app answers or the connection idles)."""

    header_timeout_s: float
    body_timeout_s: float
    max_connections: int

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.limit_concurrency = None  # checked in on_headers_complete, answered in JSON
        self._deadline = None
        self._began = False  # a byte of the current request arrived
        self._upgraded = False

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        if len(self.connections) > 2 * self.max_connections:
            _warn("over twice serving.max_connections (%d): closing new connections unread",
                  self.max_connections)  # fmt: skip
            transport.close()
            return
        self._arm("header")

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # Bytes between requests that start none (blank lines) get the header clock too.
        idle = self.cycle is None or self.cycle.response_complete
        if self._deadline is None and idle and not self._upgraded:
            self._arm("header")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._began = True
        if self._deadline is None:  # a first request keeps the clock started at connect
            self._arm("header")

    def on_headers_complete(self) -> None:
        self._disarm()
        overloaded = (
            len(self.connections) > self.max_connections or len(self.tasks) >= self.max_connections
        )
        app = self.app
        if overloaded:
            _warn("over serving.max_connections (%d): answering 503", self.max_connections)
            self.app = _overloaded
        try:
            super().on_headers_complete()
        finally:
            self.app = app
        # A pipelined request waits, unread, behind the one being answered: its body clock
        # starts when it does (on_response_complete).
        if not self.pipeline:
            self._arm("body")

    def on_message_complete(self) -> None:
        self._disarm()
        self._began = False
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._deadline is None and self.cycle.more_body and not self.cycle.response_complete:
            self._arm("body")  # the pipelined request started above

    def handle_websocket_upgrade(self) -> None:
        self._disarm()  # the WebSocket protocol takes the connection over
        self._upgraded = True
        super().handle_websocket_upgrade()

    def _arm(self, phase: str) -> None:
        self._disarm()
        if self.transport.is_closing():
            return
        timeout = self.header_timeout_s if phase == "header" else self.body_timeout_s
        self._deadline = self.loop.call_later(timeout, self._expired, phase, timeout)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self, phase: str, timeout: float) -> None:
        self._deadline = None
        cycle = self.cycle  # header phase: the previous request's; body phase: this one's
        if self.transport.is_closing():
            return
        if phase == "header" and cycle is not None and not cycle.response_complete:
            cycle.keep_alive = False  # the previous request is still answered: close after it
            return
        if phase == "body" and cycle.response_started:
            if cycle.response_complete:  # the app answered without the body: nothing to add
                self.transport.close()
            else:
                cycle.keep_alive = False
            return
        if phase == "header" and not self._began:
            self.transport.close()  # nothing of a request arrived: close without a word
            return
        if phase == "body":
            cycle.disconnected = True  # the app, waiting for the body, sends nothing more
            cycle.message_event.set()
        what = "request line and headers" if phase == "header" else "request body"
        body = json.dumps({"error": f"{phase} timeout: {what} not received within {timeout:g} s"})
        head = [STATUS_LINE[408]]
        head += [b"%s: %s\r\n" % kv for kv in self.server_state.default_headers]
        head += [b"content-type: application/json\r\n", b"connection: close\r\n"]
        head += [b"content-length: %d\r\n\r\n" % len(body), body.encode()]
        self.transport.write(b"".join(head))
        self.transport.close()


_warned: dict[str, float] = {}


def _warn(message: str, *args) -> None:
    """Log `message` at most once a minute: an overload or a flood would repeat it per request."""
    if time.monotonic() - _warned.get(message, -60.0) >= 60:
        _warned[message] = time.monotonic()
        log.warning(message, *args)


async def _overloaded(scope, receive, send) -> None:
    body = json.dumps({"error": "server overloaded: too many connections, retry later"}).encode()
    headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})
