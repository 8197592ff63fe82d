"""A sequence-aware FISM: the user's history weighted by recency, plus their last items.

score(u, i) = (p_u + sum_{j != i} w_uj y_j + sum_k seq_decay^k z_{prev_k(u, i)}) . q_i + b_i

- Long-term part (FISM with recency): w_uj = long_decay^rank_uj / (sum_j long_decay^rank_uj)^alpha
  over the user's history (rank 0 = their latest item); long_decay 1 is plain FISM.
- Transition part (FPMC-like): prev_k(u, i) is the k-th item before the scored one in the user's
  time-ordered history, k < seq_length. For a trained-on positive that is what preceded it; for
  any other item (every candidate at serving time) it is the user's k-th latest item, which is
  where the held-out item of a leave-one-out split follows on.

The scored item is always left out of its own history (as in `fism`). Everything the scores
need is in non-trainable tables in the graph, so an export serves with user_idx/item_idx alone;
the trainer fills them from the positives it trains on, in timestamp order
(`ModelGraph.load_history` -> `sequence_tables`), never from held-out items.
"""

from __future__ import annotations

import numpy as np

import training.graph as ts
from training.models.base import ModelSpec, register
from training.models.layers import embedding

__all__ = [
    "SEQFISM",
    "USER_RECENCY",
    "USER_SEQUENCE",
    "USER_SEQUENCE_ITEMS",
    "USER_SEQUENCE_VALID",
    "sequence_positions",
    "sequence_table_shapes",
    "sequence_tables",
]

# The non-trainable tables (all indexed by user_idx in the first axis):
USER_RECENCY = "seqfism/recency"  # [n_users, n_items] w_uj above
USER_SEQUENCE = "seqfism/position"  # [n_users, n_items] 1 = latest item, 2 = the one before..
USER_SEQUENCE_ITEMS = "seqfism/sequence"  # [n_users, n_items + L] item_idx newest first, 0-padded
USER_SEQUENCE_VALID = "seqfism/sequence_valid"  # same shape: 1 where a real item is, else 0
SEQUENCE_TABLES = (USER_RECENCY, USER_SEQUENCE, USER_SEQUENCE_ITEMS, USER_SEQUENCE_VALID)


def _check_params(params) -> None:
    if not 0.0 < float(params["long_decay"]) <= 1.0:
        raise ValueError(f"model.params.long_decay: {params['long_decay']} is not in (0, 1]")
    if not 0.0 < float(params["seq_decay"]) <= 1.0:
        raise ValueError(f"model.params.seq_decay: {params['seq_decay']} is not in (0, 1]")
    if int(params["seq_length"]) < 0:
        raise ValueError(f"model.params.seq_length: {params['seq_length']} is below 0")


def sequence_table_shapes(n_users: int, n_items: int, seq_length: int) -> dict[str, tuple]:
    """Shape and dtype of each table; the sequence rows leave room for a window past the end."""
    width = n_items + seq_length
    return {
        USER_RECENCY: ((n_users, n_items), np.float32),
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
    shapes = sequence_table_shapes(n_users, n_items, int(params["seq_length"]))
    out = {name: np.zeros(shape, dtype) for name, (shape, dtype) in shapes.items()}
    out[USER_SEQUENCE] = positions
    u, j = np.nonzero(positions)
    rank = positions[u, j] - 1  # 0 = latest
    out[USER_SEQUENCE_ITEMS][u, rank] = j
    out[USER_SEQUENCE_VALID][u, rank] = 1.0
    weight = np.power(float(params["long_decay"]), rank.astype(np.float64))
    total = np.bincount(u, weights=weight, minlength=n_users)
    weight = weight * np.power(np.maximum(total[u], 1e-12), -float(params["alpha"]))
    out[USER_RECENCY][u, j] = weight.astype(np.float32)
    return out


def _build_seqfism(ctx, params, user_idx, item_idx, rng):
    factors = int(params["factors"])
    seq_decay, seq_length = float(params["seq_decay"]), int(params["seq_length"])
    _check_params(params)
    tables = {
        name: ts.Variable(np.zeros(shape, dtype), name=name, trainable=False)
        for name, (shape, dtype) in sequence_table_shapes(
            ctx.n_users, ctx.n_items, seq_length
        ).items()
    }
    y = embedding("seqfism/history_item", ctx.n_items, factors, rng)
    p = ts.embedding_lookup(embedding("seqfism/user", ctx.n_users, factors, rng), user_idx)
    q = ts.embedding_lookup(embedding("seqfism/item", ctx.n_items, factors, rng), item_idx)
    # Long-term part, as in `fism` but recency-weighted, with the scored item left out.
    recency = tables[USER_RECENCY]
    flat = ts.add(ts.multiply(user_idx, ctx.n_items), item_idx)
    own = ts.reshape(ts.gather(ts.reshape(recency, [-1]), flat), [-1, 1])
    long_term = ts.subtract(
        ts.matmul(ts.embedding_lookup(recency, user_idx), y),
        ts.multiply(own, ts.embedding_lookup(y, item_idx)),
    )
    user_vec = ts.add(p, long_term)
    regularised = [p, q, long_term]
    if seq_length > 0:
        # Transition part: the seq_length items just before the scored one in the user's
        # newest-first sequence. The scored item sits at index s - 1 (s = its position, 0 for
        # an item outside the history), so its predecessors are at s, s + 1, ...
        width = tables[USER_SEQUENCE_ITEMS].shape[1]
        position = ts.gather(ts.reshape(tables[USER_SEQUENCE], [-1]), flat)
        base = ts.add(ts.multiply(user_idx, width), position)
        seq_items = ts.reshape(tables[USER_SEQUENCE_ITEMS], [-1])
        seq_valid = ts.reshape(tables[USER_SEQUENCE_VALID], [-1])
        z = embedding("seqfism/previous_item", ctx.n_items, factors, rng)
        seq_term = None
        for k in range(seq_length):
            at = ts.add(base, k)
            weight = ts.multiply(ts.reshape(ts.gather(seq_valid, at), [-1, 1]), seq_decay**k)
            term = ts.multiply(ts.embedding_lookup(z, ts.gather(seq_items, at)), weight)
            seq_term = term if seq_term is None else ts.add(seq_term, term)
        user_vec = ts.add(user_vec, seq_term)
        regularised.append(seq_term)
    logit = ts.reduce_sum(ts.multiply(user_vec, q), axis=1)
    bias = ts.Variable(np.zeros((ctx.n_items, 1), np.float32), name="seqfism/item_bias")
    logit = ts.add(logit, ts.reshape(ts.embedding_lookup(bias, item_idx), [-1]))
    return logit, regularised, []


SEQFISM = register(
    ModelSpec(
        "seqfism",
        {
            "factors": 32,
            "alpha": 1.0,
            "long_decay": 0.9,
            "seq_decay": 0.7,
            "seq_length": 5,
        },
        _build_seqfism,
        "FISM over a recency-weighted history plus the user's last items (FPMC-style), "
        "from a time-ordered history table",
    )
)
