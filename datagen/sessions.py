"""Simulate the clean event rows of one block: sessions, slates, clicks and what follows.

A session is one user opening the app at some moment of the window: they are shown a slate
of rooms (exposure follows popularity and a category feed, not preference), click some of
them with the hidden model's probability, and each click is followed by a watch whose length
grows with affinity, and sometimes by a gift and a follow.  All vectorised numpy.

With a timeline (`datagen.live`), the slate holds rooms that exist at the session's start and,
for `live_share` of the impressions, are live then; a live room's watch ends when its window
does (the stream stops), so its click, watch, gift and follow stay inside the window.
"""

from __future__ import annotations

import numpy as np

from datagen.live import DAY, HOUR
from datagen.world import CLICK_NOISE, World

__all__ = ["EVENT_NAMES", "simulate_rows"]

EVENT_NAMES = ("impression", "click", "watch", "gift", "follow")
IMPRESSION, CLICK, WATCH, GIFT, FOLLOW = range(5)

_SLATE_MIN, _SLATE_MAX = 4, 12
_BROWSE_SHARE = 0.6  # share of impressions from the category feed; the rest by popularity
_GIFT_VALUES = np.array([1.0, 5.0, 10.0, 50.0, 100.0, 500.0])
_GIFT_P = np.array([0.40, 0.25, 0.15, 0.10, 0.07, 0.03])
_ALMOST_ONE = 1.0 - 1e-9
# Rows of a session sort by session * _SLOTS + slot: impressions first, then per click
# its click, watch, gift and follow.
_SLOTS = 16 + 4 * _SLATE_MAX


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _draw(cum: np.ndarray, u: np.ndarray) -> np.ndarray:
    x = np.minimum(u, _ALMOST_ONE)
    if len(cum) < 4096:
        return np.searchsorted(cum, x, side="right")
    # Sorted probes into a large table (a million users' activity) follow each other in
    # memory: several times faster than random ones, and the same answers.
    order = np.argsort(x, kind="stable")
    out = np.empty(len(x), dtype=np.int64)
    out[order] = np.searchsorted(cum, x[order], side="right")
    return out


def _slate_items(world: World, rng: np.random.Generator, users: np.ndarray) -> np.ndarray:
    n = len(users)
    items = _draw(world.popularity_cum, rng.random(n))
    browse = np.flatnonzero(rng.random(n) < _BROWSE_SHARE)
    if len(browse):
        cats = _feed_categories(world, rng, users[browse])
        # Not `_draw`: its clamp below 1.0 would pin every draw to the first category's segment.
        offset = cats + rng.random(len(browse)) * _ALMOST_ONE
        pos = np.searchsorted(world.by_category_cum, offset, side="right")
        items[browse] = world.by_category[pos]
    return items


def _feed_categories(world: World, rng: np.random.Generator, users: np.ndarray) -> np.ndarray:
    cum = world.browse_cum[users]
    return (cum < np.minimum(rng.random(len(users)), _ALMOST_ONE)[:, None]).sum(axis=1)


