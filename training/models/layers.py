"""Building blocks shared by the models: embeddings, dense layers and towers, all engine nodes."""

from __future__ import annotations

import numpy as np

import engine as tf

__all__ = [
    "dense",
    "embedding",
    "embedding_penalty",
    "first_columns",
    "history_sum",
    "mlp_tower",
    "output_layer",
]


def embedding(name: str, rows: int, dim: int, rng: np.random.Generator, std: float = 0.01):
    """A trainable [rows, dim] table, N(0, std) as in the NCF reference implementation."""
    return tf.Variable(rng.normal(0.0, std, (rows, dim)).astype(np.float32), name=name)


def dense(x, fan_in: int, fan_out: int, name: str, rng, activation: str | None = "relu"):
    """x @ W + b with Glorot-uniform W; `activation` is "relu", "sigmoid" or None."""
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    w = tf.Variable(
        rng.uniform(-limit, limit, (fan_in, fan_out)).astype(np.float32), name=f"{name}/w"
    )
    b = tf.Variable(np.zeros(fan_out, np.float32), name=f"{name}/b")
    out = tf.add(tf.matmul(x, w), b)
    if activation == "relu":
        return tf.relu(out)
    if activation == "sigmoid":
        return tf.sigmoid(out)
    return out


def mlp_tower(x, fan_in: int, units: list[int], name: str, rng):
    """ReLU layers of the given widths; returns (output, its width)."""
    width = fan_in
    for k, size in enumerate(units):
        x = dense(x, width, int(size), f"{name}/layer{k}", rng)
        width = int(size)
    return x, width


def output_layer(x, fan_in: int, name: str, rng, ones: bool = False):
    """The [batch] logit; `ones` starts it as a plain sum (GMF then starts as plain MF)."""
    if ones:
        w0 = np.ones((fan_in, 1), np.float32)
    else:
        limit = np.sqrt(6.0 / (fan_in + 1))
        w0 = rng.uniform(-limit, limit, (fan_in, 1)).astype(np.float32)
    w = tf.Variable(w0, name=f"{name}/w")
    b = tf.Variable(np.zeros(1, np.float32), name=f"{name}/b")
    return tf.reshape(tf.add(tf.matmul(x, w), b), [-1])


def embedding_penalty(rows: list) -> object:
    """Mean over the batch of half the squared norm of the looked-up rows.

    Regularising only the rows a batch touches keeps the embedding updates row-sparse; summed
    over an epoch it weighs each row by its frequency, which is the usual choice for NCF models.
    """
    total = None
    for r in rows:
        term = tf.reduce_mean(tf.reduce_sum(tf.square(r), axis=1))
        total = term if total is None else tf.add(total, term)
    return tf.multiply(total, 0.5)


def first_columns(x, k: int, width: int):
    """x[:, :k] of a [rows, width] node (x itself when k == width)."""
    if k == width:
        return x
    picked = tf.gather(tf.transpose(x, [1, 0]), tf.constant(np.arange(k, dtype=np.int32)))
    return tf.transpose(picked, [1, 0])


def history_sum(table, history, weights: np.ndarray, item_idx):
    """The weighted sum of `table`'s rows at a history's items, the scored item left out.

    history [rows, W] int32 (0 = padding; rows = the batch, or 1 broadcast against every
    scored item), weights [W] per column, item_idx [n]. With w_k = weights[k] where history
    holds a real item, else 0, and own = sum_k w_k [h_k == i]:
    returns (sum_k w_k table[h_k] - own table[i]  [n, d],  sum_k w_k - own  [n, 1],  own [n, 1]).
    The history's part is computed once per history row; only `own` is per scored item, so one
    user's [1, W] history against n candidates costs O(W d + n W + n d), not O(n W d).
    """
    width = int(np.asarray(weights).size)
    # 0/1 indicators from integer indices (the engine has no comparison ops): an index is >= 0,
    # and a difference of two indices is 0 or at least 1 in magnitude, exactly, as float32 too.
    real = tf.clip_by_value(tf.cast(history, np.float32), 0.0, 1.0)
    w = tf.multiply(real, tf.constant(np.asarray([weights], np.float32)))  # [rows, W]
    rows = tf.embedding_lookup(table, history)  # [rows, W, d]
    vec = tf.reduce_sum(tf.multiply(rows, tf.reshape(w, [-1, width, 1])), axis=1)
    total = tf.reduce_sum(w, axis=1, keepdims=True)
    gap = tf.cast(tf.subtract(history, tf.reshape(item_idx, [-1, 1])), np.float32)
    same = tf.subtract(1.0, tf.clip_by_value(tf.square(gap), 0.0, 1.0))  # [n, W]
    own = tf.reduce_sum(tf.multiply(same, w), axis=1, keepdims=True)
    vec = tf.subtract(vec, tf.multiply(own, tf.embedding_lookup(table, item_idx)))
    return vec, tf.subtract(total, own), own
