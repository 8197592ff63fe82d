"""The live-streaming platform's world over time (configs/platform.yaml's shape, small):
rooms created throughout the period, live windows, the hidden preference still learnable.

Judged on the written files: the raw items' `created_at` (the contract's column) and the
hidden model's `_truth/items.created` and `_truth/live` windows, with pandas/numpy oracles.
"""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from datagen.live import _pool
from tests.datagen.test_generate import read_lines, validate


@pytest.fixture(scope="module")
def events(spark, platform_run) -> pd.DataFrame:
    """The platform's well-formed events, `ts` as UTC timestamps."""
    _, raw, _ = platform_run
    valid, _ = validate(spark, raw, "jsonl")
    frame = pd.DataFrame(valid)
    return frame.assign(ts=pd.to_datetime(frame.ts, utc=True))


@pytest.fixture(scope="module")
def items(spark, platform_run) -> pd.DataFrame:
    _, raw, _ = platform_run
    frame = pd.DataFrame([json.loads(x) for x in read_lines(spark, raw / "items")])
    truth = pd.read_parquet(raw / "_truth" / "items")[["item_id", "created"]]
    frame = frame.merge(truth, on="item_id", validate="one_to_one")
    return frame.assign(created=pd.to_datetime(frame.created, utc=True))


def test_no_event_before_its_room_was_created(platform_run, events, items):
    cfg, _, _ = platform_run
    # The hidden creation instant falls on the contract's created_at day.
    assert (items.created.dt.strftime("%Y-%m-%d") == items.created_at).all()
    joined = events.merge(items[["item_id", "created_at", "created"]], on="item_id")
    assert len(joined) == len(events)
    assert (joined.ts >= joined.created).all()
    assert (joined.ts.dt.strftime("%Y-%m-%d") >= joined.created_at).all()
    start = pd.Timestamp(cfg.dataset.synthetic.start_date, tz="UTC")
    # New rooms are not a side show: rooms created during the period get a fair share.
    new = joined.created >= start
    assert 0.2 < new.mean() < 0.8, new.mean()


def test_rooms_are_created_on_every_day_of_the_period(platform_run, items):
    syn = platform_run[0].dataset.synthetic
    days = [(syn.start_date + dt.timedelta(days=k)).isoformat() for k in range(syn.days)]
    created = items.created_at
    assert set(created[created >= days[0]]) == set(days)
    assert (created < days[0]).sum() == round(syn.rooms_at_start * syn.items)  # 200 of 500
    per_day = created[created >= days[0]].value_counts()
    assert per_day.min() >= 300 // 30 - 1 and per_day.max() <= 300 // 30 + 1  # spread evenly


