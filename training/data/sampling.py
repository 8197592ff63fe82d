"""Negative sampling and batching, vectorised over whole chunks of positives.

Negatives are drawn uniformly from the real items (indices 1..n_items-1; 0 is "unknown") and
redrawn, all at once, wherever they hit an item the user has seen. No per-example Python loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from training.data.dataset import SeenItems

if TYPE_CHECKING:
    from training.data.exclusion import ChunkExclusion

__all__ = ["Batch", "batches", "sample_negatives", "with_negatives"]

# Rejection rounds before giving up; each round redraws only the rejected negatives, so with
# any user having at least one unseen item this is practically never reached.
_MAX_ROUNDS = 200


@dataclass(frozen=True)
class Batch:
    """One training batch: int32 `users`, `items` [n] and float32 `labels` [n] (1 = positive).

    `anchors` [n] int32, when present, names the positive each row was drawn for: the row's own
    item for a positive, its positive's item for a sampled negative. A model that scores from
    the scored item's place in the user's history scores a negative in that positive's context.
    """

    users: np.ndarray
    items: np.ndarray
    labels: np.ndarray
    anchors: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.users.size)


def sample_negatives(
    users: np.ndarray, seen: SeenItems, per_user: int, rng: np.random.Generator
) -> np.ndarray:
    """`per_user` unseen items for each entry of `users`: int32 [len(users), per_user]."""
    n_items = seen.n_items
    counts = seen.counts()[users] if users.size else np.zeros(0, np.int64)
    if users.size and counts.max() >= n_items - 1:
        worst = int(users[np.argmax(counts)])
        raise ValueError(f"user_idx {worst} has seen every item; no negative can be sampled")
    flat_users = np.repeat(users, per_user)
    items = rng.integers(1, n_items, size=flat_users.size, dtype=np.int32)
    bad = np.flatnonzero(seen.contains(flat_users, items))
    for _ in range(_MAX_ROUNDS):
        if bad.size == 0:
            break
        items[bad] = rng.integers(1, n_items, size=bad.size, dtype=np.int32)
        bad = bad[seen.contains(flat_users[bad], items[bad])]
    else:
        raise ValueError(
            f"negative sampling did not converge after {_MAX_ROUNDS} rounds; some users have "
            "seen almost every item"
        )
    return items.reshape(-1, per_user) if per_user else items.reshape(users.size, 0)


def with_negatives(
    users: np.ndarray,
    items: np.ndarray,
    seen: SeenItems | ChunkExclusion,
    negatives: int,
    rng: np.random.Generator,
) -> Batch:
    """Positives plus `negatives` sampled negatives each, shuffled together (one big batch).

    `seen` is the exclusion: the exact `SeenItems`, or for streamed positives a
    `ChunkExclusion`, which gives the CSR for this chunk (`for_chunk`).
    Each row's anchor is the positive it belongs to (see `Batch`).
    """
    seen = seen.for_chunk(users, items)
    neg_items = sample_negatives(users, seen, negatives, rng).reshape(-1)
    all_users = np.concatenate([users, np.repeat(users, negatives)]).astype(np.int32)
    all_items = np.concatenate([items, neg_items]).astype(np.int32)
    labels = np.zeros(all_users.size, np.float32)
    labels[: users.size] = 1.0
    anchors = np.concatenate([items, np.repeat(items, negatives)]).astype(np.int32)
    order = rng.permutation(all_users.size)
    return Batch(all_users[order], all_items[order], labels[order], anchors[order])


def batches(rows: Batch, batch_size: int) -> Iterator[Batch]:
    """Consecutive slices of `batch_size` rows (the last one may be shorter)."""
    for start in range(0, len(rows), batch_size):
        stop = start + batch_size
        anchors = None if rows.anchors is None else rows.anchors[start:stop]
        yield Batch(
            rows.users[start:stop], rows.items[start:stop], rows.labels[start:stop], anchors
        )
