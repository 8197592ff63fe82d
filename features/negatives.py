"""Seeded evaluation negatives: items a user never interacted with (NCF protocol).

Each held-out row gets its own numpy Generator seeded from (seed, salt, user_idx),
so the sample does not depend on how Spark partitions the data.  Items are
drawn uniformly from 1..n_items-1 (0 is the unknown index) with rejection against
the user's seen set and the negatives already drawn; a user with fewer unseen
items than asked for gets all of them.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

__all__ = ["SALT_TEST", "SALT_VALIDATION", "sample_negatives", "sample_for_user"]

SALT_VALIDATION = 1
SALT_TEST = 2


def sample_for_user(
    user_idx: int, seen: np.ndarray, n_items: int, k: int, seed: int, salt: int
) -> np.ndarray:
    """Up to `k` distinct items in 1..n_items-1 outside `seen`, in draw order."""
    # Plain Python ints throughout (`tolist`): this runs once per held-out row, a million at
    # platform scale, and iterating numpy scalars cost more than the draws themselves.
    seen_set = set(np.asarray(seen).tolist())
    unseen = (n_items - 1) - sum(1 for i in seen_set if 1 <= i < n_items)
    rng = np.random.default_rng([seed, salt, user_idx])
    if unseen <= k:
        pool = np.array([i for i in range(1, n_items) if i not in seen_set], dtype=np.int32)
        return rng.permutation(pool)
    chosen: list[int] = []
    taken = seen_set
    while len(chosen) < k:
        for item in rng.integers(1, n_items, size=2 * k).tolist():
            if item not in taken:
                taken.add(item)
                chosen.append(item)
                if len(chosen) == k:
                    break
    return np.asarray(chosen, dtype=np.int32)


def sample_negatives(
    heldout: DataFrame, seen: DataFrame, n_items: int, k: int, seed: int, salt: int
) -> DataFrame:
    """(user_idx, item_idx, negatives: array<int>) for each held-out (user_idx, item_idx).

    `seen` holds every (user_idx, item_idx) the user interacted with; the held-out
    item is excluded as well, whether or not it is in `seen`.
    """
    per_user = seen.groupBy("user_idx").agg(F.collect_list("item_idx").alias("seen"))
    rows = heldout.join(per_user, "user_idx", "left")

    def sample(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            negatives = []
            for user, item, user_seen in zip(
                batch["user_idx"], batch["item_idx"], batch["seen"], strict=True
            ):
                known = np.append(np.asarray(user_seen if user_seen is not None else []), item)
                negatives.append(sample_for_user(int(user), known, n_items, k, seed, salt))
            yield pd.DataFrame(
                {
                    "user_idx": batch["user_idx"],
                    "item_idx": batch["item_idx"],
                    "negatives": negatives,
                }
            )

    schema = "user_idx int, item_idx int, negatives array<int>"
    return rows.mapInPandas(sample, schema)
