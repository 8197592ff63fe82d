"""Each task's shard of the training data: the users with user_idx % workers == rank.

Sharding by user keeps every user's whole history on one task, so the negatives a task samples
exclude exactly what a single process would exclude, and the history windows (seqfism) are
exact for the users the task trains on. A task's trainer sees its shard as a dataset of its own
(`ShardDataset`): its training positives, arriving from Spark's shuffle rather than read from
every file, and the evaluation rows of its users. Each epoch a task shuffles and samples with
its own seeded stream (`rank_rng`) and cuts its rows into its share of every global batch
(`shard_batches`): global batch t is the tasks' batches t concatenated in rank order.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from training.data import Batch, EvalSet, SeenItems, batches, with_negatives

__all__ = [
    "ArrayPositives",
    "ShardDataset",
    "rank_rng",
    "shard_batches",
    "shard_mask",
    "slice_bounds",
]


def slice_bounds(n: int, size: int, rank: int) -> tuple[int, int]:
    """[start, stop) of task `rank`'s contiguous share of a batch of n rows (sizes differ by 1)."""
    return n * rank // size, n * (rank + 1) // size


def shard_mask(users: np.ndarray, rank: int, size: int) -> np.ndarray:
    """Which of `users` belong to task `rank` of `size`."""
    return np.asarray(users) % size == rank


def rank_rng(seed: int, rank: int, epoch: int, label: str) -> np.random.Generator:
    """Task `rank`'s random stream for one epoch of one phase ("epoch" or "refit epoch")."""
    return np.random.default_rng([seed, rank, epoch, 1 if label.startswith("refit") else 0])


class ArrayPositives:
    """Training positives held as arrays, with the interface of `training.data.TrainPositives`.

    Rows are kept sorted by (user, item), so a shard's content, not the order Spark delivered
    it in, decides every later shuffle.
    """

    streamed = False

    def __init__(self, users, items, order=None, extra: tuple | None = None):
        users, items = np.asarray(users, np.int32), np.asarray(items, np.int32)
        order = None if order is None else np.asarray(order, np.int64)
        if extra is not None and len(extra[0]):
            # Refit adds the validation pairs: each user's newest positive (see TrainPositives).
            users = np.concatenate([users, np.asarray(extra[0], np.int32)])
            items = np.concatenate([items, np.asarray(extra[1], np.int32)])
            if order is not None:
                newest = np.full(len(extra[0]), np.iinfo(np.int64).max, np.int64)
                order = np.concatenate([order, newest])
        sort = np.lexsort((items, users))
        self.users, self.items = users[sort], items[sort]
        self.order = None if order is None else order[sort]
        self.count = int(self.users.size)

    def all_pairs(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every positive, unshuffled."""
        yield self.users, self.items

    def history(self, reader: str = "a model") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(users, items, order): the time order models like seqfism read (`reader`)."""
        if self.order is None:
            raise ValueError("this shard's training positives came without their 'ts' column")
        return self.users, self.items, self.order

    def epoch_chunks(self, rng: np.random.Generator) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """One shuffled chunk holding every positive once."""
        order = rng.permutation(self.count)
        yield self.users[order], self.items[order]


class ShardDataset:
    """A `FeatureDataset` seen from one task: its users' positives and evaluation rows."""

    def __init__(self, dataset, positives: ArrayPositives, rank: int, size: int) -> None:
        self._dataset, self._positives = dataset, positives
        self.rank, self.size = rank, size

    def __getattr__(self, name):  # sizes, profiles, features, paths: the whole dataset's
        return getattr(self._dataset, name)

    def train_positives(
        self, memory_budget_bytes: int, extra: EvalSet | None = None, row_bytes: int = 8
    ):
        """This shard's positives (plus `extra`'s, already this shard's, when refitting).

        Held in memory whatever the budget: the shard arrived whole from Spark's shuffle.
        """
        base = self._positives
        if extra is None:
            return base
        return ArrayPositives(base.users, base.items, base.order, (extra.users, extra.items))

    def eval_set(self, name: str) -> EvalSet:
        """The evaluation rows of this shard's users."""
        full = self._dataset.eval_set(name)
        keep = shard_mask(full.users, self.rank, self.size)
        return EvalSet(full.users[keep], full.items[keep], full.negatives[keep])


def shard_batches(
    positives, exclude: SeenItems, negatives: int, batch_size: int, rank: int, size: int,
    rng: np.random.Generator,
) -> list[Batch]:  # fmt: skip
    """This task's batches for one epoch: positives plus sampled negatives, shuffled, cut into
    its share of each `batch_size` global batch."""
    lo, hi = slice_bounds(batch_size, size, rank)
    share = max(hi - lo, 1)
    out: list[Batch] = []
    for users, items in positives.epoch_chunks(rng):
        rows = with_negatives(users, items, exclude, negatives, rng)
        out.extend(batches(rows, share))
    return out
