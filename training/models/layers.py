"""Building blocks shared by the models: embeddings, dense layers and towers, all engine nodes."""

from __future__ import annotations

import numpy as np

import engine as tf

__all__ = ["dense", "embedding", "embedding_penalty", "mlp_tower", "output_layer"]


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
