"""A sequence-aware FISM: the items around the scored one in the user's time-ordered history.

score(u, i) = (p_u + sum_d a_d y_{seq(u, i, d)} / (sum_d a_d)^alpha
                   + sum_{d=1..L} c_d z_{seq(u, i, d)}) . q_i + b_i

seq(u, i, d) is the item d places older (d > 0) or newer (d < 0) than the scored item in the
user's history; an item outside the history (every candidate at serving time) sits just after
the user's latest item, so for it seq(u, i, d) is the user's d-th latest item.

- Long-term part (FISM over a window): a_d = long_decay^(|d| - 1) for 0 < |d| <= window and
  a real item there. A trained-on positive is explained by what the user consumed around it in
  time; a candidate by the user's latest items, most recent first.
- Transition part (FPMC-like): c_d = seq_decay^(d - 1) over the seq_length items just before
  the scored one, with their own embeddings z: what follows what.

The history is an INPUT, the graph holds none: `history` (base.HISTORY, [rows, L]) holds the
items older than the scored item's place, nearest (newest) first, and HISTORY_AFTER the items
newer than it, nearest (oldest) first. At serving a candidate sits after the user's newest
item: `history` is the user's newest L items (what the version exports, or what a client
sends) and HISTORY_AFTER keeps its default, nothing. In training the trainer cuts both windows
per row from the user's whole time-ordered training history (`ModelGraph.feed_batch`), never
from held-out items, so a positive deep in a long history still reads its own context.

Training scores a sampled negative in the context of the positive it was drawn for
(`negatives_in_context`, the default): both read the windows around the positive's place, so
the model learns which item fits a given context, as word2vec's negative sampling does. Scored
in the latest items' context instead (the negative's own place: it is not in the history), a
negative is told apart from its positive partly by the context, not the item; on ml100k-ncf's
validation split the in-context negatives raised NDCG@10 from 0.468 to 0.50
(bench/results/quality.md).

The scored item is never in its own window (as in `fism`, which leaves it out): training's
windows exclude the row's place, and the graph leaves the scored item out of the windows it is
given (`history_sum`), so a candidate the user has seen reads the user's latest items but
itself. (The in-graph tables this replaced read a seen candidate's window at its own place.)
"""

from __future__ import annotations

import numpy as np

import engine as tf
from training.models.base import (
    Factored,
    HistoryInput,
    ModelSpec,
    history_after_input,
    history_input,
    no_item_index,
    register,
    whole_table,
)
from training.models.layers import embedding, first_columns, history_sum

__all__ = ["SEQFISM"]


def _check_params(params) -> None:
    if not 0.0 < float(params["long_decay"]) <= 1.0:
        raise ValueError(f"model.params.long_decay: {params['long_decay']} is not in (0, 1]")
    if not 0.0 < float(params["seq_decay"]) <= 1.0:
        raise ValueError(f"model.params.seq_decay: {params['seq_decay']} is not in (0, 1]")
    if int(params["seq_length"]) < 0:
        raise ValueError(f"model.params.seq_length: {params['seq_length']} is below 0")
    if int(params["window"]) < 1:
        raise ValueError(f"model.params.window: {params['window']} is below 1")


def _window(params) -> int:
    return int(params["window"])


def _anchored(params) -> bool:
    return bool(params["negatives_in_context"])


def _build_seqfism(ctx, params, user_idx, item_idx, rng):
    _check_params(params)
    factors, window = int(params["factors"]), int(params["window"])
    seq_length, length = int(params["seq_length"]), ctx.history_length
    if max(window, seq_length) > length:
        raise ValueError(
            f"model.params.window {window} / seq_length {seq_length}: above the history input's "
            f"{length} items (features.history_length); raise it or shorten the windows"
        )
    history = history_input(ctx)  # older than the scored item, nearest first
    after = history_after_input(window)  # newer than it, nearest first (none at serving)

    def normalised(vec, total, alpha):
        # (sum a_d)^-alpha, and 0 for an empty window (the 1e-12 keeps the log finite).
        return tf.multiply(vec, tf.exp(tf.multiply(tf.log(tf.add(total, 1e-12)), -alpha)))

    y = embedding("seqfism/history_item", ctx.n_items, factors, rng)
    p_table = embedding("seqfism/user", ctx.n_users, factors, rng)
    q_table = embedding("seqfism/item", ctx.n_items, factors, rng)
    z = embedding("seqfism/previous_item", ctx.n_items, factors, rng) if seq_length else None
    long_weights = float(params["long_decay"]) ** np.arange(window, dtype=np.float64)
    seq_weights = float(params["seq_decay"]) ** np.arange(seq_length, dtype=np.float64)
    older = first_columns(history, window, length)
    before = first_columns(history, seq_length, length) if seq_length else None

    def user_vector(scored):
        # p_u + long-term + transition parts, each window leaving `scored` out (its own term).
        # The older and newer windows are summed apart: either may be one row broadcast.
        vec_old, total_old, _ = history_sum(y, older, long_weights, scored)
        vec_new, total_new, _ = history_sum(y, after, long_weights, scored)
        long_term = normalised(
            tf.add(vec_old, vec_new), tf.add(total_old, total_new), float(params["alpha"])
        )
        p = tf.embedding_lookup(p_table, user_idx)
        vec, parts = tf.add(p, long_term), [p, long_term]
        if seq_length > 0:
            seq_term, _, _ = history_sum(z, before, seq_weights, scored)
            vec = tf.add(vec, seq_term)
            parts.append(seq_term)
        return vec, parts

    user_vec, (p, long_term, *seq) = user_vector(item_idx)
    q = tf.embedding_lookup(q_table, item_idx)
    regularised = [p, q, long_term, *seq]
    logit = tf.reduce_sum(tf.multiply(user_vec, q), axis=1)
    bias = tf.Variable(np.zeros((ctx.n_items, 1), np.float32), name="seqfism/item_bias")
    logit = tf.add(logit, tf.reshape(tf.embedding_lookup(bias, item_idx), [-1]))
    # The same vector with no item left out is the user's alone, and equals the pairwise one
    # for every item in neither window (the normaliser then loses nothing either): exact there,
    # and `Factored` says how the items in the fed windows are scored.
    user_side = user_vector(no_item_index(user_idx))[0]
    factored = Factored(user_side, whole_table(q_table), tf.reshape(whole_table(bias), [-1]))
    return logit, regularised, [], factored


SEQFISM = register(
    ModelSpec(
        "seqfism",
        # Chosen on ml100k-ncf's validation split (bench/results/quality.md).
        {
            "factors": 32,
            "alpha": 1.0,
            "window": 20,
            "long_decay": 0.8,
            "seq_decay": 0.8,
            "seq_length": 0,  # the transition part lost on validation; opt in with > 0
            "negatives_in_context": True,
        },
        _build_seqfism,
        "FISM over a decay-weighted window around the scored item's place in the user's "
        "time-ordered history, optionally plus the items just before it (FPMC-style)",
        HistoryInput(after=_window, anchored=_anchored),
    )
)
