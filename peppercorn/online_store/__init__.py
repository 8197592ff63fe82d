"""The online store: each user's newest events and each room's current state.

One small interface (`OnlineStore`), two implementations: SQLite in WAL mode, a file under the
data root and the embedded default (`sqlite.py`), and Redis for production (`redis.py`).
Writers: `POST /v1/events` and `POST /v1/items` on the server, and the streaming job
(`features.stream`). Readers: serving's chain (history, seen and live filters) and the daily
run (expiry, size).

The state is a pure function of the set of events and item states written, so replaying a
file, or posting an event that the streaming job also reads from the raw log, changes nothing:
- an event is identified by `event_id`; of two events with one id, the earlier (`ts`, then the
  smaller `Event.key()`) is kept, the ETL's duplicate rule;
- per user, the `events_per_user` newest events are kept, newest first by (`ts`, `event_id`);
- an event whose `ts` is older than `now - ttl_s` is gone (expired), whenever it arrives;
- an item's state is the one with the newest `updated`; ties keep the later write.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "Event",
    "ItemState",
    "OnlineStore",
    "StoreSize",
    "StoreUnavailable",
    "open_store",
]


class StoreUnavailable(RuntimeError):
    """The store cannot be reached (a stopped Redis, a locked or unreadable SQLite file)."""


@dataclass(frozen=True)
class Event:
    """One validated event of the raw log (docs/data-contracts.md §1); `ts` in epoch seconds."""

    event_id: str
    user_id: str
    item_id: str
    event: str  # impression, click, watch, gift, follow
    ts: float
    watch_seconds: float | None = None
    gift_value: float | None = None

    def key(self) -> tuple:
        """The total order of events: newest first sorts by this, descending."""
        return (self.ts, self.event_id)


@dataclass(frozen=True)
class ItemState:
    """A room's current state: live or not, and its content when created after training
    (`{"category": ..., "tags": [...], ...}`, the keys `/v1/items` accepts)."""

    item_id: str
    live: bool = True
    content: dict[str, Any] | None = None
    updated: float = 0.0  # epoch seconds


@dataclass(frozen=True)
class StoreSize:
    """What the store holds: users with events, events, items with a state."""

    users: int
    events: int
    items: int
    extra: dict[str, Any] = field(default_factory=dict)


class OnlineStore(Protocol):
    """The store's interface; every method raises StoreUnavailable when it cannot answer."""

    def append(self, events: Sequence[Event], now: float) -> int:
        """Add events (idempotent by event_id); the number that were not held before."""

    def recent(self, user_ids: Sequence[str], now: float) -> dict[str, list[Event]]:
        """Each user's kept, unexpired events, newest first (users with none are absent)."""

    def set_items(self, states: Sequence[ItemState], now: float) -> None:
        """Record rooms' states (the newest `updated` wins)."""

    def items(self, item_ids: Sequence[str], now: float) -> dict[str, ItemState]:
        """The unexpired states of these items (items with none are absent)."""

    def offline(self, now: float) -> set[str]:
        """Every item whose current state is not live."""

    def created(self, now: float) -> dict[str, ItemState]:
        """Every item whose state carries content (rooms created since training)."""

    def expire(self, now: float) -> int:
        """Drop what has expired; the number of events and item states dropped."""

    def size(self, now: float) -> StoreSize:
        """What the store holds now."""

    def ping(self) -> None:
        """Return when the store answers; StoreUnavailable when it does not."""

    def close(self) -> None:
        """Release connections and files."""


def open_store(cfg, path: str | None = None) -> OnlineStore:
    """The store an `OnlineStoreConfig` names; `path`: the SQLite file (the config's, or
    `Config.online_store_path()`)."""
    if cfg.kind == "redis":
        from peppercorn.online_store.redis import RedisStore

        return RedisStore(cfg.redis_url, cfg)
    from peppercorn.online_store.sqlite import SqliteStore

    return SqliteStore(path or cfg.path, cfg)
