"""Metrics against hand-worked cases."""

import math

import numpy as np
import pytest

from training import metrics


def test_ranks_count_ties_against_the_positive():
    pos = np.array([0.9, 0.5, 0.1])
    neg = np.array([[0.1, 0.2, 0.3], [0.5, 0.1, 0.6], [0.1, 0.1, 0.1]])
    # row 0: nothing >= 0.9 -> 0; row 1: 0.5 (tie) and 0.6 -> 2; row 2: all three tie -> 3
    assert metrics.positive_ranks(pos, neg).tolist() == [0, 2, 3]


def test_hr_ndcg_recall_hand_worked():
    pos = np.array([0.9, 0.5, 0.1])
    neg = np.array([[0.1, 0.2, 0.3], [0.5, 0.1, 0.6], [0.1, 0.1, 0.1]])
    # k=3: ranks 0, 2 hit, rank 3 misses.
    assert metrics.hit_rate_at_k(pos, neg, k=3) == pytest.approx(2 / 3)
    assert metrics.recall_at_k(pos, neg, k=3) == pytest.approx(2 / 3)
    expected_ndcg = (1 / math.log2(2) + 1 / math.log2(4) + 0) / 3  # (1 + 0.5) / 3
    assert metrics.ndcg_at_k(pos, neg, k=3) == pytest.approx(expected_ndcg)
    assert metrics.ndcg_at_k(pos, neg, k=2) == pytest.approx(1 / 3)
    assert metrics.hit_rate_at_k(pos, neg, k=1) == pytest.approx(1 / 3)


def test_constant_model_scores_zero():
    pos = np.full(4, 0.5)
    neg = np.full((4, 99), 0.5)
    assert metrics.hit_rate_at_k(pos, neg, k=10) == 0.0
    assert metrics.ndcg_at_k(pos, neg, k=10) == 0.0
    assert metrics.auc(pos, neg) == pytest.approx(0.5)


def test_auc_hand_worked_with_tie():
    # Pairs (pos, neg): (0.8 vs 0.3, 0.8) -> 1 + 0.5; (0.4 vs 0.3, 0.8) -> 1 + 0 => 2.5 / 4
    pos = np.array([0.8, 0.4])
    neg = np.array([[0.3, 0.8], [0.3, 0.8]])
    assert metrics.auc(pos, neg) == pytest.approx(2.5 / 4)


def test_auc_matches_pairwise_count():
    rng = np.random.default_rng(3)
    pos = rng.integers(0, 5, 30).astype(float)
    neg = rng.integers(0, 5, (30, 7)).astype(float)
    flat = neg.reshape(-1)
    wins = (pos[:, None] > flat[None, :]).sum() + 0.5 * (pos[:, None] == flat[None, :]).sum()
    assert metrics.auc(pos, neg) == pytest.approx(wins / (pos.size * flat.size))


def test_logloss_hand_worked():
    pos = np.array([0.8])
    neg = np.array([[0.2, 0.5]])
    expected = -(math.log(0.8) + math.log(0.8) + math.log(0.5)) / 3
    assert metrics.logloss(pos, neg) == pytest.approx(expected)


def test_evaluate_scores_keys():
    out = metrics.evaluate_scores(np.array([0.9]), np.array([[0.1, 0.2]]), k=10)
    assert set(out) == {"hr@10", "ndcg@10", "recall@10", "auc", "logloss"}
    assert out["hr@10"] == 1.0 and out["ndcg@10"] == 1.0 and out["auc"] == 1.0


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="shape"):
        metrics.hit_rate_at_k(np.zeros(3), np.zeros((2, 5)))
    with pytest.raises(ValueError, match="NaN"):
        metrics.auc(np.array([np.nan]), np.zeros((1, 2)))
    with pytest.raises(ValueError, match="probabilities"):
        metrics.logloss(np.array([2.0]), np.zeros((1, 2)))
    with pytest.raises(ValueError, match="empty"):
        metrics.ndcg_at_k(np.zeros(0), np.zeros((0, 3)))


def test_nan_negatives_are_absent_hand_worked():
    # Row 1 has only two real negatives (a user who has seen most of the catalogue).
    pos = np.array([0.5, 0.5])
    neg = np.array([[0.6, 0.1, 0.7], [0.9, 0.2, np.nan]])
    assert metrics.positive_ranks(pos, neg).tolist() == [2, 1]
    assert metrics.hit_rate_at_k(pos, neg, k=2) == pytest.approx(0.5)
    assert metrics.ndcg_at_k(pos, neg, k=3) == pytest.approx(
        (1 / math.log2(4) + 1 / math.log2(3)) / 2
    )
    # The 5 real negatives pooled: each positive (0.5) beats 0.1 and 0.2 -> 4 wins of 10 pairs.
    assert metrics.auc(pos, neg) == pytest.approx(4 / 10)
    expected = -(2 * math.log(0.5) + sum(math.log(1 - n) for n in (0.6, 0.1, 0.7, 0.9, 0.2))) / 7
    assert metrics.logloss(pos, neg) == pytest.approx(expected)
    with pytest.raises(ValueError, match="no negatives"):
        metrics.auc(np.array([0.5]), np.array([[np.nan, np.nan]]))


def test_ranked_list_metrics_hand_worked():
    # user 0: relevant items at positions 0 and 3; user 1: one relevant item at position 1.
    out = metrics.ranked_list_metrics(np.array([0, 3, 1]), np.array([0, 0, 1]), np.array([2, 1]), 2)
    g = 1 / math.log2(3)
    assert out["recall@2"] == pytest.approx((1 / 2 + 1) / 2)
    assert out["ndcg@2"] == pytest.approx((1 / (1 + g) + g) / 2)


def test_ranked_list_recall_divides_by_all_relevant_and_ndcg_by_the_ideal_top_k():
    # Three relevant items at the top three places, k = 2: two of three retrieved (recall is
    # hits / |relevant|, not / min(k, |relevant|)), yet the ranking is ideal (NDCG 1).
    out = metrics.ranked_list_metrics(np.array([2, 0, 1]), np.zeros(3, int), np.array([3]), 2)
    assert out["recall@2"] == pytest.approx(2 / 3)
    assert out["ndcg@2"] == pytest.approx(1.0)


def test_ranked_list_metrics_need_every_relevant_position():
    with pytest.raises(ValueError, match="relevant"):
        metrics.ranked_list_metrics(np.array([0]), np.array([0]), np.array([2]), 10)
    with pytest.raises(ValueError, match="no users"):
        metrics.ranked_list_metrics(np.zeros(0), np.zeros(0), np.zeros(0), 10)
