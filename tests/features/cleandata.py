"""Small clean-data fixtures in the layouts of docs/data-contracts.md §2, one per input kind.

Rows are generated with a seeded numpy RNG (so the tests do not depend on the ETL
stage) and kept as pandas frames, which the oracles in the tests read directly.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from peppercorn.config import join_uri

EVENT_SCHEMA = (
    "user_id string, item_id string, event string, ts timestamp, rating double, "
    "watch_seconds double, gift_value double"
)
ITEM_SCHEMA = (
    "item_id string, title string, categories array<string>, tags array<string>, created date"
)
START = dt.datetime(2026, 10, 1, tzinfo=dt.timezone.utc)


@dataclass
class Clean:
    events: pd.DataFrame
    users: pd.DataFrame
    items: pd.DataFrame
    ncf_test: pd.DataFrame | None = None


def synthetic(n_users: int = 14, n_items: int = 18, n_events: int = 420, seed: int = 7) -> Clean:
    """Live-streaming shape: impressions, clicks, watches (watch_seconds), gifts, follows."""
    rng = np.random.default_rng(seed)
    users = pd.DataFrame(
        {
            "user_id": [f"u{i:06d}" for i in range(n_users)],
            "age_band": rng.choice(["18-24", "25-34", "35-44"], n_users),
            "gender": rng.choice(["f", "m"], n_users),
            "city_tier": rng.choice(["1", "2", "3"], n_users),
            "device": rng.choice(["ios", "android", "web"], n_users),
        }
    )
    cats = ["gaming", "music", "chat", "outdoor"]
    tag_pool = ["fps", "chill", "talk", "live", "pro"]
    items = pd.DataFrame(
        {
            "item_id": [f"r{i:05d}" for i in range(n_items)],
            "title": [None] * n_items,
            "categories": [[cats[i % len(cats)]] for i in range(n_items)],
            "tags": [
                list(rng.choice(tag_pool, int(rng.integers(0, 3)), replace=False))
                for _ in range(n_items)
            ],
            "created": [
                (START - dt.timedelta(days=int(d))).date() for d in rng.integers(1, 90, n_items)
            ],
        }
    )
    kinds = rng.choice(
        ["impression", "click", "watch", "gift", "follow"], n_events, p=[0.5, 0.2, 0.2, 0.05, 0.05]
    )
    ts = [START + dt.timedelta(seconds=int(s)) for s in rng.integers(0, 30 * 86400, n_events)]
    events = pd.DataFrame(
        {
            "user_id": rng.choice(users["user_id"], n_events),
            "item_id": rng.choice(items["item_id"], n_events),
            "event": kinds,
            "ts": ts,
            "rating": [None] * n_events,
            "watch_seconds": [float(rng.integers(1, 600)) if k == "watch" else None for k in kinds],
            "gift_value": [float(rng.integers(1, 50)) if k == "gift" else None for k in kinds],
        }
    )
    return Clean(events, users, items)


def _ratings(rng, user_ids, item_ids, per_user: tuple[int, int], days: int) -> pd.DataFrame:
    rows = []
    for user in user_ids:
        n = int(rng.integers(*per_user))
        for item in rng.choice(item_ids, n, replace=False):
            rows.append(
                {
                    "user_id": str(user),
                    "item_id": str(item),
                    "event": "rating",
                    "ts": START + dt.timedelta(seconds=int(rng.integers(0, days * 86400))),
                    "rating": float(rng.integers(1, 6)),
                    "watch_seconds": None,
                    "gift_value": None,
                }
            )
    return pd.DataFrame(rows)


def movielens_100k(seed: int = 11) -> Clean:
    """Ratings with int ids, demographics, several genres per movie, no tags."""
    rng = np.random.default_rng(seed)
    user_ids, item_ids = list(range(1, 13)), list(range(1, 21))
    genres = ["Action", "Comedy", "Drama", "Sci-Fi", "Romance"]
    users = pd.DataFrame(
        {
            "user_id": [str(u) for u in user_ids],
            "age_band": rng.choice(["<18", "18-24", "25-34"], len(user_ids)),
            "gender": rng.choice(["F", "M"], len(user_ids)),
            "occupation": rng.choice(["student", "engineer", "artist", "none"], len(user_ids)),
            "zip_prefix": rng.choice(["0", "1", "9"], len(user_ids)),
        }
    )
    items = pd.DataFrame(
        {
            "item_id": [str(i) for i in item_ids],
            "title": [f"Movie {i}" for i in item_ids],
            "categories": [
                list(rng.choice(genres, int(rng.integers(0, 3)), replace=False)) for _ in item_ids
            ],
            "tags": [[] for _ in item_ids],
            "created": [None if i % 7 == 0 else dt.date(1990 + i, 1, 1) for i in item_ids],
        }
    )
    # user "12" has two ratings only: it stays wholly in train.
    events = _ratings(rng, user_ids[:-1], item_ids, (3, 12), 60)
    events = pd.concat([events, _ratings(rng, user_ids[-1:], item_ids, (2, 3), 60)])
    return Clean(events.reset_index(drop=True), users, items)


def movielens_csv(seed: int = 13) -> Clean:
    """Ratings with genres and free-text tags, no demographics."""
    rng = np.random.default_rng(seed)
    user_ids, item_ids = list(range(1, 11)), [1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233]
    users = pd.DataFrame({"user_id": [str(u) for u in user_ids]})
    items = pd.DataFrame(
        {
            "item_id": [str(i) for i in item_ids],
            "title": [None] * len(item_ids),
            "categories": [["Drama"] if i % 2 else ["Comedy", "Drama"] for i in item_ids],
            "tags": [['dark "noir"', "classic"] if i % 3 == 0 else [] for i in item_ids],
            "created": [None] * len(item_ids),
        }
    )
    return Clean(_ratings(rng, user_ids, item_ids, (3, 9), 400), users, items)


def ncf(seed: int = 17, n_users: int = 8, n_items: int = 30, k: int = 5) -> Clean:
    """Dense 0-based int ids, test pairs given with their own negatives."""
    rng = np.random.default_rng(seed)
    events = _ratings(rng, range(n_users), range(n_items), (4, 9), 100)
    events = events.sort_values(
        ["user_id", "ts", "item_id"], key=lambda s: s if s.name == "ts" else s.astype(int)
    )
    test_rows = events.groupby("user_id").tail(1)
    negatives = []
    for _, row in test_rows.iterrows():
        rated = set(events.loc[events.user_id == row.user_id, "item_id"].astype(int))
        pool = [i for i in range(n_items) if i not in rated]
        negatives.append([str(i) for i in rng.choice(pool, k, replace=False)])
    test = pd.DataFrame(
        {
            "user_id": test_rows.user_id.values,
            "item_id": test_rows.item_id.values,
            "negatives": negatives,
        }
    )
    empty_users = pd.DataFrame({"user_id": [str(u) for u in range(n_users)]})
    items = pd.DataFrame(
        {
            "item_id": [str(i) for i in range(n_items)],
            "title": None,
            "categories": [[] for _ in range(n_items)],
            "tags": [[] for _ in range(n_items)],
            "created": None,
        }
    )
    return Clean(events.reset_index(drop=True), empty_users, items, test)


def write_clean(spark, root: str, clean: Clean) -> None:
    """Write `clean` under `<root>/clean/` as the ETL stage would (events partitioned by dt)."""
    from pyspark.sql import functions as F

    base = join_uri(root, "clean")
    events = spark.createDataFrame(clean.events, EVENT_SCHEMA)
    events.withColumn("dt", F.date_format("ts", "yyyy-MM-dd")).write.partitionBy("dt").parquet(
        join_uri(base, "events")
    )
    user_schema = ", ".join(f"{c} string" for c in clean.users.columns)
    spark.createDataFrame(clean.users, user_schema).write.parquet(join_uri(base, "users"))
    spark.createDataFrame(clean.items, ITEM_SCHEMA).write.parquet(join_uri(base, "items"))
    if clean.ncf_test is not None:
        spark.createDataFrame(
            clean.ncf_test, "user_id string, item_id string, negatives array<string>"
        ).write.parquet(join_uri(base, "ncf", "test"))
