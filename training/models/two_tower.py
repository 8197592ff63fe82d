"""The two-tower retrieval model (Yi et al., RecSys 2019; YouTube's and TFRS's retrieval).

user tower: [user-id embedding, the mean of the history's item embeddings, embeddings of the
            categorical profile, the standardised dense profile] -> MLP -> d, L2-normalised
item tower: [item-id embedding, content: the item profile's category multi-hot and tag
            multi-hot] -> MLP -> d, L2-normalised
logit(u, i) = u . v / temperature

The item tower reads its content from a non-trainable table indexed by item_idx, and the same
tower takes content alone (`Towers.content`, the id embedding being the unknown item's) so a
room created after training gets a vector from its category and tags. Training zeroes the id
embedding of a share of the candidates (`id_dropout`, as DropoutNet does for cold start), so
the content path has to carry the taste on its own.

Training is an in-batch sampled softmax (`training.data.in_batch` builds the feeds): each
row's positive against the batch's other positives and `uniform_negatives` items drawn
uniformly (mixed negative sampling, Yang et al. 2020), every logit corrected by minus the log
of its item's expected count among the candidates (the logQ correction), and a candidate that
is the row's own positive elsewhere in the batch masked out (an accidental hit).
"""

from __future__ import annotations

import numpy as np

import engine as tf
from training.models.base import (
    Factored,
    HistoryInput,
    ModelSpec,
    Towers,
    history_input,
    no_item_index,
    register,
    whole_table,
)
from training.models.layers import embedding, history_sum

__all__ = ["TWO_TOWER", "content_spec"]

_EPS = 1e-12


def content_spec(ctx) -> list[dict]:
    """The item tower's content columns, in input order: [{"name", "vocab", "width"}].

    The item profile's vectors over a vocabulary (the manifest names it: the category
    multi-hot) and multi-hots of multivalent categoricals (tags), which a new room's listing
    gives; dense statistics are left out, since a new room has none yet.
    """
    declared = {f["name"]: f for f in ctx.features if f.get("table") == "item"}
    profile = ctx.item_profile
    spec = [
        {"name": name, "vocab": declared[name]["vocab"], "width": int(v.shape[1])}
        for name, v in sorted(profile.vector.items())
        if declared.get(name, {}).get("vocab")
    ]
    spec += [
        {"name": name, "vocab": declared.get(name, {}).get("vocab", name.removesuffix("_idx")),
         "width": int(v.shape[1])}
        for name, v in sorted(profile.multi_hot.items())
    ]  # fmt: skip
    return spec


def _content_table(ctx, spec: list[dict]) -> np.ndarray:
    profile = ctx.item_profile
    parts = [profile.vector.get(c["name"], profile.multi_hot.get(c["name"])) for c in spec]
    if not parts:
        return np.ones((ctx.n_items, 1), np.float32)  # no content: one constant column
    return np.concatenate(parts, axis=1).astype(np.float32)


def _user_profile(ctx, user_idx, dim: int, rng) -> tuple[list, int]:
    profile, parts, width = ctx.user_profile, [], 0
    for name, values in sorted(profile.categorical.items()):
        lookup = tf.Variable(
            values.astype(np.int32), name=f"two_tower/user/{name}", trainable=False
        )
        vocab = int(values.max()) + 1
        table = embedding(f"two_tower/user/{name}/emb", vocab, dim, rng)
        parts.append(tf.embedding_lookup(table, tf.gather(lookup, user_idx)))
        width += dim
    columns = [v.reshape(ctx.n_users, 1) for _, v in sorted(profile.dense.items())]
    columns += [v for _, v in sorted(profile.vector.items())]
    if columns:
        matrix = np.concatenate(columns, axis=1).astype(np.float32)
        matrix = (matrix - matrix.mean(axis=0)) / (matrix.std(axis=0) + 1e-6)
        table = tf.Variable(matrix, name="two_tower/user/dense", trainable=False)
        parts.append(tf.gather(table, user_idx))
        width += matrix.shape[1]
    return parts, width


def _normalise(x):
    return tf.divide(x, tf.sqrt(tf.add(tf.reduce_sum(tf.square(x), axis=1, keepdims=True), _EPS)))


class _Tower:
    """One MLP applied wherever the tower is needed, its variables made once."""

    def __init__(self, fan_in: int, layers: list[int], dim: int, name: str, rng):
        self.layers, width = [], fan_in
        for k, size in enumerate([*layers, dim]):
            limit = np.sqrt(6.0 / (width + size))
            w = rng.uniform(-limit, limit, (width, size)).astype(np.float32)
            self.layers.append(
                (
                    tf.Variable(w, name=f"{name}/layer{k}/w"),
                    tf.Variable(np.zeros(size, np.float32), name=f"{name}/layer{k}/b"),
                )
            )
            width = size

    def __call__(self, x):
        for k, (w, b) in enumerate(self.layers):
            x = tf.add(tf.matmul(x, w), b)
            if k < len(self.layers) - 1:
                x = tf.relu(x)
        return _normalise(x)


