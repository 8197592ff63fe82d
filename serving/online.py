"""The server's view of the online store: users' newest events, rooms' live state, and the
raw log that accepted events are appended to.

Serving must answer when the store does not: every read here returns "nothing known" on a
`StoreUnavailable`, marks the store down (`/readyz` says so, `peppercorn_online_store_up` is
0) and, for `retry_s`, skips the store instead of making each request wait for a timeout;
then it tries again. The rooms that are not live are read once per `refresh_s` (every
request still sees a change made through this server at once: a write updates the copy).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from peppercorn.online_features import OnlineUser
from peppercorn.online_store import Event, ItemState, OnlineStore, StoreUnavailable

__all__ = ["OnlineState"]

log = logging.getLogger(__name__)


class OnlineState:
    """The store (or None: no store configured), with the down-marking and caching above."""

    def __init__(
        self,
        store: OnlineStore | None,
        metrics=None,
        *,
        retry_s: float = 1.0,
        refresh_s: float = 0.5,
        events_log=None,
        items_log=None,
        describe: str = "",
    ) -> None:
        self.store = store
        self.describe = describe
        self.events_log, self.items_log = events_log, items_log
        self._metrics = metrics
        self._retry_s, self._refresh_s = retry_s, refresh_s
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._error = ""
        self._offline: frozenset[str] = frozenset()
        self._offline_read = -float("inf")
        self._created: dict[str, ItemState] = {}
        self._created_read = -float("inf")
        self._set_up(store is not None)

    def status(self) -> dict:
        """For /readyz: whether the store answers, and why not."""
        if self.store is None:  # none configured, or one that could not be opened
            if not self.describe:
                return {}
            return {
                "online_store": "unavailable",
                "online_store_error": f"cannot open {self.describe}",
            }
        with self._lock:
            if self._down_since is None:
                return {"online_store": "available"}
            return {"online_store": "unavailable", "online_store_error": self._error}

    def _set_up(self, up: bool) -> None:
        if self._metrics is not None:
            self._metrics.store_up.set(1 if up else 0)

    def _skip(self) -> bool:
        # While the store is down, requests do not wait for it; one retries after retry_s.
        if self.store is None:
            return True
        with self._lock:
            if self._down_since is None:
                return False
            if time.monotonic() - self._down_since < self._retry_s:
                return True
            self._down_since = time.monotonic()  # this caller retries; others keep skipping
            return False

    def _failed(self, exc: Exception) -> None:
        with self._lock:
            first = self._down_since is None
            self._down_since, self._error = time.monotonic(), str(exc)
        if first:
            log.warning("online store unavailable, answering without it: %s", exc)
        self._set_up(False)
        if self._metrics is not None:
            self._metrics.store_errors.inc()

    def _ok(self) -> None:
        with self._lock:
            recovered = self._down_since is not None
            self._down_since, self._error = None, ""
        if recovered:
            log.warning("online store available again")
            self._set_up(True)

    def _call(self, what: str, fn, default):
        if self._skip():
            return default
        start = time.perf_counter()
        try:
            out = fn()
        except StoreUnavailable as exc:
            self._failed(exc)
            return default
        finally:
            if self._metrics is not None:
                self._metrics.store_latency.labels(what).observe(time.perf_counter() - start)
        self._ok()
        return out

    def user_events(self, user_id) -> list[Event]:
        """The user's newest events in the store, newest first ([] when none or unavailable)."""
        key = str(user_id)
        found = self._call("recent", lambda: self.store.recent([key], time.time()), {})
        return found.get(key, [])

    def user(self, user_id) -> OnlineUser:
        """What the store says for a request's user: its newest events, the rooms not live."""
        return OnlineUser(events=self.user_events(user_id), offline=self.offline())

    def offline(self) -> frozenset[str]:
        """Raw ids of the rooms not live now (the last read, at most `refresh_s` old)."""
        now = time.monotonic()
        with self._lock:
            fresh = now - self._offline_read < self._refresh_s
            current = self._offline
        if fresh or self._skip():
            return current
        found = self._call("offline", lambda: self.store.offline(time.time()), None)
        if found is None:
            return current
        with self._lock:
            self._offline, self._offline_read = frozenset(found), now
            return self._offline

    def created(self) -> dict[str, ItemState]:
        """Rooms created since training, with content (the last read, at most `refresh_s` old)."""
        now = time.monotonic()
        with self._lock:
            if now - self._created_read < self._refresh_s:
                return self._created
        found = self._call("created", lambda: self.store.created(time.time()), None)
        with self._lock:
            if found is not None:
                self._created, self._created_read = dict(found), now
            return self._created

    def append_events(self, events: Sequence[Event]) -> int:
        """Write accepted events to the store (StoreUnavailable propagates: the caller
        answers 503, the raw log already holds them); how many were new."""
        if self.store is None:
            return 0
        try:
            new = self.store.append(events, time.time())
        except StoreUnavailable as exc:
            self._failed(exc)
            raise
        self._ok()
        return new

    def set_items(self, states: Sequence[ItemState]) -> None:
        """Record rooms' states; this server's next request sees them, even when the store
        then fails (StoreUnavailable propagates: other servers will not see them)."""
        with self._lock:
            offline = set(self._offline)
            for state in states:
                (offline.discard if state.live else offline.add)(state.item_id)
                if state.content is not None:
                    self._created = {**self._created, state.item_id: state}
            self._offline = frozenset(offline)
        if self.store is not None:
            try:
                self.store.set_items(states, time.time())
            except StoreUnavailable as exc:
                self._failed(exc)
                raise
            self._ok()

    def close(self) -> None:
        for part in (self.events_log, self.items_log, self.store):
            if part is not None:
                part.close()
