"""Scoring for training and evaluation: batched pair scores, the NCF protocol, the optimizer,
and the scorers of the full-catalogue evaluation (pairwise, or factored: one matmul per chunk).

Kept apart from the training loop (`training.trainer`, which re-exports these names).
"""

from __future__ import annotations

import numpy as np

import engine as tf
from engine.ops_math import _sigmoid
from peppercorn.config import TrainingConfig
from training.data import PAD_ITEM, EvalSet, SeenItems
from training.metrics import evaluate_scores
from training.models import ModelGraph

__all__ = [
    "eval_scores",
    "factored_pair_scorer",
    "factored_scorer",
    "full_catalogue_scorer",
    "make_optimizer",
    "popularity_metrics",
    "score_eval_set",
    "score_pairs",
]

_SCORE_BATCH = 65_536
# Users whose vectors are computed in one run: a history model gathers [users, L, d] for them.
_USER_BATCH = 4_096


def make_optimizer(training: TrainingConfig):
    """The engine optimizer named by `training.optimizer` at `training.learning_rate`."""
    lr = training.learning_rate
    return {
        "sgd": lambda: tf.train.GradientDescentOptimizer(lr),
        "momentum": lambda: tf.train.MomentumOptimizer(lr, momentum=0.9),
        "adagrad": lambda: tf.train.AdagradOptimizer(lr),
        "adam": lambda: tf.train.AdamOptimizer(lr),
        "lazy_adam": lambda: tf.train.LazyAdamOptimizer(lr),
        "rmsprop": lambda: tf.train.RMSPropOptimizer(lr),
        "ftrl": lambda: tf.train.FtrlOptimizer(lr),
    }[training.optimizer]()


def score_pairs(
    session,
    model: ModelGraph,
    users: np.ndarray,
    items: np.ndarray,
    logits: bool = False,
    history: np.ndarray | None = None,
) -> np.ndarray:
    """Model probabilities (or `logits`) for (user, item) pairs, in large batches.

    `history` [len(users), L]: each pair's history row (default: the user's newest items).
    """
    node = model.logits if logits else model.score
    out = np.empty(users.size, np.float32)
    for start in range(0, users.size, _SCORE_BATCH):
        stop = start + _SCORE_BATCH
        rows = None if history is None else history[start:stop]
        out[start:stop] = session.run(
            node, model.feed(users[start:stop], items[start:stop], history=rows)
        )
    return out


def factored_scorer(session, model: ModelGraph, skip: SeenItems | None = None):
    """The matrix scorer of a model with `factors`: users -> logits [len(users), n_items - 1].

    Column j is item j + 1 (index 0 is no item). The item side is computed once, here: build
    one scorer per evaluation, after the weights it evaluates. Each call computes its users'
    vectors, feeding each user's history row once, then one matmul.

    The factored form is not exact for an item in the user's fed history (`Factored`): those
    cells are scored again with the pairwise logits, except the ones in `skip` (the items
    the evaluation excludes and overwrites anyway). The full-catalogue evaluation excludes
    what each user trained on, and the history fed is the user's newest training items (plus,
    after refit, the validation items that the test evaluation excludes too), so with `skip`
    nothing is scored twice; without it every cell is exact.
    """
    factors = model.factors
    if factors is None:
        raise ValueError(f"model {model.spec.name!r} has no factored form; score it pairwise")
    item_vectors, item_bias = _item_side(session, model)
    item_vectors = np.ascontiguousarray(item_vectors[1:].T)
    item_bias = item_bias[1:]

    def score_users(users: np.ndarray) -> np.ndarray:
        users = np.asarray(users, np.int32)
        vectors, rows = _user_vectors(session, model, users, item_vectors.shape[0])
        out = np.matmul(vectors, item_vectors)
        out += item_bias
        if rows is not None:
            _rescore_history(session, model, users, rows, out, skip)
        return out

    return score_users


def _item_side(session, model: ModelGraph) -> tuple[np.ndarray, np.ndarray]:
    # Every item's vector [n_items, d] and bias [n_items], index 0 included.
    vectors, bias = session.run([model.factors.item_vectors, model.factors.item_bias])
    return np.asarray(vectors, np.float32), np.asarray(bias, np.float32)