def _timeline_items(
    world: World, rng: np.random.Generator, users: np.ndarray, at: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Rooms shown at relative second `at` and the end of their live window (-1: not live).

    A live impression is drawn from the rooms live in that hour, of the wanted category, else
    of any (a small world may have none of it live); if none is live, or the impression is not
    a live one, from the rooms that existed when the day began, of that category, then of
    any. The last always has a room.
    """
    tl = world.timeline
    n = len(users)
    cats = np.full(n, -1)
    browse = np.flatnonzero(rng.random(n) < _BROWSE_SHARE)
    cats[browse] = _feed_categories(world, rng, users[browse])
    live = rng.random(n) < tl.live_share
    u = rng.random(n)
    item, end = np.full(n, -1), np.full(n, -1)
    anything = np.full(n, -1)
    steps = [(tl.existing, at // DAY, cats), (tl.existing, at // DAY, anything)]
    if tl.live is not None:
        steps[:0] = [(tl.live, at // HOUR, cats), (tl.live, at // HOUR, anything)]
    for pool, keys, want in steps:
        todo = np.flatnonzero((item < 0) & (live if pool is tl.live else True))
        if not len(todo):
            continue
        pos = pool.draw(keys[todo], want[todo], u[todo])
        hit = pos >= 0
        item[todo[hit]] = pool.room[pos[hit]]
        end[todo[hit]] = pool.end[pos[hit]]
    return item, end


def _sessions(world: World, rng: np.random.Generator, n_sessions: int) -> dict[str, np.ndarray]:
    user = _draw(world.activity_cum, rng.random(n_sessions))
    day = rng.integers(0, world.days, n_sessions)
    hour = _draw(world.hourly_cum, rng.random(n_sessions))
    at = day * 86400 + hour * 3600 + rng.integers(0, 3600, n_sessions)
    t0 = world.start_epoch + at
    size = rng.integers(_SLATE_MIN, _SLATE_MAX + 1, n_sessions)

    sess = np.repeat(np.arange(n_sessions), size)
    pos = np.arange(len(sess)) - np.repeat(np.cumsum(size) - size, size)
    imp_user = user[sess]
    if world.timeline is None:
        imp_item, imp_end = _slate_items(world, rng, imp_user), None
    else:
        imp_item, imp_end = _timeline_items(world, rng, imp_user, at[sess])
    imp_ts = t0[sess] + 2 * pos + rng.integers(0, 2, len(sess))
    logit = world.scores(imp_user, imp_item)
    clicked = rng.random(len(sess)) < _sigmoid(logit + rng.normal(0.0, CLICK_NOISE, len(sess)))

    c = np.flatnonzero(clicked)
    n_c = len(c)
    click_ts = imp_ts[c] + rng.integers(2, 40, n_c)
    affinity = logit[c]
    seconds = np.exp(3.0 + 0.5 * affinity + rng.normal(0.0, 0.7, n_c))
    seconds = np.round(np.clip(seconds, 1.0, 14400.0), 1)
    if imp_end is not None:
        # Nobody watches a stream past its end: a live room's watch stops with its window.
        live = np.flatnonzero(imp_end[c] >= 0)
        left = world.start_epoch + imp_end[c][live] - click_ts[live]
        seconds[live] = np.minimum(seconds[live], np.maximum(left, 1)).astype(np.float64)
    gift = rng.random(n_c) < _sigmoid(affinity - 4.0)
    follow = rng.random(n_c) < _sigmoid(affinity - 3.0)
    gift_value = _GIFT_VALUES[_draw(np.cumsum(_GIFT_P), rng.random(n_c))]
    during = (rng.random(n_c) * seconds).astype(np.int64) + 1
    follow_at = (rng.random(n_c) * seconds).astype(np.int64) + 1

    base = sess[c] * _SLOTS + 16 + 4 * pos[c]
    g, f = np.flatnonzero(gift), np.flatnonzero(follow)
    parts = [
        # (sort key, user, item, event, ts, watch_seconds, gift_value)
        (sess * _SLOTS + pos, imp_user, imp_item, IMPRESSION, imp_ts, None, None),
        (base, imp_user[c], imp_item[c], CLICK, click_ts, None, None),
        (base + 1, imp_user[c], imp_item[c], WATCH, click_ts + np.ceil(seconds).astype(np.int64),
         seconds, None),
        (base[g] + 2, imp_user[c][g], imp_item[c][g], GIFT, click_ts[g] + during[g], None,
         gift_value[g]),
        (base[f] + 3, imp_user[c][f], imp_item[c][f], FOLLOW, click_ts[f] + follow_at[f], None,
         None),
    ]  # fmt: skip
    key = np.concatenate([p[0] for p in parts])
    order = np.argsort(key, kind="stable")

    def column(i: int) -> np.ndarray:
        pieces = []
        for p in parts:
            value = p[i]
            if value is None or np.isscalar(value):
                value = np.full(len(p[0]), np.nan if value is None else value)
            pieces.append(value)
        return np.concatenate(pieces)[order]

    return {
        "user": column(1).astype(np.int64),
        "item": column(2).astype(np.int64),
        "event": column(3).astype(np.int8),
        "ts": column(4).astype(np.int64),
        "watch_seconds": column(5),
        "gift_value": column(6),
    }


def simulate_rows(world: World, rng: np.random.Generator, n_rows: int) -> dict[str, np.ndarray]:
    """Exactly `n_rows` clean event rows (the last session cut where the block ends)."""
    chunks, total = [], 0
    while total < n_rows:
        # About ten rows per session; ask for a little more than needed, repeat if short.
        chunk = _sessions(world, rng, max(8, (n_rows - total) // 8 + 8))
        chunks.append(chunk)
        total += len(chunk["user"])
    return {k: np.concatenate([c[k] for c in chunks])[:n_rows] for k in chunks[0]}
