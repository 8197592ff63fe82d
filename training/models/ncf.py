"""GMF, NCF-MLP and NeuMF (He et al., "Neural Collaborative Filtering", WWW 2017)."""

from __future__ import annotations

import numpy as np

import engine as tf
from training.models.base import Factored, ModelSpec, graph_variable, register, whole_table
from training.models.layers import embedding, mlp_tower, output_layer

__all__ = ["GMF", "MLP", "NEUMF"]


def _gmf_part(ctx, factors, user_idx, item_idx, rng, prefix):
    p = tf.embedding_lookup(embedding(f"{prefix}/user", ctx.n_users, factors, rng), user_idx)
    q = tf.embedding_lookup(embedding(f"{prefix}/item", ctx.n_items, factors, rng), item_idx)
    return tf.multiply(p, q), [p, q]


def _mlp_part(ctx, params, user_idx, item_idx, rng, prefix):
    dim = int(params["mlp_embedding"])
    p = tf.embedding_lookup(embedding(f"{prefix}/user", ctx.n_users, dim, rng), user_idx)
    q = tf.embedding_lookup(embedding(f"{prefix}/item", ctx.n_items, dim, rng), item_idx)
    x = tf.concat([p, q], axis=1)
    out, width = mlp_tower(x, 2 * dim, list(params["layers"]), f"{prefix}/tower", rng)
    return out, width, [p, q]


def _with_item_bias(logit, ctx, params, item_idx, prefix):
    # An unregularised per-item offset: item popularity no longer has to be squeezed into
    # the (L2-penalised) factors, which matters when negatives are sampled uniformly.
    if not params.get("item_bias"):
        return logit
    table = tf.Variable(np.zeros((ctx.n_items, 1), np.float32), name=f"{prefix}/item_bias")
    return tf.add(logit, tf.reshape(tf.embedding_lookup(table, item_idx), [-1]))


def _gmf_factors(ctx, params, user_idx) -> Factored:
    # logit = (p_u * q_i) . h + b + b_i = (p_u * h) . q_i + (b + b_i): the output weights h
    # fold into the user side, the output bias into the item bias.
    h = tf.reshape(graph_variable("gmf/out/w"), [1, -1])
    user = tf.multiply(tf.embedding_lookup(graph_variable("gmf/user"), user_idx), h)
    bias = tf.add(tf.constant(np.zeros(ctx.n_items, np.float32)), graph_variable("gmf/out/b"))
    if params.get("item_bias"):
        bias = tf.add(bias, tf.reshape(whole_table(graph_variable("gmf/item_bias")), [-1]))
    return Factored(user, whole_table(graph_variable("gmf/item")), bias)


def _build_gmf(ctx, params, user_idx, item_idx, rng):
    factors = int(params["factors"])
    x, rows = _gmf_part(ctx, factors, user_idx, item_idx, rng, "gmf")
    logit = output_layer(x, factors, "gmf/out", rng, ones=True)
    logit = _with_item_bias(logit, ctx, params, item_idx, "gmf")
    return logit, rows, [], _gmf_factors(ctx, params, user_idx)


def _build_mlp(ctx, params, user_idx, item_idx, rng):
    out, width, rows = _mlp_part(ctx, params, user_idx, item_idx, rng, "mlp")
    return output_layer(out, width, "mlp/out", rng), rows, []


def _build_neumf(ctx, params, user_idx, item_idx, rng):
    factors = int(params["factors"])
    g, g_rows = _gmf_part(ctx, factors, user_idx, item_idx, rng, "gmf")
    m, width, m_rows = _mlp_part(ctx, params, user_idx, item_idx, rng, "mlp")
    x = tf.concat([g, m], axis=1)
    logit = output_layer(x, factors + width, "neumf/out", rng)
    return _with_item_bias(logit, ctx, params, item_idx, "neumf"), g_rows + m_rows, []


GMF = register(
    ModelSpec(
        "gmf", {"factors": 64, "item_bias": False}, _build_gmf, "generalised matrix factorisation"
    )
)
MLP = register(
    ModelSpec(
        "mlp",
        {"mlp_embedding": 32, "layers": [64, 32, 16]},
        _build_mlp,
        "NCF multi-layer perceptron over concatenated embeddings",
    )
)
NEUMF = register(
    ModelSpec(
        "neumf",
        {"factors": 64, "mlp_embedding": 32, "layers": [64, 32, 16], "item_bias": False},
        _build_neumf,
        "GMF and MLP branches fused before the output layer",
    )
)
