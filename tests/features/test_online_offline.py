"""Training-serving consistency: one event log replayed offline (the features stage's Spark
transforms) and online (a real SQLite store read by `peppercorn.online_features`) gives the
same history and seen items, value by value.

The log is made to hit the rules' edges: impressions (exposures, never positives nor seen),
watches around the 30 s threshold and without a duration, one (user, item) pair repeated at
other times (one positive at its latest time), exact time ties between items of one user
(the larger item index is newer), users with more positives than L (the newest L kept), and
users with impressions only. Item indices are a shuffled mapping of the raw ids, so the tie
rule is checked on indices, not on the raw ids' order.
"""

from __future__ import annotations

import datetime as dt
import random

import pytest

from features.history import user_history
from features.labels import interactions, positives
from peppercorn.config import LabelConfig, OnlineStoreConfig
from peppercorn.online_features import history, seen_items
from peppercorn.online_store import Event, open_store

L = 6
T0 = dt.datetime(2026, 10, 1, tzinfo=dt.timezone.utc).timestamp()
USERS = [f"u{u:02d}" for u in range(30)]
ITEMS = [f"r{i:03d}" for i in range(40)]
LABELS = [
    LabelConfig(kind="any"),
    LabelConfig(kind="watch", watch_seconds=30.0),
    # Every watch with a duration counts; a watch without one must not count online either.
    LabelConfig(kind="watch", watch_seconds=0.0),
]
# Durations on both sides of the threshold, on it, and none.
WATCH_SECONDS = [0.0, 5.0, 29.0, 29.999, 30.0, 30.001, 31.0, 120.0, None]
# The truncated store keeps this many of each user's newest events.
KEPT = 8
# Offline, the truncated log's users are shifted by TRUNCATED, and each label's by LABEL_SHIFT
# times its number, so one Spark job computes every case.
TRUNCATED, LABEL_SHIFT = 1000, 10_000


def _mapping(ids: list[str], seed: int) -> dict[str, int]:
    """raw id -> index 1..n, shuffled: index order is not the raw ids' order."""
    order = list(range(1, len(ids) + 1))
    random.Random(seed).shuffle(order)
    return dict(zip(ids, order, strict=True))


USER_IDX, ITEM_IDX = _mapping(USERS, 1), _mapping(ITEMS, 2)


def _label_id(label: LabelConfig) -> str:
    return label.kind if label.kind == "any" else f"{label.kind}-{label.watch_seconds:g}s"


def _log() -> list[Event]:
    """A few hundred events over 30 users and 40 items, within two days after T0."""
    rng = random.Random(17)
    events: list[Event] = []

    def add(user: str, item: str, kind: str, ts: float, watch: float | None = None) -> None:
        if kind == "watch" and watch is None:
            watch = rng.choice(WATCH_SECONDS)
        gift = float(rng.randint(1, 50)) if kind == "gift" else None
        events.append(Event(f"e{len(events):05d}", user, item, kind, ts, watch, gift))

    kinds = ["impression"] * 4 + ["click"] * 2 + ["watch"] * 4 + ["gift", "follow"]
    for n, user in enumerate(USERS):
        # Few items per user (repeats); whole seconds mostly, some with milliseconds.
        pool = rng.sample(ITEMS, rng.randint(3, 15))
        count = 2 if n % 10 == 9 else rng.randint(5, 20)
        for _ in range(count):
            ts = T0 + rng.randint(0, 2 * 86400) + rng.choice([0.0, 0.0, 0.25, 0.125])
            kind = "impression" if n % 10 == 9 else rng.choice(kinds)
            add(user, rng.choice(pool), kind, ts)
        if n % 3 == 0 and count > 2:
            # Ties: several items at one instant, each positive under every label.
            ts = T0 + rng.randint(0, 2 * 86400)
            for item in rng.sample(pool, min(3, len(pool))):
                add(user, item, "watch", ts, watch=60.0)
    return events


EVENTS = _log()


def _offline(spark, events: list[Event], user_offset: int = 0):
    """The features stage's frame for `events`: encoded indices, `ts` a timestamp."""
    from pyspark.sql import functions as F

    rows = [
        (USER_IDX[e.user_id] + user_offset, ITEM_IDX[e.item_id], e.event,
         round(e.ts * 1e6), None, e.watch_seconds, e.gift_value)
        for e in events
    ]  # fmt: skip
    schema = ("user_idx int, item_idx int, event string, ts_us long, rating double, "
              "watch_seconds double, gift_value double")  # fmt: skip
    df = spark.createDataFrame(rows, schema)
    return df.withColumn("ts", F.timestamp_micros("ts_us")).drop("ts_us")


def _offline_histories(events_df) -> dict[tuple[int, int], list[tuple[int, int]]]:
    """(label number, user_idx) -> [(item_idx, ts in microseconds)], newest first, by the
    Spark stage, for every label in one job: the stage works per user, so each label's
    positives go in under users shifted by LABEL_SHIFT times the label's number."""
    from pyspark.sql import functions as F

    pos = None
    for n, label in enumerate(LABELS):
        shifted = positives(events_df, label).withColumn(
            "user_idx", F.col("user_idx") + n * LABEL_SHIFT
        )
        pos = shifted if pos is None else pos.unionByName(shifted)
    hist = user_history(pos, L).select(
        "user_idx", "item_idx", F.transform("ts", F.unix_micros).alias("ts_us")
    )
    return {
        divmod(r["user_idx"], LABEL_SHIFT): list(zip(r["item_idx"], r["ts_us"], strict=True))
        for r in hist.collect()
    }


