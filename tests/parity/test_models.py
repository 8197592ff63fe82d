"""Small TF-1 models trained 25 steps on the engine and on TensorFlow: the same numbers.

Linear and softmax regression, an MLP with Adam in plain TF-1 spelling (matmul + add +
nn.relu), a two-tower in-batch softmax and Wide&Deep with two optimizers.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.parity.harness import STEPS, Model, assert_traces_match, train
from tests.parity.programs import weights

BATCH = 16
_RNG = np.random.default_rng(20260)
FEATURES = _RNG.standard_normal((STEPS, BATCH, 8)).astype(np.float32)
TARGETS = (FEATURES[..., :3] @ np.array([[1.0], [-2.0], [0.5]]) + 0.3).astype(np.float32)
CLASSES = _RNG.integers(0, 4, (STEPS, BATCH)).astype(np.int32)
BINARY = _RNG.integers(0, 2, (STEPS, BATCH, 1)).astype(np.float32)


def build_linear_regression(tf) -> Model:
    x = tf.placeholder(tf.float32, [None, 3], name="x")
    y = tf.placeholder(tf.float32, [None, 1], name="y")
    init = weights(1, w=(3, 1), b=(1,))
    w = tf.Variable(init["w"], name="w")
    b = tf.Variable(init["b"], name="b")
    loss = tf.reduce_mean(tf.square(tf.matmul(x, w) + b - y))
    train_op = tf.train.GradientDescentOptimizer(0.1).minimize(loss)
    grads = dict(zip(["w", "b"], tf.gradients(loss, [w, b]), strict=True))

    def feed(step):
        return {x: FEATURES[step, :, :3], y: TARGETS[step]}

    return Model(loss, train_op, {"w": w, "b": b}, feed, grads)


def _softmax_regression(tf, xent: str) -> Model:
    x = tf.placeholder(tf.float32, [None, 8], name="x")
    init = weights(2, w=(8, 4), b=(4,))
    w = tf.Variable(init["w"], name="w")
    b = tf.Variable(init["b"], name="b")
    logits = tf.matmul(x, w) + b
    if xent == "sparse":
        labels = tf.placeholder(tf.int32, [None], name="labels")
        per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
        label_values = CLASSES
    else:
        labels = tf.placeholder(tf.float32, [None, 4], name="labels")
        per_example = tf.nn.softmax_cross_entropy_with_logits_v2(labels=labels, logits=logits)
        label_values = np.eye(4, dtype=np.float32)[CLASSES]
    loss = tf.reduce_mean(per_example)
    train_op = tf.train.GradientDescentOptimizer(0.5).minimize(loss)
    grads = dict(zip(["w", "b"], tf.gradients(loss, [w, b]), strict=True))
    return Model(
        loss,
        train_op,
        {"w": w, "b": b},
        lambda step: {x: FEATURES[step], labels: label_values[step]},
        grads,
    )


def build_mlp_adam(tf) -> Model:
    x = tf.placeholder(tf.float32, [None, 8], name="x")
    y = tf.placeholder(tf.float32, [None, 1], name="y")
    init = weights(3, w1=(8, 16), b1=(16,), w2=(16, 8), b2=(8,), w3=(8, 1), b3=(1,))
    v = {name: tf.Variable(value, name=name) for name, value in init.items()}
    h1 = tf.nn.relu(tf.matmul(x, v["w1"]) + v["b1"])
    h2 = tf.nn.relu(tf.matmul(h1, v["w2"]) + v["b2"])
    logits = tf.matmul(h2, v["w3"]) + v["b3"]
    loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=logits))
    train_op = tf.train.AdamOptimizer(0.01).minimize(loss)
    grads = {"w1": tf.gradients(loss, v["w1"])[0], "b2": tf.gradients(loss, v["b2"])[0]}
    return Model(loss, train_op, v, lambda step: {x: FEATURES[step], y: BINARY[step]}, grads)


def _without_watched_gradients(model: Model) -> Model:
    # The run users write, sess.run([loss, train_op]): no gradient fetched next to the train
    # op, so the engine's plan (and any fusion in it) is the one training really uses.
    model.grads = {}
    return model


@pytest.mark.parametrize(
    "build",
    [
        build_linear_regression,
        lambda tf: _softmax_regression(tf, "sparse"),
        lambda tf: _softmax_regression(tf, "dense_v2"),
        build_mlp_adam,
        lambda tf: _without_watched_gradients(build_mlp_adam(tf)),
    ],
    ids=[
        "linear_regression-GradientDescent",
        "softmax_regression-sparse_softmax_cross_entropy_with_logits",
        "softmax_regression-softmax_cross_entropy_with_logits_v2",
        "mlp-Adam",
        "mlp-Adam-only_loss_and_train_op_fetched",
    ],
)
def test_small_model_trains_like_tensorflow(eng, tfv1, build):
    """Losses, gradients every step and the weights after 25 steps == TF's."""
    assert_traces_match(train(eng, build), train(tfv1, build))


