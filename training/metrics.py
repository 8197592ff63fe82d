"""Evaluation metrics, implemented once for training, reports and benchmarks.

Ranking metrics follow the NCF protocol (He et al., WWW 2017): each evaluation row is one
held-out positive scored against its sampled negatives; the positive's 0-based rank is the
number of negatives scoring *at least* as high (ties count against it, so a constant model
cannot look good). Classification metrics treat the positive as label 1 and every negative
as label 0. A NaN negative score marks an absent negative (a user with fewer unseen items
than the protocol's count): it never outranks the positive and is left out of AUC and logloss.

`ranked_list_metrics` is the other protocol's arithmetic (full-catalogue ranking,
training/evaluation.py): Recall@K and NDCG@K from the positions of each user's relevant items
in a ranking of every candidate item, for any number of relevant items per user.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "auc",
    "evaluate_scores",
    "hit_rate_at_k",
    "logloss",
    "ndcg_at_k",
    "positive_ranks",
    "ranked_list_metrics",
    "recall_at_k",
]


def _check_scores(pos_scores: np.ndarray, neg_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pos = np.asarray(pos_scores, dtype=np.float64).reshape(-1)
    neg = np.asarray(neg_scores, dtype=np.float64)
    if neg.ndim != 2 or neg.shape[0] != pos.shape[0]:
        raise ValueError(
            f"neg_scores must have shape [rows, negatives] with rows={pos.shape[0]}, "
            f"got {neg.shape}"
        )
    if pos.size == 0:
        raise ValueError("no evaluation rows: the evaluation set is empty")
    if not np.isfinite(pos).all() or np.isinf(neg).any():
        raise ValueError("scores contain NaN or infinity; the model diverged")
    if np.isnan(neg).all(axis=1).any():
        raise ValueError("an evaluation row has no negatives")
    return pos, neg


def positive_ranks(pos_scores: np.ndarray, neg_scores: np.ndarray) -> np.ndarray:
    """0-based rank of each row's positive among its negatives, ties counted against it."""
    pos, neg = _check_scores(pos_scores, neg_scores)
    return (neg >= pos[:, None]).sum(axis=1)


def hit_rate_at_k(pos_scores: np.ndarray, neg_scores: np.ndarray, k: int = 10) -> float:
    """Share of rows whose positive ranks in the top k."""
    return float((positive_ranks(pos_scores, neg_scores) < k).mean())


def ndcg_at_k(pos_scores: np.ndarray, neg_scores: np.ndarray, k: int = 10) -> float:
    """Mean of 1/log2(rank+2) for positives ranked below k (0-based), else 0."""
    ranks = positive_ranks(pos_scores, neg_scores)
    gains = np.where(ranks < k, 1.0 / np.log2(ranks + 2.0), 0.0)
    return float(gains.mean())


def recall_at_k(pos_scores: np.ndarray, neg_scores: np.ndarray, k: int = 10) -> float:
    """Share of held-out positives retrieved in the top k.

    With one held-out positive per row (the NCF protocol) this equals HR@k; it is reported
    separately because the serving contract names it.
    """
    ranks = positive_ranks(pos_scores, neg_scores)
    return float((ranks < k).sum() / ranks.size)


def auc(pos_scores: np.ndarray, neg_scores: np.ndarray) -> float:
    """ROC AUC over all (positive, negative) scores pooled; tied scores count one half.

    Computed with average ranks (Mann-Whitney U), so it is O(n log n) in the number of scores.
    """
    pos, neg = _check_scores(pos_scores, neg_scores)
    neg = neg[~np.isnan(neg)]
    scores = np.concatenate([pos, neg])
    n_pos, n_neg = pos.size, neg.size
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    # Average 1-based rank for each run of tied scores.
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_scores)) + 1]
    ends = np.r_[starts[1:], sorted_scores.size]
    avg_rank = (starts + ends + 1) / 2.0
    ranks = np.empty(scores.size, dtype=np.float64)
    ranks[order] = np.repeat(avg_rank, ends - starts)
    u_stat = ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u_stat / (n_pos * n_neg))


def logloss(pos_scores: np.ndarray, neg_scores: np.ndarray, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy of probabilities (positives label 1, negatives label 0)."""
    pos, neg = _check_scores(pos_scores, neg_scores)
    if pos.min() < 0 or pos.max() > 1 or np.nanmin(neg) < 0 or np.nanmax(neg) > 1:
        raise ValueError("logloss needs probabilities in [0, 1]; got scores outside that range")
    p = np.clip(pos, eps, 1 - eps)
    n = np.clip(neg[~np.isnan(neg)], eps, 1 - eps)
    total = -np.log(p).sum() - np.log1p(-n).sum()
    return float(total / (p.size + n.size))


def evaluate_scores(
    pos_scores: np.ndarray, neg_scores: np.ndarray, k: int = 10, probabilities: bool = True
) -> dict[str, float]:
    """All evaluation metrics for one scored evaluation set, keyed as in metrics.json."""
    out = {
        f"hr@{k}": hit_rate_at_k(pos_scores, neg_scores, k),
        f"ndcg@{k}": ndcg_at_k(pos_scores, neg_scores, k),
        f"recall@{k}": recall_at_k(pos_scores, neg_scores, k),
        "auc": auc(pos_scores, neg_scores),
    }
    if probabilities:
        out["logloss"] = logloss(pos_scores, neg_scores)
    return out


def ranked_list_metrics(
    positions: np.ndarray, owners: np.ndarray, n_relevant: np.ndarray, k: int
) -> dict[str, float]:
    """Mean Recall@k and NDCG@k over users, from where their relevant items ranked.

    `positions[j]` is relevant item j's 0-based position in its user's ranking, `owners[j]`
    that user's row (0..len(n_relevant)-1), `n_relevant[u]` how many relevant items user u has
    (>= 1; positions of all of them are given). Binary relevance, as in RecBole and Krichene &
    Rendle (KDD 2020):

    - Recall@k = |top-k ∩ relevant| / |relevant| (with one relevant item, HR@k);
    - NDCG@k = DCG@k / IDCG@k, DCG@k = sum of 1/log2(p+2) over relevant positions p < k,
      IDCG@k the same sum over positions 0..min(k, |relevant|)-1 (a perfect ranking scores 1).
    """
    positions = np.asarray(positions, dtype=np.int64).reshape(-1)
    owners = np.asarray(owners, dtype=np.int64).reshape(-1)
    n_relevant = np.asarray(n_relevant, dtype=np.int64).reshape(-1)
    if positions.shape != owners.shape:
        raise ValueError(f"positions {positions.shape} and owners {owners.shape} differ in shape")
    if n_relevant.size == 0:
        raise ValueError("no users to evaluate")
    counted = np.bincount(owners, minlength=n_relevant.size) if owners.size else n_relevant * 0
    if n_relevant.min() < 1 or not np.array_equal(counted, n_relevant):
        raise ValueError("every user needs >= 1 relevant item, each with its position given")
    hit = positions < k
    gains = 1.0 / np.log2(positions[hit] + 2.0)
    hits = np.bincount(owners[hit], minlength=n_relevant.size)
    dcg = np.bincount(owners[hit], weights=gains, minlength=n_relevant.size)
    ideal = np.cumsum(1.0 / np.log2(np.arange(k) + 2.0))[np.minimum(n_relevant, k) - 1]
    return {
        f"recall@{k}": float((hits / n_relevant).mean()),
        f"ndcg@{k}": float((dcg / ideal).mean()),
    }
