"""An asymmetric ("FISM" / SVD++-style) factor model.

The user's vector is their own embedding plus a normalised sum of embeddings of the items in
their history: score(u, i) = (p_u + |N_u|^-alpha * sum_{j in N_u, j != i} y_j) . q_i + b_i.
Users are then described by what they consumed, which generalises well to the one held-out
item of a leave-one-out split.

N_u is the `history` input (base.HISTORY): the user's newest L training items, fed by the
trainer from the features stage's `history/` table (never held-out items) and at serving from
the history the version exports; the graph holds no per-user table. An empty history leaves
p_u alone. The scored item is left out of its own user's history in the graph (`history_sum`),
so a candidate the user has seen is scored as at training time.
"""

from __future__ import annotations

import numpy as np

import engine as tf
from training.models.base import (
    Factored,
    HistoryInput,
    ModelSpec,
    graph_variable,
    history_input,
    no_item_index,
    register,
    whole_table,
)
from training.models.layers import embedding, history_sum, output_layer

__all__ = ["FISM"]


def _norm(count, alpha: float):
    # |N_u|^-alpha; an empty history has nothing to weigh (clipped to 1: finite, and 0 * 1).
    return tf.exp(tf.multiply(tf.log(tf.clip_by_value(count, 1.0, 1e30)), -alpha))


def _fism_factors(ctx, alpha: float, user_idx, history) -> Factored:
    # logit = ((p_u + norm_u S_u) * q_i) . h + b + b_i with S_u the history sum: user vector
    # (p_u + norm_u S_u) * h. |N_u| (so norm_u) counts the scored item too, so it is the user's
    # alone; only the "j != i" exclusion depends on i, and it removes nothing for an item not
    # in the history: the form is exact for those (`Factored` says how the others are scored).
    y = graph_variable("fism/history_item")
    p = tf.embedding_lookup(graph_variable("fism/user"), user_idx)
    ones = np.ones(ctx.history_length, np.float32)
    summed, count, _ = history_sum(y, history, ones, no_item_index(user_idx))
    h = tf.reshape(graph_variable("fism/out/w"), [1, -1])
    user = tf.multiply(tf.add(p, tf.multiply(summed, _norm(count, alpha))), h)
    bias = tf.reshape(whole_table(graph_variable("fism/item_bias")), [-1])
    bias = tf.add(bias, graph_variable("fism/out/b"))
    return Factored(user, whole_table(graph_variable("fism/item")), bias)


def _build_fism(ctx, params, user_idx, item_idx, rng):
    factors, alpha = int(params["factors"]), float(params["alpha"])
    history = history_input(ctx)
    y = embedding("fism/history_item", ctx.n_items, factors, rng)
    p = tf.embedding_lookup(embedding("fism/user", ctx.n_users, factors, rng), user_idx)
    q = tf.embedding_lookup(embedding("fism/item", ctx.n_items, factors, rng), item_idx)
    # Leave the scored item out of its own user's history, as FISM does: otherwise a trained-on
    # positive is explained by y_i . q_i alone and the model learns "seen before" instead of
    # what the history says about other items. |N_u| still counts it (the original formula).
    others, rest, own = history_sum(y, history, np.ones(ctx.history_length, np.float32), item_idx)
    summed = tf.multiply(others, _norm(tf.add(rest, own), alpha))
    x = tf.multiply(tf.add(p, summed), q)
    logit = output_layer(x, factors, "fism/out", rng, ones=True)
    bias = tf.Variable(np.zeros((ctx.n_items, 1), np.float32), name="fism/item_bias")
    logit = tf.add(logit, tf.reshape(tf.embedding_lookup(bias, item_idx), [-1]))
    return logit, [p, q, summed], [], _fism_factors(ctx, alpha, user_idx, history)


FISM = register(
    ModelSpec(
        "fism",
        {"factors": 32, "alpha": 1.0},  # alpha 1 (mean) beat 0.5 on ml100k-ncf validation
        _build_fism,
        "user embedding plus normalised sum of history-item embeddings (FISM / SVD++ style)",
        HistoryInput(),
    )
)