TOWER_USERS, TOWER_ITEMS = 30, 60
TOWER_DATA = {
    "users": _RNG.integers(0, TOWER_USERS, (STEPS, BATCH)).astype(np.int32),
    # In-batch negatives need distinct items in a batch: each batch is a permutation slice.
    "items": np.stack([_RNG.permutation(TOWER_ITEMS)[:BATCH] for _ in range(STEPS)]).astype(
        np.int32
    ),
}


def build_two_tower(tf) -> Model:
    """Two towers, cosine scores of every user against every item of the batch, and a sparse
    softmax over them whose labels are the diagonal (tf.range)."""
    users = tf.placeholder(tf.int32, [None], name="users")
    items = tf.placeholder(tf.int32, [None], name="items")
    init = weights(
        4, user_table=(TOWER_USERS, 8), item_table=(TOWER_ITEMS, 8), wu=(8, 8), wi=(8, 8)
    )
    v = {name: tf.Variable(value, name=name) for name, value in init.items()}
    u = tf.nn.l2_normalize(tf.matmul(tf.nn.embedding_lookup(v["user_table"], users), v["wu"]), 1)
    i = tf.nn.l2_normalize(tf.matmul(tf.nn.embedding_lookup(v["item_table"], items), v["wi"]), 1)
    logits = tf.matmul(u, i, transpose_b=True) / 0.1
    labels = tf.range(tf.shape(logits)[0])
    loss = tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    )
    train_op = tf.train.AdagradOptimizer(0.1).minimize(loss)
    grads = {
        "item_table": tf.gradients(loss, v["item_table"])[0],
        "wu": tf.gradients(loss, v["wu"])[0],
    }

    def feed(step):
        return {users: TOWER_DATA["users"][step], items: TOWER_DATA["items"][step]}

    return Model(loss, train_op, v, feed, grads)


def test_two_tower_in_batch_softmax_trains_like_tensorflow(eng, tfv1):
    """matmul(u, v, transpose_b=True) over l2-normalised towers, tf.range labels == TF."""
    assert_traces_match(train(eng, build_two_tower), train(tfv1, build_two_tower))


WIDE_FEATURES = 100
WIDE_IDS = _RNG.integers(0, WIDE_FEATURES, (STEPS, BATCH, 3)).astype(np.int32)


def build_wide_and_deep(tf) -> Model:
    """Wide: a sum of per-feature weights (FTRL); deep: embeddings and an MLP (Adagrad)."""
    wide_ids = tf.placeholder(tf.int32, [None, 3], name="wide_ids")
    users = tf.placeholder(tf.int32, [None], name="users")
    items = tf.placeholder(tf.int32, [None], name="items")
    labels = tf.placeholder(tf.float32, [None, 1], name="labels")
    init = weights(
        5,
        wide_w=(WIDE_FEATURES, 1),
        wide_b=(1,),
        user_table=(TOWER_USERS, 8),
        item_table=(TOWER_ITEMS, 8),
        w1=(16, 16),
        b1=(16,),
        w2=(16, 1),
    )
    v = {name: tf.Variable(value, name=name) for name, value in init.items()}
    wide = tf.reduce_sum(tf.nn.embedding_lookup(v["wide_w"], wide_ids), axis=1) + v["wide_b"]
    embedded = tf.concat(
        [
            tf.nn.embedding_lookup(v["user_table"], users),
            tf.nn.embedding_lookup(v["item_table"], items),
        ],
        axis=1,
    )
    deep = tf.matmul(tf.nn.relu(tf.matmul(embedded, v["w1"]) + v["b1"]), v["w2"])
    loss = tf.reduce_mean(
        tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=wide + deep)
    )
    wide_vars = [v["wide_w"], v["wide_b"]]
    deep_vars = [v[name] for name in ("user_table", "item_table", "w1", "b1", "w2")]
    ftrl = tf.train.FtrlOptimizer(
        0.1, l1_regularization_strength=0.01, l2_regularization_strength=0.01
    )
    adagrad = tf.train.AdagradOptimizer(0.05)
    train_op = tf.group(
        ftrl.minimize(loss, var_list=wide_vars), adagrad.minimize(loss, var_list=deep_vars)
    )
    grads = {"wide_w": tf.gradients(loss, v["wide_w"])[0], "w1": tf.gradients(loss, v["w1"])[0]}

    def feed(step):
        return {
            wide_ids: WIDE_IDS[step],
            users: TOWER_DATA["users"][step],
            items: TOWER_DATA["items"][step],
            labels: BINARY[step],
        }

    return Model(loss, train_op, v, feed, grads)


def test_wide_and_deep_two_optimizers_trains_like_tensorflow(eng, tfv1):
    """FTRL on the wide variables, Adagrad on the deep ones, tf.group of both train ops == TF."""
    assert_traces_match(train(eng, build_wide_and_deep), train(tfv1, build_wide_and_deep))
