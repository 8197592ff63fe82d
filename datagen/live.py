"""Rooms over time: when each room exists and when it is live.

A live-streaming platform does not show every room at every moment: rooms are created
throughout the period (`synthetic.rooms_at_start` of them exist before it starts) and a room
is live in a few windows (on some days, for a few hours, mostly in the evening when its
audience is). `synthetic.live_share` of the impressions show a room that is live at that
moment; the rest show any room that already existed when the day began (replays, room pages).
No room is ever shown before its creation: a window starts at or after its room's creation,
and "existing" means created by the start of the day.

Both choices are drawn, like the static world, by popularity or by the user's category feed,
from a `Pool`: every (time key, category, room) that may be shown, popularity-weighted, with
a key per hour of the period (live rooms) or per day (existing rooms). Memory is about
rooms x days x (live hours a day + 1) entries, built with vectorised numpy in about a second
for 100,000 rooms over 30 days.

Times are seconds since start_date 00:00 UTC ("relative seconds") throughout.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from peppercorn.config import SyntheticConfig

__all__ = ["DAY", "HOUR", "Pool", "Timeline", "build_timeline", "room_birth"]

HOUR, DAY = 3600, 86400
_MAX_WINDOW_HOURS = 22  # a window ends before the room's next day's window can start
_ALMOST_ONE = 1.0 - 1e-9


@dataclass(frozen=True)
class Pool:
    """Rooms that may be shown per (time key, category), entries sorted by (key, category)."""

    room: np.ndarray  # int32 room index per entry
    end: np.ndarray  # int32 relative second the entry's live window ends (existing: -1)
    cum: np.ndarray  # float64, len(room) + 1: popularity of all entries before each one
    offsets: np.ndarray  # int64, n_keys * n_categories + 1: where each segment starts
    n_categories: int

    def draw(self, keys: np.ndarray, cats: np.ndarray, u: np.ndarray) -> np.ndarray:
        """An entry per row, popularity-weighted, from its key's segment of category `cats`
        (-1: any category); -1 where that segment is empty."""
        c = self.n_categories
        any_cat = cats < 0
        lo = self.offsets[np.where(any_cat, keys * c, keys * c + cats)]
        hi = self.offsets[np.where(any_cat, (keys + 1) * c, keys * c + cats + 1)]
        a, b = self.cum[lo], self.cum[hi]
        target = a + np.minimum(u, _ALMOST_ONE) * (b - a)
        # Searched in sorted order: numpy's binary search then starts where the previous one
        # ended, about four times faster than random probes into millions of entries.
        order = np.argsort(target, kind="stable")
        pos = np.empty(len(target), dtype=np.int64)
        pos[order] = np.searchsorted(self.cum, target[order], side="right") - 1
        # Rounding can land a hair outside the segment; the segment is what counts.
        pos = np.clip(pos, lo, np.maximum(hi - 1, lo))
        return np.where(hi > lo, pos, -1)


def _pool(
    room: np.ndarray, key: np.ndarray, end: np.ndarray, n_keys: int, world_rooms: tuple
) -> Pool:
    category, popularity, n_c = world_rooms
    seg = key.astype(np.int64) * n_c + category[room]
    order = np.argsort(seg, kind="stable")
    room, seg = room[order], seg[order]
    cum = np.concatenate([[0.0], np.cumsum(popularity[room])])
    offsets = np.searchsorted(seg, np.arange(n_keys * n_c + 1), side="left")
    return Pool(
        room=room.astype(np.int32),
        end=end[order].astype(np.int32),
        cum=cum,
        offsets=offsets.astype(np.int64),
        n_categories=n_c,
    )


@dataclass(frozen=True)
class Timeline:
    """Live windows of every room and the pools impressions are drawn from."""

    live_share: float
    window_room: np.ndarray  # one entry per live window, sorted by room then start
    window_start: np.ndarray  # relative seconds, >= the room's creation
    window_end: np.ndarray
    live: Pool | None  # keyed by hour of the period; None when live_share is 0
    existing: Pool  # keyed by day of the period


def room_birth(cfg: SyntheticConfig, old_days: np.ndarray, rng: np.random.Generator):
    """Creation time (relative seconds) of every room.

    The first `rooms_at_start` share were created `old_days + 1` days before the start (at
    midnight, so strictly before it); the others get increasing ids in creation order, like a
    platform's sequential room ids, spread so that every day of the period has new rooms (when
    there are at least `days` of them).
    """
    n_i = len(old_days)
    n_start = min(n_i, max(1, round(cfg.rooms_at_start * n_i)))  # never an empty platform
    created = -(old_days.astype(np.int64) + 1) * DAY
    n_new = n_i - n_start
    day = rng.permutation(np.arange(n_new) % cfg.days)
    born = day * DAY + rng.integers(0, DAY, n_new)
    created[n_start:] = np.sort(born)
    return created


def build_timeline(
    cfg: SyntheticConfig,
    created: np.ndarray,
    category: np.ndarray,
    popularity: np.ndarray,
    hourly_cum: np.ndarray,
    rng: np.random.Generator,
) -> Timeline:
    """Live windows and pools for rooms created at `created` (relative seconds)."""
    n_i, n_d, n_c = len(created), cfg.days, cfg.categories
    world_rooms = (category, popularity, n_c)

    # Existing rooms: created by the time the day began (ceil: midnight itself counts).
    first = np.clip(-(-created // DAY), 0, n_d)
    count = n_d - first
    room = np.repeat(np.arange(n_i), count)
    day = np.arange(len(room)) - np.repeat(np.cumsum(count) - count, count) + first[room]
    existing = _pool(room, day, np.full(len(room), -1), n_d, world_rooms)

    # Live windows: each room has a usual start hour (drawn like the audience's activity, so
    # evenings are busy), a usual length and a propensity to go live on a given day.
    usual = np.searchsorted(hourly_cum, np.minimum(rng.random(n_i), _ALMOST_ONE), side="right")
    length = np.minimum(rng.integers(1, 2 * cfg.live_hours, n_i), _MAX_WINDOW_HOURS)
    often = np.clip(cfg.live_days * rng.uniform(0.5, 1.5, n_i), 0.0, 1.0)
    goes_live = rng.random((n_i, n_d)) < often[:, None]
    hour = np.clip(usual[:, None] + rng.integers(-1, 2, (n_i, n_d)), 0, 23)
    start = (np.arange(n_d) * 24 + hour) * HOUR
    w_room, w_day = np.nonzero(goes_live & (start >= created[:, None]))
    w_start = start[w_room, w_day]
    w_end = w_start + length[w_room] * HOUR

    live = None
    if cfg.live_share > 0:
        # One pool entry per (window, hour it covers) inside the period.
        hours = length[w_room]
        entry = np.repeat(np.arange(len(w_room)), hours)
        slot = w_start[entry] // HOUR + (
            np.arange(len(entry)) - np.repeat(np.cumsum(hours) - hours, hours)
        )
        keep = slot < n_d * 24
        entry, slot = entry[keep], slot[keep]
        live = _pool(w_room[entry], slot, w_end[entry], n_d * 24, world_rooms)
    return Timeline(
        live_share=cfg.live_share,
        window_room=w_room,
        window_start=w_start,
        window_end=w_end,
        live=live,
        existing=existing,
    )
