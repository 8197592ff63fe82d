"""Scoring for training and evaluation: batched pair scores, the NCF protocol, the optimizer.

Kept apart from the training loop (`training.trainer`, which re-exports these names).
"""

from __future__ import annotations

import numpy as np

import engine as tf
from peppercorn.config import TrainingConfig
from training.data import PAD_ITEM, EvalSet
from training.metrics import evaluate_scores
from training.models import ModelGraph

__all__ = ["eval_scores", "make_optimizer", "popularity_metrics", "score_eval_set", "score_pairs"]

_SCORE_BATCH = 65_536


def make_optimizer(training: TrainingConfig):
    """The engine optimizer named by `training.optimizer` at `training.learning_rate`."""
    lr = training.learning_rate
    return {
        "sgd": lambda: tf.train.GradientDescentOptimizer(lr),
        "momentum": lambda: tf.train.MomentumOptimizer(lr, momentum=0.9),
        "adagrad": lambda: tf.train.AdagradOptimizer(lr),
        "adam": lambda: tf.train.AdamOptimizer(lr),
        "ftrl": lambda: tf.train.FtrlOptimizer(lr),
    }[training.optimizer]()


def score_pairs(session, model: ModelGraph, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Model probabilities for (user, item) pairs, in large batches."""
    out = np.empty(users.size, np.float32)
    for start in range(0, users.size, _SCORE_BATCH):
        stop = start + _SCORE_BATCH
        out[start:stop] = session.run(model.score, model.feed(users[start:stop], items[start:stop]))
    return out


def eval_scores(session, model: ModelGraph, data: EvalSet) -> tuple[np.ndarray, np.ndarray]:
    """(held-out item scores [n], negative scores [n, m] with NaN where padded) on `data`."""
    return score_eval_set(lambda users, items: score_pairs(session, model, users, items), data)


def score_eval_set(score, data: EvalSet) -> tuple[np.ndarray, np.ndarray]:
    """`eval_scores` for any scorer: `score(users, items)` -> scores of those (user, item) pairs."""
    m = data.negatives.shape[1]
    padded = data.negatives == PAD_ITEM
    users = np.repeat(data.users, m + 1)
    negatives = np.where(padded, 0, data.negatives)
    items = np.concatenate([data.items[:, None], negatives], axis=1).reshape(-1)
    scores = np.asarray(score(users, items)).reshape(-1, m + 1)
    neg_scores = scores[:, 1:].astype(np.float64)
    neg_scores[padded] = np.nan  # absent negatives (metrics skip NaN)
    return scores[:, 0], neg_scores


def popularity_metrics(item_counts: np.ndarray, data: EvalSet, k: int = 10) -> dict[str, float]:
    """The most-popular baseline (score = training count) on an evaluation set."""
    counts = item_counts.astype(np.float64)
    neg_scores = counts[data.negatives]
    neg_scores[data.negatives == PAD_ITEM] = np.nan
    return evaluate_scores(counts[data.items], neg_scores, k, probabilities=False)