def _offline_seen(events_df) -> dict[int, set[int]]:
    """user_idx -> the item indices of the stage's `seen` table (distinct interactions)."""
    seen: dict[int, set[int]] = {}
    for r in interactions(events_df).select("user_idx", "item_idx").distinct().collect():
        seen.setdefault(r["user_idx"], set()).add(r["item_idx"])
    return seen


def _online(per_user: dict[str, list[Event]], label: LabelConfig):
    """user_idx -> [(item_idx, ts in microseconds)] by `online_features.history`."""
    out = {}
    for user, events in per_user.items():
        got = history(events, label.model_dump(), L, lambda raw: ITEM_IDX.get(raw, 0))
        if got:  # the stage writes no row for a user without positives
            out[USER_IDX[user]] = [(i, round(ts * 1e6)) for i, ts in got]
    return out


def _online_seen(per_user: dict[str, list[Event]]) -> dict[int, set[int]]:
    out = {USER_IDX[u]: {ITEM_IDX[i] for i in seen_items(ev)} for u, ev in per_user.items()}
    return {u: s for u, s in out.items() if s}


def _newest(events: list[Event], kept: int) -> list[Event]:
    """Each user's `kept` newest events by (ts, event_id): what the store promises to keep."""
    by_user: dict[str, list[Event]] = {}
    for e in events:
        by_user.setdefault(e.user_id, []).append(e)
    return [e for evs in by_user.values() for e in sorted(evs, key=Event.key, reverse=True)[:kept]]


def _replay(tmp_path, name: str, events_per_user: int) -> dict[str, list[Event]]:
    """Append the log to a fresh SQLite store (twice: replays change nothing); read it back."""
    now = max(e.ts for e in EVENTS) + 60.0
    cfg = OnlineStoreConfig(events_per_user=events_per_user, ttl_s=30 * 86400.0)
    store = open_store(cfg, str(tmp_path / f"{name}.sqlite"))
    try:
        assert store.append(EVENTS, now) == len(EVENTS)
        assert store.append(EVENTS[::3], now) == 0
        return store.recent(USERS, now)
    finally:
        store.close()


@pytest.fixture(scope="module")
def offline(spark):
    """{truncated: ({label number: history}, seen)}: the stage's outputs for the whole log
    and, under users shifted by TRUNCATED, for each user's KEPT newest events."""
    full = _offline(spark, EVENTS).unionByName(_offline(spark, _newest(EVENTS, KEPT), TRUNCATED))
    full = full.cache()
    try:
        hist, seen = _offline_histories(full), _offline_seen(full)
    finally:
        full.unpersist()
    out = {}
    for truncated in (False, True):
        mine = range(TRUNCATED, 2 * TRUNCATED) if truncated else range(TRUNCATED)
        by_label = {n: {u % TRUNCATED: h for (m, u), h in hist.items() if m == n and u in mine}
                    for n in range(len(LABELS))}  # fmt: skip
        out[truncated] = (by_label, {u % TRUNCATED: s for u, s in seen.items() if u in mine})
    return out


def test_the_log_reaches_the_rules_edges():
    per_user: dict[str, list[Event]] = {}
    for e in EVENTS:
        per_user.setdefault(e.user_id, []).append(e)
    assert 300 <= len(EVENTS) <= 600 and set(per_user) == set(USERS)
    assert {e.event for e in EVENTS} == {"impression", "click", "watch", "gift", "follow"}
    watched = {e.watch_seconds for e in EVENTS if e.event == "watch"}
    assert {29.999, 30.0, 30.001, None} <= watched
    pairs = [(e.user_id, e.item_id) for e in EVENTS if e.event != "impression"]
    assert len(pairs) > len(set(pairs))  # repeated (user, item) pairs
    stamps = [(e.user_id, e.ts) for e in EVENTS]
    assert len(stamps) > len(set(stamps))  # ties within a user
    many = [u for u, ev in per_user.items() if len({e.item_id for e in ev}) > L]
    assert len(many) >= 5
    assert any(all(e.event == "impression" for e in ev) for ev in per_user.values())


@pytest.mark.parametrize("n", range(len(LABELS)), ids=[_label_id(lb) for lb in LABELS])
def test_history_and_seen_online_equal_offline(spark, offline, tmp_path, n):
    """The store keeps every event: the online history and seen set equal the stage's."""
    label, per_user = LABELS[n], _replay(tmp_path, "full", events_per_user=1000)
    assert sum(len(v) for v in per_user.values()) == len(EVENTS)
    hist, seen = offline[False]
    want = hist[n]
    # The cap and the tie rule are both exercised: full rows, and equal times inside a row.
    assert want and any(len(h) == L for h in want.values())
    assert any(a[1] == b[1] for h in want.values() for a, b in zip(h, h[1:], strict=False))
    assert _online(per_user, label) == want
    assert _online_seen(per_user) == seen


@pytest.mark.parametrize("n", range(len(LABELS)), ids=[_label_id(lb) for lb in LABELS])
def test_a_store_keeping_the_newest_events_gives_their_offline_history(spark, offline, tmp_path, n):
    """With `events_per_user` below a user's count, the store keeps the newest events by
    (ts, event_id), and what holds is: the online history equals the stage's history over
    those newest events only (older positives are the exported history's part, which
    `merged_history` appends), and so does the seen set."""
    label, per_user = LABELS[n], _replay(tmp_path, "kept", events_per_user=KEPT)
    newest = _newest(EVENTS, KEPT)
    assert {u: [e.event_id for e in ev] for u, ev in per_user.items()} == {
        u: [e.event_id for e in sorted(newest, key=Event.key, reverse=True) if e.user_id == u]
        for u in USERS
    }
    hist, seen = offline[True]
    assert _online(per_user, label) == hist[n]
    assert _online_seen(per_user) == seen
    # The case bites: some user's history over the kept events is not the full log's.
    assert _online(per_user, label) != offline[False][0][n]