def _build(ctx, params, user_idx, item_idx, rng):
    dim, id_dim = int(params["dim"]), int(params["id_dim"])
    temperature = float(params["temperature"])
    layers = [int(u) for u in params["layers"]]
    history = history_input(ctx)

    # Item side: id embedding (times a keep mask training feeds) next to the content.
    spec = content_spec(ctx)
    table = _content_table(ctx, spec)
    content_var = tf.Variable(table, name="two_tower/item/content", trainable=False)
    item_emb = embedding("two_tower/item/id", ctx.n_items, id_dim, rng, std=0.05)
    item_tower = _Tower(id_dim + table.shape[1], layers, dim, "two_tower/item/tower", rng)

    def item_side(idx, keep=None):
        ids = tf.embedding_lookup(item_emb, idx)
        if keep is not None:
            ids = tf.multiply(ids, keep)
        return item_tower(tf.concat([ids, tf.gather(content_var, idx)], axis=1)), ids

    # User side: id, pooled history (the item-id table, the own item left out), profile.
    user_emb = embedding("two_tower/user/id", ctx.n_users, id_dim, rng, std=0.05)
    profile_parts, profile_width = _user_profile(ctx, user_idx, id_dim, rng)
    user_tower = _Tower(2 * id_dim + profile_width, layers, dim, "two_tower/user/tower", rng)
    ones = np.ones(ctx.history_length, np.float32)

    def user_side(exclude):
        summed, count, _ = history_sum(item_emb, history, ones, exclude)
        pooled = tf.divide(summed, tf.clip_by_value(count, 1.0, 1e30))
        ids = tf.embedding_lookup(user_emb, user_idx)
        return user_tower(tf.concat([ids, pooled, *profile_parts], axis=1)), ids

    # Training: rows score their own item with it left out of their history (as fism does).
    user_vec, user_ids = user_side(item_idx)
    item_vec, item_ids = item_side(item_idx)
    logit = tf.multiply(tf.reduce_sum(tf.multiply(user_vec, item_vec), axis=1), 1.0 / temperature)

    candidates = tf.placeholder(np.int32, shape=(None,), name="candidate_idx")
    correction = tf.placeholder(np.float32, shape=(None, None), name="logit_correction")
    keep = tf.identity(tf.constant(np.ones((1, 1), np.float32)), name="candidate_id_keep")
    cand_vec, cand_ids = item_side(candidates, keep)
    sampled = tf.add(
        tf.multiply(tf.matmul(user_vec, tf.transpose(cand_vec)), 1.0 / temperature), correction
    )

    # Serving: the user's whole history; a new item's content with the unknown item's id row.
    serving_user, _ = user_side(no_item_index(user_idx))
    content = tf.placeholder(np.float32, shape=(None, table.shape[1]), name="item_content")
    unknown = tf.multiply(tf.reduce_sum(content, axis=1, keepdims=True), 0.0)  # [n, 1] zeros
    unknown_ids = tf.add(tf.gather(item_emb, tf.constant(np.zeros(1, np.int32))), unknown)
    content_vec = item_tower(tf.concat([unknown_ids, content], axis=1))

    every = tf.constant(np.arange(ctx.n_items, dtype=np.int32))
    all_items = item_tower(tf.concat([whole_table(item_emb), tf.gather(content_var, every)], 1))
    factors = Factored(
        tf.multiply(serving_user, 1.0 / temperature),
        all_items,
        tf.constant(np.zeros(ctx.n_items, np.float32)),
    )
    towers = Towers(
        user_embedding=serving_user,
        item_embedding=item_vec,
        content=content,
        content_embedding=content_vec,
        content_spec=spec,
        candidates=candidates,
        correction=correction,
        id_keep=keep,
        sampled_logits=sampled,
        temperature=temperature,
    )
    return logit, [user_ids, item_ids, cand_ids], [], factors, towers


TWO_TOWER = register(
    ModelSpec(
        "two_tower",
        {
            "dim": 32,
            "id_dim": 32,
            "layers": [64],
            "temperature": 0.05,
            "uniform_negatives": 256,
            "id_dropout": 0.2,
        },
        _build,
        "two-tower retrieval: in-batch sampled softmax with logQ correction",
        HistoryInput(),
        objective="sampled_softmax",
    )
)
