"""Users' histories on the host: the rows a model's history input is fed from.

A `UserHistory` holds each user's items newest first as CSR (`indptr` int64 [n_users + 1],
`indices` int32). Capped at `length` it is the features stage's `history/` table (§3) and
what a version exports; uncapped (`length` None) it is the whole time-ordered training
sequence, from which `around` cuts the windows around a training row's place.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from peppercorn.csr import padded_rows

__all__ = ["UserHistory", "csr_pairs"]


def csr_pairs(
    indptr: np.ndarray, indices: np.ndarray, users: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(user, item) for every entry of the CSR rows `users`, vectorised, in row order."""
    users = np.asarray(users, np.int64)
    starts, stops = indptr[users], indptr[users + 1]
    lengths = stops - starts
    offsets = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.repeat(users, lengths), indices[np.repeat(starts, lengths) + offsets]


@dataclass(frozen=True)
class UserHistory:
    """Each user's items newest first (CSR), at most `length` of them (None: all)."""

    indptr: np.ndarray
    indices: np.ndarray
    length: int | None = None

    @classmethod
    def from_events(
        cls,
        users: np.ndarray,
        items: np.ndarray,
        order: np.ndarray,
        n_users: int,
        length: int | None = None,
    ) -> UserHistory:
        """From (user, item, order) events, `order` larger = newer (e.g. timestamps).

        Ties go to the larger item index being newer (the features stage's rule); a repeated
        (user, item) pair keeps its newest occurrence; the newest `length` items are kept.
        """
        users, items = np.asarray(users, np.int64), np.asarray(items, np.int64)
        order = np.asarray(order)
        if not users.size == items.size == order.size:
            raise ValueError(
                f"users, items and order differ in length ({users.size}, {items.size}, "
                f"{order.size})"
            )
        # ~x reverses an integer order without the overflow of -x (int64 nanosecond stamps).
        newest_first = ~order if np.issubdtype(order.dtype, np.integer) else -order
        idx = np.lexsort((-items, newest_first, users))
        users, items = users[idx], items[idx]
        width = int(items.max()) + 1 if items.size else 1
        _, first = np.unique(users * width + items, return_index=True)
        keep = np.zeros(users.size, bool)
        keep[first] = True  # the newest occurrence of a repeated pair comes first
        users, items = users[keep], items[keep]
        if length is not None:
            rank = np.arange(users.size) - np.searchsorted(users, users, side="left")
            users, items = users[rank < length], items[rank < length]
        indptr = np.zeros(n_users + 1, np.int64)
        np.cumsum(np.bincount(users, minlength=n_users)[:n_users], out=indptr[1:])
        return cls(indptr, items.astype(np.int32), length)

    def rows(self, users: np.ndarray, width: int | None = None) -> np.ndarray:
        """[len(users), width] int32 newest first, 0-padded (width: default `length`)."""
        width = self.length if width is None else width
        if width is None:
            raise ValueError("an uncapped history needs an explicit width")
        return padded_rows(self.indptr, self.indices, users, width)

    def with_newest(self, users: np.ndarray, items: np.ndarray) -> UserHistory:
        """This history with `items[k]` made user `users[k]`'s newest item (capped again).

        Used when refitting on train + validation: a validation item is its user's newest
        remaining positive (features/split.py). An item already in the row moves to the front.
        """
        n_users = self.indptr.shape[0] - 1
        old_users = np.repeat(np.arange(n_users), np.diff(self.indptr))
        old_rank = np.arange(self.indices.size) - self.indptr[old_users]
        # Order: an existing item's rank counted down from -1 (newest = -1); new items at 0.
        all_users = np.concatenate([old_users, np.asarray(users, np.int64)])
        all_items = np.concatenate([self.indices, np.asarray(items, np.int32)])
        order = np.concatenate([-1 - old_rank, np.zeros(len(users), np.int64)])
        return UserHistory.from_events(all_users, all_items, order, n_users, self.length)

    @cached_property
    def _keys(self) -> tuple[np.ndarray, np.ndarray]:
        # (user * n_items + item) sorted, with the CSR position each key sits at.
        users = np.repeat(np.arange(self.indptr.shape[0] - 1), np.diff(self.indptr))
        n_items = int(self.indices.max()) + 1 if self.indices.size else 1
        keys = users * n_items + self.indices
        order = np.argsort(keys, kind="stable")
        return keys[order], order

    def position(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Each item's place in its user's row (0 = newest), -1 where it is not there."""
        keys, where = self._keys
        users, items = np.asarray(users, np.int64), np.asarray(items, np.int64)
        n_items = int(self.indices.max()) + 1 if self.indices.size else 1
        query = users * n_items + items
        pos = np.searchsorted(keys, query)
        found = (pos < keys.size) & (items < n_items) & (items >= 0)
        found[found] = keys[pos[found]] == query[found]
        out = np.full(users.shape, -1, np.int64)
        out[found] = where[pos[found]] - self.indptr[users[found]]
        return out

    def around(
        self, users: np.ndarray, anchors: np.ndarray, before: int, after: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The windows around each anchor's place in its user's row, 0-padded int32:

        ([n, before] the items older than the anchor, nearest first (newest first),
         [n, after] the items newer than it, nearest first (oldest first)).
        An anchor not in the row sits just after the user's newest item: `before` is then the
        user's newest items and `after` is empty. The anchor itself is in neither.
        """
        users = np.asarray(users, np.int64)
        pos = self.position(users, anchors)
        start = self.indptr[users]
        stop = self.indptr[users + 1]
        # Older items sit at larger places: pos + 1, pos + 2, ... (pos = -1: from the newest).
        at = start[:, None] + pos[:, None] + 1 + np.arange(before)[None, :]
        ok = at < stop[:, None]
        older = np.zeros((users.size, before), np.int32)
        older[ok] = self.indices[at[ok]]
        at = start[:, None] + pos[:, None] - 1 - np.arange(after)[None, :]
        ok = (at >= start[:, None]) & (pos[:, None] >= 0)
        newer = np.zeros((users.size, after), np.int32)
        newer[ok] = self.indices[at[ok]]
        return older, newer
