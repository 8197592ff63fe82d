"""The hidden model's signal reaches the logs: exposure follows taste, clicks are learnable.

These run the event simulation that every Spark task runs (`simulate_rows`) on the default
config's world, without Spark, and judge it with independent numpy computations.
"""

from __future__ import annotations

import numpy as np
import pytest

import datagen.sessions as sessions
from datagen.world import build_world
from peppercorn.config import SyntheticConfig


@pytest.fixture(scope="module")
def world():
    return build_world(SyntheticConfig())


def test_category_feed_follows_each_users_propensity(world, monkeypatch):
    monkeypatch.setattr(sessions, "_BROWSE_SHARE", 1.0)
    rng = np.random.default_rng(3)
    for user in (0, 7, 123):
        items = sessions._slate_items(world, rng, np.full(40_000, user))
        shares = np.bincount(world.category[items], minlength=world.browse_cum.shape[1]) / 40_000
        propensity = np.diff(world.browse_cum[user], prepend=0.0)
        # 40k draws: a share's standard error is at most 0.0025.
        np.testing.assert_allclose(shares, propensity, atol=0.012)


def _leave_last_out(users, items, ts, n_users, n_items):
    """Each user's interacted items (first time each); the latest new one is held out."""
    key = users * n_items + items
    order = np.lexsort((ts, key))
    key, ts = key[order], ts[order]
    first = np.r_[True, key[1:] != key[:-1]]
    key, ts = key[first], ts[first]
    u, i = key // n_items, key % n_items
    order = np.lexsort((ts, u))
    u, i = u[order], i[order]
    last = np.r_[u[1:] != u[:-1], True]
    held = last & (np.bincount(u, minlength=n_users)[u] >= 3)
    train = np.zeros((n_users, n_items), np.float32)
    train[u[~held], i[~held]] = 1.0
    return train, u[held], i[held]


def _hit_rate(scores, train, users, held, rng, k=10):
    hits = 0
    for u, i in zip(users, held, strict=True):
        pool = np.flatnonzero((train[u] == 0) & (np.arange(train.shape[1]) != i))
        cand = np.r_[i, rng.choice(pool, 99, replace=False)]
        s = scores(u, cand)
        hits += int((s[1:] >= s[0]).sum() < k)  # ties count against the held-out item
    return hits / len(users)


def test_a_learned_model_clearly_beats_popularity_on_held_out_clicks(world):
    rows = sessions.simulate_rows(world, np.random.default_rng(5), 200_000)
    acted = rows["event"] != sessions.IMPRESSION
    train, users, held = _leave_last_out(
        rows["user"][acted], rows["item"][acted], rows["ts"][acted], world.n_users, world.n_items
    )
    # EASE (Steck, 2019): a closed-form item-item model, an independent learner.
    gram = train.T @ train + 50.0 * np.eye(world.n_items, dtype=np.float32)
    inverse = np.linalg.inv(gram)
    weights = -inverse / np.diag(inverse)
    np.fill_diagonal(weights, 0.0)
    learned = train @ weights
    counts = train.sum(axis=0)
    rng = np.random.default_rng(0)
    jitter = rng.random(world.n_items) * 1e-6  # popularity ties broken at random, not by luck
    hr_model = _hit_rate(lambda u, c: learned[u, c], train, users, held, np.random.default_rng(1))
    hr_pop = _hit_rate(
        lambda u, c: counts[c] + jitter[c], train, users, held, np.random.default_rng(1)
    )
    assert len(users) > 1000
    assert hr_model - hr_pop >= 0.15, (hr_model, hr_pop)
