"""What negative sampling and the full-catalogue evaluation exclude, in memory or streamed.

In memory the exclusion is exact: a CSR of every training positive (`SeenItems`). That CSR is
O(number of events), so when the training positives are streamed (`TrainPositives.streamed`)
the trainer uses a `ChunkExclusion` instead, whose size is the user's capped history (already
held for the models that read it, O(users x history_length)) plus one chunk's positives.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from training.data.dataset import EvalSet, SeenItems
from training.data.history import UserHistory, csr_pairs

__all__ = ["ChunkExclusion", "pairs_of_users"]


class ChunkExclusion:
    """Negative sampling's exclusion for streamed positives: bounded, and an approximation.

    A chunk's negatives avoid, for each of the chunk's users: the user's `latest` items (the
    features stage's `history/`, each user's newest `history_length` training items; on refit
    with the validation item as newest), the chunk's own positives, and the `held` pairs (the
    held-out items under `negatives_exclude: seen`, the refit's validation items under
    `train`). What it misses is a user's older positive outside the cap that is not in the
    same chunk: a uniform draw hits one with probability at most (h - L) / n_items for a user
    with h positives. At catalogue scale that is rare, and such an accidental hit is what the
    usual samplers accept outright (TF's and TFRS's uniform or in-batch candidate samplers
    exclude nothing, or only the true class). In memory the trainer keeps the exact CSR, so
    results on data that fits (MovieLens) do not change.
    """

    def __init__(
        self, latest: UserHistory, held: SeenItems | None, n_users: int, n_items: int
    ) -> None:
        self.latest, self.held = latest, held
        self.n_users, self.n_items = n_users, n_items

    def for_chunk(self, users: np.ndarray, items: np.ndarray) -> SeenItems:
        """The exclusion of one chunk of positives: a CSR over the chunk's users only."""
        chunk_users = np.unique(users)
        parts = [(users, items), csr_pairs(self.latest.indptr, self.latest.indices, chunk_users)]
        if self.held is not None:
            parts.append(csr_pairs(self.held.indptr, self.held.indices, chunk_users))
        all_users = np.concatenate([u for u, _ in parts])
        all_items = np.concatenate([i for _, i in parts])
        return SeenItems.from_pairs(all_users, all_items, self.n_users, self.n_items)


def pairs_of_users(
    chunks: Iterable[tuple[np.ndarray, np.ndarray]],
    users: np.ndarray,
    n_users: int,
    n_items: int,
    extra: EvalSet | None = None,
) -> SeenItems:
    """The (user, item) pairs of `chunks` (and `extra`) whose user is in `users`, as a CSR.

    One pass over the chunks, keeping only `users`' rows: memory is bounded by those users'
    pairs (the full-catalogue evaluation's sample), not by the number of events. Other users'
    CSR rows are empty.
    """
    wanted = np.zeros(n_users, bool)
    wanted[np.asarray(users, np.int64)] = True
    kept_users, kept_items = [np.zeros(0, np.int32)], [np.zeros(0, np.int32)]
    for chunk_users, chunk_items in _with_extra(chunks, extra):
        keep = wanted[chunk_users]
        kept_users.append(np.asarray(chunk_users)[keep])
        kept_items.append(np.asarray(chunk_items)[keep])
    return SeenItems.from_pairs(
        np.concatenate(kept_users), np.concatenate(kept_items), n_users, n_items
    )


def _with_extra(chunks, extra: EvalSet | None):
    yield from chunks
    if extra is not None:
        yield extra.users, extra.items
