"""Full-catalogue evaluation: every item a user did not train on is a candidate.

The NCF protocol (training/metrics.py) ranks each held-out item against 99 sampled negatives;
sampled metrics can order models differently from a ranking over the whole catalogue
(Krichene & Rendle, "On Sampled Metrics for Item Recommendation", KDD 2020), so the trainer
also ranks every candidate item for each evaluated user:

- candidates: every real item (index 1..n_items-1; 0 is "unknown") except the user's
  excluded items (what the user trained on; `FullCatalogue.build` says which for each split);
- relevant: the user's held-out items of the split (one in the leave-one-out split, any
  number in general). A relevant item the user also trained on is not a candidate, so it is
  dropped; a user left with none is not evaluated;
- ties: pessimistic, as in the sampled protocol. A relevant item ranks after every
  non-relevant candidate with the same score, so a constant model scores 0. (Among relevant
  items a tie's order does not change either metric.)
- Recall@K = |top-K ∩ relevant| / |relevant|, NDCG@K with binary relevance and the ideal DCG
  over min(K, |relevant|) items (`metrics.ranked_list_metrics`), averaged over users.

Scoring is done in chunks of users, each chunk scoring its users against every item in one
[users, items] matrix of at most `chunk_pairs` scores, so memory is bounded whatever the
catalogue. The matrix comes from a pairwise scorer (every (user, item) pair of the chunk) or
from a matrix scorer, which scores a chunk's users against the catalogue at once (a factored
model: one matmul, `training.scoring.factored_scorer`); both are ranked by the same code. A
relevant item's position is counted exactly (the number of candidates scoring at least as
high), so no top-K list is kept and any K can be read off the same positions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from training.data import EvalSet, SeenItems, TrainPositives
from training.metrics import ranked_list_metrics

__all__ = [
    "CHUNK_PAIRS",
    "FULL_KS",
    "SAMPLE_SEED",
    "FullCatalogue",
    "MatrixScorer",
    "Scorer",
    "popularity_scorer",
    "popularity_users_scorer",
    "relevant_positions",
    "sample_users",
    "trained_items",
]

FULL_KS = (10, 50)
# Scores held at once: 2·10^7 float32 plus the int32 user and item columns fed to the model
# come to ~250 MB, whatever the number of users or items.
CHUNK_PAIRS = 20_000_000
# The user sample does not depend on training.seed, so runs with different seeds (or models)
# are evaluated on the same users.
SAMPLE_SEED = 20_200_823

# score(users, items) -> the scores of those (user, item) pairs, as `trainer.score_eval_set`.
Scorer = Callable[[np.ndarray, np.ndarray], np.ndarray]
# score_users(users) -> [len(users), n_items - 1] scores, column j for item j + 1.
MatrixScorer = Callable[[np.ndarray], np.ndarray]


def sample_users(users: np.ndarray, max_users: int, seed: int = SAMPLE_SEED) -> np.ndarray:
    """The distinct `users`, or a seeded uniform sample of `max_users` of them; sorted."""
    distinct = np.unique(np.asarray(users))
    if max_users >= distinct.size:
        return distinct
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(distinct, size=max_users, replace=False))


def trained_items(
    positives: TrainPositives, extra: EvalSet | None, n_users: int, n_items: int
) -> SeenItems:
    """Each user's training positives, plus `extra`'s (user, item) pairs when given."""
    pairs = list(positives.all_pairs())
    if extra is not None:
        pairs.append((extra.users, extra.items))
    users = np.concatenate([u for u, _ in pairs])
    items = np.concatenate([i for _, i in pairs])
    return SeenItems.from_pairs(users, items, n_users, n_items)


def popularity_scorer(item_counts: np.ndarray) -> Scorer:
    """The most-popular baseline as a scorer: every user scores an item by its training count."""
    counts = np.asarray(item_counts, dtype=np.float64)
    return lambda users, items: counts[items]


def popularity_users_scorer(item_counts: np.ndarray) -> MatrixScorer:
    """`popularity_scorer` as a matrix scorer: each user's row is the items' training counts."""
    counts = np.asarray(item_counts, dtype=np.float64)[1:]
    return lambda users: np.broadcast_to(counts, (len(users), counts.size))


def _pairs_as_matrix(score: Scorer, n_items: int) -> MatrixScorer:
    # Every (user, candidate) pair of the chunk, user-major, so the scores reshape into rows.
    candidates = np.arange(1, n_items, dtype=np.int32)

    def score_users(users: np.ndarray) -> np.ndarray:
        pair_users = np.repeat(users.astype(np.int32), candidates.size)
        scores = np.asarray(score(pair_users, np.tile(candidates, users.size)))
        return scores.reshape(users.size, candidates.size)

    return score_users


def _rows_of(csr: SeenItems, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row in `users`, item) for every item of the CSR rows `users`, vectorised."""
    starts, stops = csr.indptr[users], csr.indptr[users + 1]
    lengths = stops - starts
    rows = np.repeat(np.arange(users.size), lengths)
    offsets = np.arange(rows.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return rows, csr.indices[np.repeat(starts, lengths) + offsets]


def relevant_positions(scores: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """0-based position of each relevant cell (rows[j], cols[j]) in its row's ranking.

    `scores` [users, candidates] ranks each row's candidates by score, descending; a cell at
    -inf is no candidate. Ties are pessimistic: a relevant cell comes after every non-relevant
    cell with the same score. Each position is counted over the whole row, so it is exact.
    """
    value = scores[rows, cols]
    order = np.lexsort((-value, rows))  # by row, then best first
    rows, value = rows[order], value[order]
    first = np.r_[0, np.flatnonzero(np.diff(rows)) + 1]
    start = np.repeat(first, np.diff(np.r_[first, rows.size]))
    slot = np.arange(rows.size) - start  # 0 for each row's best relevant cell, 1 next, ...
    at_least = np.empty(rows.size, np.int64)  # cells scoring >= this one, itself included
    for j in range(int(slot.max(initial=-1)) + 1):
        sel = np.flatnonzero(slot == j)
        # Slot 0 covers each row once, in order: compare in place rather than copy the rows.
        whole = sel.size == scores.shape[0] and np.array_equal(rows[sel], np.arange(sel.size))
        block = scores if whole else scores[rows[sel]]
        at_least[sel] = (block >= value[sel, None]).sum(axis=1)
    # Relevant cells scoring >= this one: up to the end of its run of equal (row, value).
    change = np.r_[np.flatnonzero((np.diff(rows) != 0) | (np.diff(value) != 0)) + 1, rows.size]
    run_end = np.repeat(change, np.diff(np.r_[0, change]))
    # Non-relevant cells at or above it (pessimistic ties) plus the relevant ones before it.
    out = np.empty(rows.size, np.int64)
    out[order] = at_least - (run_end - start) + slot
    return out


@dataclass(frozen=True)
class FullCatalogue:
    """One split's full-catalogue evaluation: evaluated users, their relevant and excluded items.

    `users` [u] are sorted; `relevant` is CSR over them (row r = users[r]); `exclude` is CSR
    over the whole user index space.
    """

    users: np.ndarray
    relevant: SeenItems
    exclude: SeenItems
    n_items: int

    @classmethod
    def build(
        cls, data: EvalSet, exclude: SeenItems, max_users: int, seed: int = SAMPLE_SEED
    ) -> FullCatalogue:
        """Evaluate `data`'s held-out items, for a seeded sample of at most `max_users` users.

        `exclude` is what each user trained on: for validation the training positives, for
        test the training plus the validation positives (see the README's quality section).
        """
        n_items = exclude.n_items
        users = sample_users(data.users, max_users, seed)
        keep = np.isin(data.users, users) & (data.items > 0)
        keep &= ~exclude.contains(data.users, data.items)
        rel_users, rel_items = data.users[keep], data.items[keep]
        users = np.unique(rel_users)  # users left with a relevant candidate
        rows = np.searchsorted(users, rel_users)
        relevant = SeenItems.from_pairs(rows, rel_items, users.size, n_items)
        return cls(users.astype(np.int64), relevant, exclude, n_items)

    def evaluate(
        self,
        score: Scorer | None = None,
        ks: tuple[int, ...] = FULL_KS,
        chunk_pairs: int = CHUNK_PAIRS,
        *,
        score_users: MatrixScorer | None = None,
    ) -> dict[str, float]:
        """`full_recall@k`, `full_ndcg@k` for each k and `full_users`, for one scorer.

        Either `score`, a pairwise scorer, or `score_users`, a matrix scorer giving a chunk's
        users' scores of items 1..n_items-1 as a [users, n_items - 1] array.
        """
        if (score is None) == (score_users is None):
            raise ValueError("full-catalogue evaluation: pass one of score and score_users")
        if self.users.size == 0:
            raise ValueError("full-catalogue evaluation: no user has a relevant candidate item")
        n_candidates = self.n_items - 1
        if score_users is None:
            score_users = _pairs_as_matrix(score, self.n_items)
        per_chunk = max(1, chunk_pairs // n_candidates)
        positions, owners = [], []
        for lo in range(0, self.users.size, per_chunk):
            users = self.users[lo : lo + per_chunk]
            scores = np.asarray(score_users(users))
            if scores.shape != (users.size, n_candidates):
                raise ValueError(
                    f"full-catalogue evaluation: the scorer gave {scores.shape} scores for "
                    f"{users.size} users and {n_candidates} candidate items"
                )
            if not np.issubdtype(scores.dtype, np.floating) or not scores.flags.writeable:
                scores = scores.astype(np.float64)  # -inf marks the excluded items below
            if not np.isfinite(scores).all():
                raise ValueError("scores contain NaN or infinity; the model diverged")
            ex_rows, ex_items = _rows_of(self.exclude, users)
            ex = ex_items > 0  # index 0 is no candidate anyway
            scores[ex_rows[ex], ex_items[ex] - 1] = -np.inf
            rows, items = _rows_of(self.relevant, np.arange(lo, lo + users.size))
            positions.append(relevant_positions(scores, rows, items - 1))
            owners.append(rows + lo)
        positions, owners = np.concatenate(positions), np.concatenate(owners)
        out: dict[str, float] = {}
        for k in ks:
            found = ranked_list_metrics(positions, owners, self.relevant.counts(), k)
            out.update({f"full_{name}": value for name, value in found.items()})
        out["full_users"] = int(self.users.size)
        return out
