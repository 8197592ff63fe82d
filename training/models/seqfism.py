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

Training scores a sampled negative in the context of the positive it was drawn for
(`negatives_in_context`, the default): both read the window around the positive's place, so the
model learns which item fits a given context, as word2vec's negative sampling does. Scored in
the latest items' context instead (the negative's own place: it is not in the history), a
negative is told apart from its positive partly by the context, not the item; on ml100k-ncf's
validation split the in-context negatives raised NDCG@10 from 0.468 to 0.50
(bench/results/quality.md). The trainer feeds each row's anchor (`Batch.anchors`) to the
ANCHOR_ITEM node; serving feeds user_idx/item_idx alone, so a candidate reads the latest items.

The scored item is never in its own window (as in `fism`, which leaves it out). Everything the
scores need is in non-trainable tables in the graph, so an export serves with user_idx/item_idx
alone; the trainer fills them from the positives it trains on, in timestamp order
(`ModelGraph.load_history` -> `sequence_tables`), never from held-out items.
"""

from __future__ import annotations

import numpy as np

import engine as tf
from training.models.base import ANCHOR_ITEM, HistoryTables, ModelGraph, ModelSpec, register
from training.models.layers import embedding

__all__ = [
    "SEQFISM",
    "USER_SEQUENCE",
    "USER_SEQUENCE_ITEMS",
    "USER_SEQUENCE_VALID",
    "sequence_positions",
    "sequence_table_shapes",
    "sequence_tables",
]

# The non-trainable tables, indexed by user_idx in the first axis. A sequence row holds the
# user's items newest first from column `pad` on, with `pad` empty columns on each side so every
# window stays inside its own row (pad = max(window, seq_length)).
USER_SEQUENCE = "seqfism/position"  # [n_users, n_items] 1 = latest item, 2 = the one before..
USER_SEQUENCE_ITEMS = "seqfism/sequence"  # [n_users, n_items + 2 pad] item_idx, 0 where empty
USER_SEQUENCE_VALID = "seqfism/sequence_valid"  # same shape: 1 where a real item is, else 0


def _check_params(params) -> None:
    if not 0.0 < float(params["long_decay"]) <= 1.0:
        raise ValueError(f"model.params.long_decay: {params['long_decay']} is not in (0, 1]")
    if not 0.0 < float(params["seq_decay"]) <= 1.0:
        raise ValueError(f"model.params.seq_decay: {params['seq_decay']} is not in (0, 1]")
    if int(params["seq_length"]) < 0:
        raise ValueError(f"model.params.seq_length: {params['seq_length']} is below 0")
    if int(params["window"]) < 1:
        raise ValueError(f"model.params.window: {params['window']} is below 1")


def _pad(params) -> int:
    return max(int(params["window"]), int(params["seq_length"]))


def sequence_table_shapes(n_users: int, n_items: int, params: dict) -> dict[str, tuple]:
    """Shape and dtype of each table."""
    width = n_items + 2 * _pad(params)
    return {
        USER_SEQUENCE: ((n_users, n_items), np.int32),
        USER_SEQUENCE_ITEMS: ((n_users, width), np.int32),
        USER_SEQUENCE_VALID: ((n_users, width), np.float32),
    }


def sequence_positions(
    users: np.ndarray, items: np.ndarray, order: np.ndarray, n_users: int, n_items: int
) -> np.ndarray:
    """The [n_users, n_items] int32 table: 1 + the number of the user's items newer than j, else 0.

    `order` ranks each (user, item) pair in time (larger = newer, e.g. timestamps); ties are
    broken by the larger item index being newer, the features stage's split rule. A repeated
    (user, item) pair keeps its newest occurrence.
    """
    users, items = np.asarray(users, np.int64), np.asarray(items, np.int64)
    order = np.asarray(order)
    if not users.size == items.size == order.size:
        raise ValueError(
            f"sequence_positions: users, items and order differ in length "
            f"({users.size}, {items.size}, {order.size})"
        )
    # ~x reverses an integer order without the overflow of -x (int64 nanosecond timestamps).
    newest_first = ~order if np.issubdtype(order.dtype, np.integer) else -order
    idx = np.lexsort((-items, newest_first, users))
    users, items = users[idx], items[idx]
    key = users * n_items + items
    _, first = np.unique(key, return_index=True)
    keep = np.zeros(key.size, bool)
    keep[first] = True  # the newest occurrence of a repeated pair comes first
    users, items = users[keep], items[keep]
    starts = np.searchsorted(users, users, side="left")
    table = np.zeros((n_users, n_items), np.int32)
    table[users, items] = (np.arange(users.size) - starts + 1).astype(np.int32)
    return table


def sequence_tables(
    users: np.ndarray,
    items: np.ndarray,
    order: np.ndarray,
    n_users: int,
    n_items: int,
    params: dict,
) -> dict[str, np.ndarray]:
    """Every table the model reads, filled from time-ordered positive (user, item) pairs."""
    _check_params(params)
    positions = sequence_positions(users, items, order, n_users, n_items)
    shapes = sequence_table_shapes(n_users, n_items, params)
    out = {name: np.zeros(shape, dtype) for name, (shape, dtype) in shapes.items()}
    out[USER_SEQUENCE] = positions
    u, j = np.nonzero(positions)
    column = positions[u, j] - 1 + _pad(params)  # the latest item at column pad
    out[USER_SEQUENCE_ITEMS][u, column] = j
    out[USER_SEQUENCE_VALID][u, column] = 1.0
    return out


def _fill_sequence_tables(
    model: ModelGraph,
    session: tf.Session,
    users: np.ndarray,
    items: np.ndarray,
    order: np.ndarray | None,
) -> None:
    # The contract passes `order` to a model whose history needs_order, and refuses without it.
    assert order is not None
    n_users, n_items = model.variable(USER_SEQUENCE).shape
    tables = sequence_tables(users, items, order, n_users, n_items, model.params)
    for name, value in tables.items():
        session.set_value(model.variable(name), value)


def _build_seqfism(ctx, params, user_idx, item_idx, rng):
    _check_params(params)
    factors, pad, window = int(params["factors"]), _pad(params), int(params["window"])
    seq_length = int(params["seq_length"])
    shapes = sequence_table_shapes(ctx.n_users, ctx.n_items, params)
    tables = {
        name: tf.Variable(np.zeros(shape, dtype), name=name, trainable=False)
        for name, (shape, dtype) in shapes.items()
    }
    width = shapes[USER_SEQUENCE_ITEMS][0][1]
    seq_items = tf.reshape(tables[USER_SEQUENCE_ITEMS], [-1])
    seq_valid = tf.reshape(tables[USER_SEQUENCE_VALID], [-1])
    # The scored item's column: pad + s - 1, with s its position (0 outside the history).
    # Whose place gives the context: the scored item's, unless training feeds ANCHOR_ITEM (a
    # sampled negative then reads its positive's place; see the module docstring).
    anchor = tf.identity(item_idx, name=ANCHOR_ITEM) if params["negatives_in_context"] else item_idx
    flat = tf.add(tf.multiply(user_idx, ctx.n_items), anchor)
    position = tf.gather(tf.reshape(tables[USER_SEQUENCE], [-1]), flat)
    base = tf.add(tf.add(tf.multiply(user_idx, width), position), pad - 1)

    def window_sum(table, offsets, weights, alpha):
        at = tf.add(tf.reshape(base, [-1, 1]), tf.constant(np.asarray([offsets], np.int32)))
        w = tf.multiply(tf.gather(seq_valid, at), tf.constant(np.asarray([weights], np.float32)))
        if alpha:
            total = tf.reduce_sum(w, axis=1, keepdims=True)
            # (sum w)^-alpha, and 0 for an empty window (the 1e-12 keeps the log finite).
            w = tf.multiply(w, tf.exp(tf.multiply(tf.log(tf.add(total, 1e-12)), -alpha)))
        rows = tf.embedding_lookup(table, tf.gather(seq_items, at))
        return tf.reduce_sum(tf.multiply(rows, tf.reshape(w, [-1, len(offsets), 1])), axis=1)

    y = embedding("seqfism/history_item", ctx.n_items, factors, rng)
    p = tf.embedding_lookup(embedding("seqfism/user", ctx.n_users, factors, rng), user_idx)
    q = tf.embedding_lookup(embedding("seqfism/item", ctx.n_items, factors, rng), item_idx)
    distance = np.concatenate([np.arange(window, 0, -1), np.arange(1, window + 1)])
    offsets = np.concatenate([-np.arange(window, 0, -1), np.arange(1, window + 1)])
    long_weights = float(params["long_decay"]) ** (distance - 1.0)
    long_term = window_sum(y, offsets, long_weights, float(params["alpha"]))
    user_vec = tf.add(p, long_term)
    regularised = [p, q, long_term]
    if seq_length > 0:
        z = embedding("seqfism/previous_item", ctx.n_items, factors, rng)
        before = np.arange(1, seq_length + 1)
        seq_term = window_sum(z, before, float(params["seq_decay"]) ** (before - 1.0), 0.0)
        user_vec = tf.add(user_vec, seq_term)
        regularised.append(seq_term)
    logit = tf.reduce_sum(tf.multiply(user_vec, q), axis=1)
    bias = tf.Variable(np.zeros((ctx.n_items, 1), np.float32), name="seqfism/item_bias")
    logit = tf.add(logit, tf.reshape(tf.embedding_lookup(bias, item_idx), [-1]))
    return logit, regularised, []


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
        HistoryTables(_fill_sequence_tables, needs_order=True),
    )
)
