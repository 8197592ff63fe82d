"""A model through many of the issue's ops at once, trained 25 steps on both: every
gradient of the graph (sparse embedding bags, bias_add, leaky_relu, moments and
batch_normalization, l2_normalize, elu, einsum, softplus, tf.losses, l2_loss) == TF's."""

from __future__ import annotations

import numpy as np
import pytest

from tests.parity.harness import STEPS, Model, assert_traces_match, train
from tests.parity.programs import weights

BATCH, VOCAB, DIM = 16, 30, 8
_RNG = np.random.default_rng(4242)


def _bag(rng):
    # Every row has 1..3 ids (an empty last row would shorten TF's output).
    lengths = rng.integers(1, 4, BATCH)
    indices = np.array([[row, k] for row, n in enumerate(lengths) for k in range(n)], np.int64)
    values = rng.integers(0, VOCAB, len(indices)).astype(np.int64)
    weights_ = rng.uniform(0.5, 2.0, len(indices)).astype(np.float32)
    return indices, values, weights_


BAGS = [_bag(_RNG) for _ in range(STEPS)]
DENSE = _RNG.standard_normal((STEPS, BATCH, 6)).astype(np.float32)
LABELS = _RNG.integers(0, 2, (STEPS, BATCH, 1)).astype(np.float32)
INIT = weights(
    99, table=(VOCAB, DIM), w1=(6, 8), b1=(8,), beta=(8,), w_cross=(16, 16), w_out=(16, 1)
)
INIT["gamma"] = np.ones(8, np.float32) + INIT["beta"]


def build_feature_rich(tf, combiner: str) -> Model:
    indices = tf.placeholder(tf.int64, [None, 2], name="indices")
    ids = tf.placeholder(tf.int64, [None], name="ids")
    id_weights = tf.placeholder(tf.float32, [None], name="id_weights")
    x = tf.placeholder(tf.float32, [None, 6], name="x")
    labels = tf.placeholder(tf.float32, [None, 1], name="labels")
    v = {name: tf.Variable(value, name=name) for name, value in INIT.items()}
    shape = np.array([BATCH, 3], np.int64)
    bag = tf.nn.embedding_lookup_sparse(
        v["table"],
        tf.SparseTensor(indices, ids, shape),
        tf.SparseTensor(indices, id_weights, shape),
        combiner=combiner,
    )
    hidden = tf.nn.leaky_relu(tf.nn.bias_add(tf.matmul(x, v["w1"]), v["b1"]), alpha=0.2)
    mean, variance = tf.nn.moments(hidden, axes=[0])
    normed = tf.nn.batch_normalization(hidden, mean, variance, v["beta"], v["gamma"], 1e-3)
    z = tf.concat([tf.nn.l2_normalize(bag, 1), tf.nn.elu(normed)], axis=1)
    cross = tf.reduce_sum(tf.einsum("bi,ij->bj", z, v["w_cross"]) * z, axis=1, keepdims=True)
    logits = tf.matmul(tf.nn.softplus(z), v["w_out"]) + cross
    loss = tf.losses.sigmoid_cross_entropy(labels, logits) + 1e-3 * tf.nn.l2_loss(v["w_out"])
    train_op = tf.train.AdagradOptimizer(0.1).minimize(loss)
    grads = {name: tf.gradients(loss, v[name])[0] for name in ("table", "w1", "beta", "w_cross")}

    def feed(step):
        bag_indices, bag_ids, bag_weights = BAGS[step]
        return {
            indices: bag_indices,
            ids: bag_ids,
            id_weights: bag_weights,
            x: DENSE[step],
            labels: LABELS[step],
        }

    return Model(loss, train_op, v, feed, grads)


@pytest.mark.parametrize("combiner", ["sum", "mean", "sqrtn"])
def test_feature_rich_model_trains_like_tensorflow(eng, tfv1, combiner):
    def build(tf):
        return build_feature_rich(tf, combiner)

    assert_traces_match(train(eng, build), train(tfv1, build))