def test_most_events_fall_inside_their_rooms_live_windows(platform_run, events, items):
    _, raw, _ = platform_run
    live = pd.read_parquet(raw / "_truth" / "live")
    live = live.assign(
        start=pd.to_datetime(live.start, utc=True), end=pd.to_datetime(live.end, utc=True)
    )
    # Windows are a few hours, never before the room exists and never overlapping.
    hours = (live.end - live.start).dt.total_seconds() / 3600
    assert hours.between(1, 22).all() and 2.5 < hours.mean() < 3.5
    windows = live.merge(items[["item_id", "created"]], on="item_id")
    assert (windows.start >= windows.created).all()
    windows = windows.sort_values(["item_id", "start"])
    same = windows.item_id.to_numpy()[1:] == windows.item_id.to_numpy()[:-1]
    assert (windows.start.to_numpy()[1:][same] >= windows.end.to_numpy()[:-1][same]).all()

    # For each event, its room's last window starting at or before it: inside if not ended.
    code = {item: k for k, item in enumerate(items.item_id)}
    big = np.int64(10**10)  # > any epoch second, so (room, second) sorts as one integer
    w_key = windows.item_id.map(code).to_numpy() * big + windows.start.astype("int64") // 10**9
    w_end = windows.end.astype("int64").to_numpy() // 10**9
    e_sec = events.ts.astype("int64").to_numpy() // 10**9
    e_key = events.item_id.map(code).to_numpy() * big + e_sec
    at = np.searchsorted(w_key.to_numpy(), e_key, side="right") - 1
    same_room = (at >= 0) & (w_key.to_numpy()[at] // big == e_key // big)
    inside = same_room & (e_sec < w_end[at])
    # live_share is 0.9; impressions of rooms that merely existed are sometimes live too.
    assert 0.85 <= inside.mean() <= 0.97, inside.mean()
    # Clicks lead to watches capped at the window's end: as live as the impressions.
    acted = (events.event != "impression").to_numpy()
    assert inside[acted].mean() >= 0.85, inside[acted].mean()


def _hit_rate(history: pd.DataFrame, held: pd.DataFrame, score_of) -> float:
    hits = [item in score_of(user) for user, item in zip(held.user_id, held.item_id, strict=True)]
    return float(np.mean(hits))


def test_preferred_categories_beat_global_popularity_on_held_out_events(events, items):
    acts = events[events.event != "impression"].sort_values(["ts", "event_id"])
    acts = acts.merge(items[["item_id", "category"]], on="item_id")
    counts = acts.groupby("user_id").size()
    acts = acts[acts.user_id.isin(counts[counts >= 3].index)].sort_values(["ts", "event_id"])
    held = acts.groupby("user_id").tail(1)
    train = acts.drop(held.index)
    assert held.user_id.nunique() > 500

    popular = train.item_id.value_counts()  # ties: pandas' order, the same for both
    top_global = set(popular.index[:10])
    room_category = items.set_index("item_id").category
    share = train.groupby(["user_id", "category"]).size().unstack(fill_value=0)
    share = share.div(share.sum(axis=1), axis=0)
    pop = popular.reindex(room_category.index, fill_value=0)

    def preferred(user):
        # The user's category shares times each room's popularity: their categories' hits.
        score = share.loc[user].reindex(room_category.to_numpy(), fill_value=0).to_numpy()
        return set(pop.index[np.argsort(-(score * pop.to_numpy()), kind="stable")[:10]])

    hr_pop = _hit_rate(train, held, lambda _: top_global)
    hr_pref = _hit_rate(train, held, preferred)
    assert hr_pref - hr_pop >= 0.1, (hr_pref, hr_pop)


def test_pool_draws_by_popularity_within_its_segment():
    # Hand-worked: key 0 has rooms 0 (cat 0, pop 0.1), 1 (cat 0, 0.3), 2 (cat 1, 0.6);
    # key 1 has only room 1. 1,000 evenly spaced draws give each room its exact share.
    category = np.array([0, 1, 1])[[0, 0, 1]]  # rooms 0 and 1 in category 0, room 2 in 1
    popularity = np.array([0.1, 0.3, 0.6])
    pool = _pool(
        np.array([2, 1, 0, 1]), np.array([0, 0, 0, 1]), np.full(4, -1), 2, (category, popularity, 2)
    )
    u = (np.arange(1000) + 0.5) / 1000

    def shares(key, cat):
        pos = pool.draw(np.full(1000, key), np.full(1000, cat), u)
        return np.bincount(pool.room[pos], minlength=3) / 1000 if (pos >= 0).all() else None

    np.testing.assert_allclose(shares(0, 0), [0.25, 0.75, 0.0], atol=0.002)
    np.testing.assert_allclose(shares(0, -1), [0.1, 0.3, 0.6], atol=0.002)
    np.testing.assert_allclose(shares(1, 0), [0.0, 1.0, 0.0])
    assert shares(1, 1) is None
    assert (pool.draw(np.array([1]), np.array([1]), np.array([0.5])) == -1).all()


def test_rooms_created_over_time_without_live_windows():
    # Without Spark: the simulation every task runs, on a world whose rooms are born during
    # the period but never live. Creation still bounds every event; the default world has no
    # timeline at all (the original generator, draw for draw).
    from datagen.sessions import simulate_rows
    from datagen.world import build_world
    from peppercorn.config import SyntheticConfig

    assert build_world(SyntheticConfig()).timeline is None
    syn = SyntheticConfig(users=300, items=90, days=10, rooms_at_start=0.5, seed=3)
    world = build_world(syn)
    assert world.timeline.live is None
    rows = simulate_rows(world, np.random.default_rng(0), 20_000)
    start = dt.datetime(2026, 10, 1, tzinfo=dt.timezone.utc).timestamp()
    # The contract's view: a room's created_at is start_date - created_day days, and no event
    # happens on an earlier day; the exact instant bounds it too.
    event_day = (rows["ts"] - start) // 86400
    assert (event_day >= -world.created_day[rows["item"]]).all()
    assert (rows["ts"] - start >= world.created[rows["item"]]).all()
    # 45 of the 90 rooms are born in the period, on every one of its 10 days (ids in order).
    born = -world.created_day[45:]
    assert (born >= 0).all() and sorted(set(born)) == list(range(10))
    assert (np.diff(world.created[45:]) >= 0).all() and (world.created[:45] < 0).all()
