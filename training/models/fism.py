"""An asymmetric ("FISM" / SVD++-style) factor model.

The user's vector is their own embedding plus a normalised sum of embeddings of the items in
their history: score(u, i) = (p_u + |N_u|^-alpha * sum_{j in N_u, j != i} y_j) . q_i + b_i.
Users are then described by what they consumed, which generalises well to the one held-out
item of a leave-one-out split. The history is a non-trainable [n_users, n_items] weight table
in the graph (so an export serves it as it is); the trainer fills it from the positives being
trained on (`ModelGraph.load_history` -> `history_weights`), never from held-out items.
"""

from __future__ import annotations

import numpy as np

import engine as tf
from training.models.base import HistoryTables, ModelGraph, ModelSpec, register
from training.models.layers import embedding, output_layer

__all__ = ["FISM", "USER_HISTORY", "history_weights"]

# The non-trainable [n_users, n_items] history table: |N_u|^-alpha at the user's items.
USER_HISTORY = "user_history"


def history_weights(
    users: np.ndarray, items: np.ndarray, n_users: int, n_items: int, alpha: float
) -> np.ndarray:
    """The [n_users, n_items] table: |N_u|^-alpha where (u, j) is a positive, else 0."""
    table = np.zeros((n_users, n_items), np.float32)
    table[users, items] = 1.0
    counts = table.sum(axis=1, keepdims=True)
    return np.where(table > 0, np.power(np.maximum(counts, 1.0), -alpha), 0.0).astype(np.float32)


def _fill_history(
    model: ModelGraph,
    session: tf.Session,
    users: np.ndarray,
    items: np.ndarray,
    order: np.ndarray | None,
) -> None:
    # FISM's history is a set: `order` (None, as it does not ask for it) is not read.
    table = model.variable(USER_HISTORY)
    n_users, n_items = table.shape
    alpha = float(model.params["alpha"])
    session.set_value(table, history_weights(users, items, n_users, n_items, alpha))


def _build_fism(ctx, params, user_idx, item_idx, rng):
    factors = int(params["factors"])
    history = tf.Variable(
        np.zeros((ctx.n_users, ctx.n_items), np.float32), name=USER_HISTORY, trainable=False
    )
    y = embedding("fism/history_item", ctx.n_items, factors, rng)
    p = tf.embedding_lookup(embedding("fism/user", ctx.n_users, factors, rng), user_idx)
    q = tf.embedding_lookup(embedding("fism/item", ctx.n_items, factors, rng), item_idx)
    summed = tf.matmul(tf.embedding_lookup(history, user_idx), y)
    # Leave the scored item out of its own user's history, as FISM does: otherwise a trained-on
    # positive is explained by y_i . q_i alone and the model learns "seen before" instead of
    # what the history says about other items.
    flat = tf.add(tf.multiply(user_idx, ctx.n_items), item_idx)
    own = tf.reshape(tf.gather(tf.reshape(history, [-1]), flat), [-1, 1])
    summed = tf.subtract(summed, tf.multiply(own, tf.embedding_lookup(y, item_idx)))
    x = tf.multiply(tf.add(p, summed), q)
    logit = output_layer(x, factors, "fism/out", rng, ones=True)
    bias = tf.Variable(np.zeros((ctx.n_items, 1), np.float32), name="fism/item_bias")
    logit = tf.add(logit, tf.reshape(tf.embedding_lookup(bias, item_idx), [-1]))
    return logit, [p, q, summed], []


FISM = register(
    ModelSpec(
        "fism",
        {"factors": 32, "alpha": 1.0},  # alpha 1 (mean) beat 0.5 on ml100k-ncf validation
        _build_fism,
        "user embedding plus normalised sum of history-item embeddings (FISM / SVD++ style)",
        HistoryTables(_fill_history),
    )
)