def _user_vectors(session, model: ModelGraph, users: np.ndarray, width: int):
    """(`users`' vectors [n, width], their fed history rows [n, L] or None), one run per batch.

    Batched because a history model gathers [users, L, d] to pool each user's history.
    """
    rows = model.history_rows(users) if model.has_history else None
    parts = [np.zeros((0, width), np.float32)]
    for lo in range(0, users.size, _USER_BATCH):
        feed = {model.user_idx: users[lo : lo + _USER_BATCH]}
        if rows is not None:
            feed[model.history] = rows[lo : lo + _USER_BATCH]
        parts.append(np.asarray(session.run(model.factors.user_vector, feed), np.float32))
    return np.concatenate(parts), rows


def _rescore_history(session, model, users, rows, out, skip) -> None:
    # The cells of items in each user's fed history: the pairwise logits, fed the same row.
    r, k = np.nonzero(rows > 0)
    if skip is not None:
        keep = ~skip.contains(users[r], rows[r, k])
        r, k = r[keep], k[keep]
    if r.size == 0:
        return
    items = rows[r, k]
    out[r, items - 1] = score_pairs(session, model, users[r], items, logits=True, history=rows[r])


def full_catalogue_scorer(session, model: ModelGraph, skip: SeenItems | None = None) -> dict:
    """The keyword arguments of `FullCatalogue.evaluate` that score `model`'s current weights.

    A model with `factors` gets the matrix scorer (`factored_scorer`), any other the pairwise
    one. Both give logits: a probability saturates in float32 (sigmoid(x) rounds to 1.0 for
    x above ~17), and the pessimistic ties would then rank a relevant item after items the
    logits put below it.
    """
    if model.factors is not None:
        return {"score_users": factored_scorer(session, model, skip)}
    return {"score": lambda users, items: score_pairs(session, model, users, items, logits=True)}


def eval_scores(session, model: ModelGraph, data: EvalSet) -> tuple[np.ndarray, np.ndarray]:
    """(held-out item scores [n], negative scores [n, m] with NaN where padded) on `data`.

    A model with `factors` is scored through them (`factored_pair_scorer`): each user's
    vector once, not once per candidate. For a history model that is what keeps the sampled
    evaluation of a million users' validation rows to seconds instead of most of an hour.
    """
    if model.factors is not None:
        return score_eval_set(factored_pair_scorer(session, model), data)
    return score_eval_set(lambda users, items: score_pairs(session, model, users, items), data)


def factored_pair_scorer(session, model: ModelGraph):
    """`score(users, items)` -> the probabilities of those pairs, through the model's factors.

    The same values as `score_pairs` (up to float rounding): each distinct user's vector is
    computed once, and a pair whose item is in the user's fed history (where the factored form
    is not exact, see `factored_scorer`) is scored again with the pairwise logits. The
    probability is the engine's own sigmoid of the logit, so saturated scores tie as before.
    """
    item_vectors, item_bias = _item_side(session, model)

    def score(users: np.ndarray, items: np.ndarray) -> np.ndarray:
        users, items = np.asarray(users, np.int32), np.asarray(items, np.int64)
        distinct, inverse = np.unique(users, return_inverse=True)
        vectors, rows = _user_vectors(session, model, distinct, item_vectors.shape[1])
        logits = np.empty(users.size, np.float32)
        for lo in range(0, users.size, _SCORE_BATCH):
            u, it = inverse[lo : lo + _SCORE_BATCH], items[lo : lo + _SCORE_BATCH]
            block = np.einsum("nd,nd->n", vectors[u], item_vectors[it]) + item_bias[it]
            if rows is not None:
                in_history = (rows[u] == it[:, None]).any(axis=1)
                if in_history.any():
                    block[in_history] = score_pairs(
                        session, model, distinct[u[in_history]], it[in_history],
                        logits=True, history=rows[u[in_history]],
                    )  # fmt: skip
            logits[lo : lo + u.size] = block
        return _sigmoid(np, logits)

    return score


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
