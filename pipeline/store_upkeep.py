"""The daily run's upkeep of the online store: drop what expired, report the size, keep the rest.

The store holds what was posted since the serving model was trained (users' newest events,
rooms created or gone offline); a new model does not know it either, so the daily run never
wipes the store and drops only what the store's own TTL (`online_store.ttl_s`) says is gone.
A store that cannot be reached (Redis down, an unreadable file) does not fail the run: serving
goes on without it, the summary and the log say so, and the next run tries again.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from peppercorn.config import Config
from peppercorn.online_store import open_store
from pipeline.errors import error_line
from pipeline.stages import plain

__all__ = ["keep_store"]

log = logging.getLogger(__name__)


def keep_store(cfg: Config, now: float | None = None) -> dict[str, Any]:
    """Expire the configured online store at `now` (epoch seconds; the clock by default, the
    time the store's writers stamp with) and report what it holds then.

    Returns `{"available": True, "kind", "expired", "users", "events", "items", "details",
    "seconds"}` (`expired`: events and item states dropped by this call; `details`: the
    store's extra size figures), or `{"available": False, "kind", "error"}` with a warning logged.
    """
    began = time.perf_counter()
    now = time.time() if now is None else float(now)
    kind = cfg.online_store.kind
    store = None
    try:
        store = open_store(cfg.online_store, cfg.online_store_path())
        expired = store.expire(now)
        size = store.size(now)
    # Any failure, not only StoreUnavailable: a missing client library or a path SQLite
    # cannot open is as unavailable, and the run's model and top-K must not be lost to it.
    except Exception as exc:
        error = error_line(exc)
        log.warning("online store (%s) not kept by this run: %s", kind, error)
        return {"available": False, "kind": kind, "error": error}
    finally:
        if store is not None:
            _close(store)
    return {"available": True, "kind": kind, "expired": int(expired), "users": size.users,
            "events": size.events, "items": size.items, "details": plain(dict(size.extra)),
            "seconds": round(time.perf_counter() - began, 3)}  # fmt: skip


def _close(store) -> None:
    try:
        store.close()
    except Exception as exc:  # the upkeep is done; a failing close only leaks a connection
        log.warning("online store: close failed: %s", error_line(exc))
