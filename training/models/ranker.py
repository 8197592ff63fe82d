"""The feature-rich ranker: id and profile embeddings plus dense features into an MLP.

Profile features are looked up INSIDE the graph: each profile column lives in a non-trainable
variable indexed by user_idx / item_idx, so serving feeds only the two index vectors (§4).
Variants: `deep` (MLP only), `wide_deep` (plus a linear part over the same fields, Cheng et
al. 2016) and `deepfm` (plus a factorisation machine over the field embeddings, Guo et al. 2017).
"""

from __future__ import annotations

import numpy as np

import engine as tf
from training.models.base import ModelSpec, register
from training.models.layers import dense, embedding, mlp_tower, output_layer

__all__ = ["DEEP", "DEEPFM", "WIDE_DEEP"]


def _fields(ctx, params, user_idx, item_idx, rng):
    """Per-field embeddings [batch, dim], dense inputs [batch, n] and declared inputs."""
    dim = int(params["embedding"])
    ids = {"user": user_idx, "item": item_idx}
    sizes = {"user": ctx.n_users, "item": ctx.n_items}
    fields = [
        (
            "user_id",
            tf.embedding_lookup(embedding("ranker/user_id", ctx.n_users, dim, rng), user_idx),
        ),
        (
            "item_id",
            tf.embedding_lookup(embedding("ranker/item_id", ctx.n_items, dim, rng), item_idx),
        ),
    ]
    wide = [("user_id", sizes["user"], user_idx), ("item_id", sizes["item"], item_idx)]
    dense_parts, dense_width, declared = [], 0, []
    for table, profile in (("user", ctx.user_profile), ("item", ctx.item_profile)):
        for name, values in sorted(profile.categorical.items()):
            vocab = int(values.max()) + 1
            spec = next(
                (f for f in ctx.features if f["name"] == name and f.get("table") == table), None
            )
            if spec is not None and spec.get("vocab_size"):
                vocab = max(vocab, int(spec["vocab_size"]))
            lookup = tf.Variable(
                values.astype(np.int32), name=f"profile/{table}/{name}", trainable=False
            )
            idx = tf.gather(lookup, ids[table])
            emb = embedding(f"ranker/{table}/{name}", vocab, dim, rng)
            fields.append((name, tf.embedding_lookup(emb, idx)))
            wide.append((f"{table}/{name}", vocab, idx))
            declared.append({"name": name, "dtype": "int32", "table": table})
        columns = [v.reshape(sizes[table], 1) for _, v in sorted(profile.dense.items())]
        columns += [v for _, v in sorted(profile.vector.items())]
        names = sorted(profile.dense) + sorted(profile.vector)
        if columns:
            matrix = np.concatenate(columns, axis=1).astype(np.float32)
            # Standardise once here so features on different scales train alike.
            mean, std = matrix.mean(axis=0), matrix.std(axis=0) + 1e-6
            matrix = (matrix - mean) / std
            table_var = tf.Variable(matrix, name=f"profile/{table}/dense", trainable=False)
            dense_parts.append(tf.gather(table_var, ids[table]))
            dense_width += matrix.shape[1]
            declared += [{"name": n, "dtype": "float32", "table": table} for n in names]
    return fields, wide, dense_parts, dense_width, declared


def _build(variant):
    def build(ctx, params, user_idx, item_idx, rng):
        dim = int(params["embedding"])
        fields, wide, dense_parts, dense_width, declared = _fields(
            ctx, params, user_idx, item_idx, rng
        )
        embs = [e for _, e in fields]
        x = tf.concat(embs + dense_parts, axis=1)
        deep, width = mlp_tower(
            x, dim * len(embs) + dense_width, list(params["layers"]), "ranker/deep", rng
        )
        logit = output_layer(deep, width, "ranker/out", rng)
        rows = list(embs)
        if variant == "wide_deep":
            for field, size, idx in wide:
                w = tf.Variable(np.zeros((size, 1), np.float32), name=f"ranker/wide/{field}")
                row = tf.embedding_lookup(w, idx)
                rows.append(row)
                logit = tf.add(logit, tf.reshape(row, [-1]))
            if dense_parts:
                lin = dense(
                    tf.concat(dense_parts, axis=1), dense_width, 1, "ranker/wide/dense", rng, None
                )
                logit = tf.add(logit, tf.reshape(lin, [-1]))
        elif variant == "deepfm":
            # FM second order: 0.5 * ((sum_f v_f)^2 - sum_f v_f^2), summed over the dimension.
            total = embs[0]
            squares = tf.square(embs[0])
            for e in embs[1:]:
                total = tf.add(total, e)
                squares = tf.add(squares, tf.square(e))
            fm = tf.multiply(tf.reduce_sum(tf.subtract(tf.square(total), squares), axis=1), 0.5)
            logit = tf.add(logit, fm)
        return logit, rows, declared

    return build


_DEFAULTS = {"embedding": 16, "layers": [64, 32]}
DEEP = register(ModelSpec("ranker", dict(_DEFAULTS), _build("deep"), "profile-feature MLP"))
WIDE_DEEP = register(ModelSpec("wide_deep", dict(_DEFAULTS), _build("wide_deep"), "Wide&Deep"))
DEEPFM = register(ModelSpec("deepfm", dict(_DEFAULTS), _build("deepfm"), "DeepFM"))
