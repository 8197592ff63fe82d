"""Building blocks shared by the models: embeddings, dense layers and towers, all `ts` nodes."""

from __future__ import annotations

import numpy as np

import training.graph as ts

__all__ = ["dense", "embedding", "embedding_penalty", "mlp_tower", "output_layer"]


def embedding(name: str, rows: int, dim: int, rng: np.random.Generator, std: float = 0.01):
    """A trainable [rows, dim] table, N(0, std) as in the NCF reference implementation."""
    return ts.Variable(rng.normal(0.0, std, (rows, dim)).astype(np.float32), name=name)


def dense(x, fan_in: int, fan_out: int, name: str, rng, activation: str | None = "relu"):
    """x @ W + b with Glorot-uniform W; `activation` is "relu", "sigmoid" or None."""
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    w = ts.Variable(
        rng.uniform(-limit, limit, (fan_in, fan_out)).astype(np.float32), name=f"{name}/w"
    )
    b = ts.Variable(np.zeros(fan_out, np.float32), name=f"{name}/b")
    out = ts.add(ts.matmul(x, w), b)
    if activation == "relu":
        return ts.relu(out)
    if activation == "sigmoid":
        return ts.sigmoid(out)
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
    w = ts.Variable(w0, name=f"{name}/w")
    b = ts.Variable(np.zeros(1, np.float32), name=f"{name}/b")
    return ts.reshape(ts.add(ts.matmul(x, w), b), [-1])


def embedding_penalty(rows: list) -> object:
    """Mean over the batch of half the squared norm of the looked-up rows.

    Regularising only the rows a batch touches keeps the embedding updates row-sparse; summed
    over an epoch it weighs each row by its frequency, which is the usual choice for NCF models.
    """
    total = None
    for r in rows:
        term = ts.reduce_mean(ts.reduce_sum(ts.square(r), axis=1))
        total = term if total is None else ts.add(total, term)
    return ts.multiply(total, 0.5)
