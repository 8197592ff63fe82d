"""tf.nn forward values against real TensorFlow (compat.v1 graph mode), and TF-1's build-time
errors and argument conventions (dropout's keep_prob / rate, softmax's dim, ...)."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import engine as tf
from engine import nn
from tests.engine.tf_oracle import run_both

RNG = np.random.default_rng(7)


def assert_same(engine_out, tf_out, rtol=1e-5, atol=1e-6):
    if isinstance(engine_out, (list, tuple)):
        for a, b in zip(engine_out, tf_out, strict=True):
            assert_same(a, b, rtol, atol)
        return
    np.testing.assert_allclose(engine_out, tf_out, rtol=rtol, atol=atol)


X = RNG.normal(size=(4, 5)).astype(np.float32) * 3

ACTIVATIONS = {
    "relu": lambda t, x: t.nn.relu(x),
    "relu6": lambda t, x: t.nn.relu6(x * 3),
    "elu": lambda t, x: t.nn.elu(x),
    "selu": lambda t, x: t.nn.selu(x),
    "leaky_relu-default": lambda t, x: t.nn.leaky_relu(x),
    "leaky_relu-alpha": lambda t, x: t.nn.leaky_relu(x, alpha=0.05),
    "sigmoid": lambda t, x: t.nn.sigmoid(x),
    "tanh": lambda t, x: t.nn.tanh(x),
    "softsign": lambda t, x: t.nn.softsign(x),
    "swish": lambda t, x: t.nn.swish(x),
    "softmax": lambda t, x: t.nn.softmax(x),
    "softmax-axis0": lambda t, x: t.nn.softmax(x, axis=0),
    "softmax-dim0": lambda t, x: t.nn.softmax(x, dim=0),
    "log_softmax": lambda t, x: t.nn.log_softmax(x),
    "log_softmax-axis0": lambda t, x: t.nn.log_softmax(x, 0),
    "l2_loss": lambda t, x: t.nn.l2_loss(x),
    "l2_normalize-all": lambda t, x: t.nn.l2_normalize(x),
    "l2_normalize-axis1": lambda t, x: t.nn.l2_normalize(x, axis=1),
    "l2_normalize-dim0": lambda t, x: t.nn.l2_normalize(x, dim=0),
    "zero_fraction": lambda t, x: t.nn.zero_fraction(t.nn.relu(x)),
    "moments": lambda t, x: list(t.nn.moments(x, axes=[0])),
    "moments-keep_dims": lambda t, x: list(t.nn.moments(x, [0, 1], keep_dims=True)),
    "moments-keepdims": lambda t, x: list(t.nn.moments(x, [1], keepdims=True)),
    "crelu": lambda t, x: t.nn.crelu(x),
    "compute_average_loss": lambda t, x: t.nn.compute_average_loss(x),
    "compute_average_loss-weighted": lambda t, x: t.nn.compute_average_loss(
        x, sample_weight=t.abs(x), global_batch_size=16
    ),
    "scale_regularization_loss": lambda t, x: t.nn.scale_regularization_loss(x),
    "crelu-axis0": lambda t, x: t.nn.crelu(x, axis=0),
    "log_poisson_loss": lambda t, x: t.nn.log_poisson_loss(t.abs(x) * 2, x / 3),
    "log_poisson_loss-full": lambda t, x: t.nn.log_poisson_loss(
        t.abs(x) * 2, x / 3, compute_full_loss=True
    ),
    "sufficient_statistics": lambda t, x: list(t.nn.sufficient_statistics(x, [0])[:3]),
    "sufficient_statistics-shift": lambda t, x: list(
        t.nn.sufficient_statistics(x, [0, 1], shift=0.5, keepdims=True)[:3]
    ),
    "normalize_moments": lambda t, x: list(
        t.nn.normalize_moments(
            *t.nn.sufficient_statistics(x, [1], shift=t.slice(x, [0, 0], [-1, 1]))
        )
    ),
    "weighted_moments": lambda t, x: list(
        t.nn.weighted_moments(x, [0], t.abs(t.slice(x, [0, 0], [-1, 1])))
    ),
    "weighted_moments-keep": lambda t, x: list(
        t.nn.weighted_moments(x, 1, t.nn.relu(x), keep_dims=True)
    ),
}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_elementwise_and_normalisation_match_tensorflow(tfv1, name):
    ours, theirs = run_both(tfv1, ACTIVATIONS[name], X)
    assert_same(ours, theirs)


def test_softplus_is_the_math_familys(tfv1):
    ours, theirs = run_both(tfv1, lambda t, x: t.nn.softplus(x), X)
    assert_same(ours, theirs)


def test_batch_normalization_matches_tensorflow(tfv1):
    def program(t, x, offset, scale):
        mean, variance = t.nn.moments(x, [0])
        return [
            t.nn.batch_normalization(x, mean, variance, offset, scale, 1e-3),
            t.nn.batch_normalization(x, mean, variance, None, None, 1e-3),
        ]

    offset = RNG.normal(size=5).astype(np.float32)
    scale = RNG.uniform(0.5, 2, size=5).astype(np.float32)
    assert_same(*run_both(tfv1, program, X, offset, scale))


def test_batch_norm_with_global_normalization_matches_tensorflow(tfv1):
    def program(t, x, offset, scale):
        mean, variance = t.nn.moments(x, [0])
        return [
            t.nn.batch_norm_with_global_normalization(x, mean, variance, offset, scale, 1e-3, True),
            t.nn.batch_norm_with_global_normalization(
                input=x,
                mean=mean,
                variance=variance,
                beta=offset,
                gamma=scale,
                variance_epsilon=1e-3,
                scale_after_normalization=False,
            ),
        ]

    offset = RNG.normal(size=5).astype(np.float32)
    scale = RNG.uniform(0.5, 2, size=5).astype(np.float32)
    assert_same(*run_both(tfv1, program, X, offset, scale))


def test_compute_average_loss_with_a_batch_known_at_run_time():
    per_example = tf.placeholder(tf.float32, (None,))
    loss = tf.nn.compute_average_loss(per_example)
    with tf.Session() as session:
        assert session.run(loss, {per_example: [1.0, 2.0, 6.0]}) == pytest.approx(3.0)


@pytest.mark.parametrize("data_format", [None, "NHWC", "NCHW"])
def test_bias_add_matches_tensorflow(tfv1, data_format):
    value = RNG.normal(size=(2, 3, 4)).astype(np.float32)
    size = 3 if data_format == "NCHW" else 4
    bias = RNG.normal(size=size).astype(np.float32)
    ours, theirs = run_both(
        tfv1, lambda t, v, b: t.nn.bias_add(v, b, data_format=data_format), value, bias
    )
    assert_same(ours, theirs)


def test_bias_add_of_the_wrong_size_fails_at_build_time():
    value = tf.placeholder(tf.float32, (None, 4))
    with pytest.raises(ValueError, match="bias_add"):
        tf.nn.bias_add(value, tf.placeholder(tf.float32, (3,)))


def test_xw_plus_b_and_relu_layer_match_tensorflow(tfv1):
    w = RNG.normal(size=(5, 3)).astype(np.float32)
    b = RNG.normal(size=3).astype(np.float32)
    program = lambda t, x, w, b: [t.nn.xw_plus_b(x, w, b), t.nn.relu_layer(x, w, b)]  # noqa: E731
    assert_same(*run_both(tfv1, program, X, w, b))


LOGITS = RNG.normal(size=(4, 4)).astype(np.float32) * 2
SOFT_LABELS = RNG.dirichlet(np.ones(4), size=4).astype(np.float32)
BINARY = (RNG.random((4, 4)) > 0.5).astype(np.float32)


def test_cross_entropies_match_tensorflow(tfv1):
    classes = np.array([0, 3, 1, 3])

    def program(t, logits, soft, binary, sparse):
        return [
            t.nn.sigmoid_cross_entropy_with_logits(labels=binary, logits=logits),
            t.nn.weighted_cross_entropy_with_logits(labels=binary, logits=logits, pos_weight=2.5),
            t.nn.softmax_cross_entropy_with_logits(labels=soft, logits=logits),
            t.nn.softmax_cross_entropy_with_logits(labels=soft, logits=logits, dim=0),
            t.nn.softmax_cross_entropy_with_logits_v2(labels=soft, logits=logits),
            t.nn.softmax_cross_entropy_with_logits_v2(soft, logits, axis=0),
            t.nn.sparse_softmax_cross_entropy_with_logits(labels=sparse, logits=logits),
        ]

    assert_same(*run_both(tfv1, program, LOGITS, SOFT_LABELS, BINARY, classes))


def test_cross_entropy_gradients_match_tensorflow(tfv1):
    classes = np.array([2, 0, 1, 1], dtype=np.int32)
    label_grads = {}

    def program(t, logits, soft, sparse):
        v1 = t.reduce_sum(t.nn.softmax_cross_entropy_with_logits(labels=soft, logits=logits))
        v2 = t.reduce_sum(t.nn.softmax_cross_entropy_with_logits_v2(labels=soft, logits=logits))
        xent = t.nn.sparse_softmax_cross_entropy_with_logits(labels=sparse, logits=logits)
        sp = t.reduce_sum(t.square(xent))
        label_grads[t.__name__] = t.gradients(v1, soft)[0]
        return [
            t.gradients(v1, logits)[0],
            t.gradients(v2, [logits, soft]),
            t.gradients(sp, logits)[0],
        ]

    assert_same(*run_both(tfv1, program, LOGITS, SOFT_LABELS, classes), rtol=1e-4)
    # TF-1's v1 passes no gradient to its labels (a stop_gradient): None in TF, zeros or None here.
    assert label_grads[tfv1.__name__] is None
    ours = label_grads["engine"]
    if ours is not None:
        with tf.Session(ours.graph) as session:
            fed = {n: np.ones(n.shape, np.float32) for n in ours.graph.placeholders}
            fed = {n: (a.astype(np.int32) if n.dtype == np.int32 else a) for n, a in fed.items()}
            assert not np.any(session.run(ours, fed))


@pytest.mark.parametrize(
    "build",
    [
        lambda t, n: t.nn.softmax_cross_entropy_with_logits(
            labels=t.placeholder(t.float32, (n,)), logits=t.placeholder(t.float32, (n, n))
        ),
        lambda t, n: t.nn.softmax_cross_entropy_with_logits_v2(
            labels=t.placeholder(t.float32, (n,)), logits=t.placeholder(t.float32, (n, n))
        ),
        lambda t, n: t.nn.sigmoid_cross_entropy_with_logits(
            labels=t.placeholder(t.float32, (n,)), logits=t.placeholder(t.float32, (n, n))
        ),
        lambda t, n: t.nn.sparse_softmax_cross_entropy_with_logits(
            labels=t.placeholder(t.int32, (n, n)), logits=t.placeholder(t.float32, (n, n))
        ),
    ],
    ids=["softmax-v1", "softmax-v2", "sigmoid", "sparse-rank"],
)
def test_labels_of_another_shape_fail_at_build_time(build):
    # N == C: numpy would broadcast [N] against [N, C] silently; TF 1.x's shape inference
    # refuses at build time (TF 2.21's softmax kernel broadcasts them: the engine keeps TF-1's
    # error, which catches a real modelling bug).
    with tf.Graph().as_default(), pytest.raises(ValueError, match=r"\(3, 3\)|rank"):
        build(tf, 3)


def test_tensorflow_also_refuses_sigmoid_labels_of_another_shape(tfv1):
    with tfv1.Graph().as_default(), pytest.raises(ValueError, match="same shape"):
        tfv1.nn.sigmoid_cross_entropy_with_logits(
            labels=tfv1.placeholder(tfv1.float32, (3,)),
            logits=tfv1.placeholder(tfv1.float32, (3, 3)),
        )


def test_known_against_unknown_dims_are_accepted():
    labels = tf.placeholder(tf.float32, (None, 3))
    loss = tf.nn.softmax_cross_entropy_with_logits(
        labels=labels, logits=tf.placeholder(tf.float32, (5, None))
    )
    assert loss.shape == tf.TensorShape([5])


def test_sparse_label_out_of_range_fails_at_run_time():
    logits = tf.placeholder(tf.float32, (None, 3))
    labels = tf.placeholder(tf.int64, (None,))
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    with tf.Session() as session, pytest.raises(ValueError, match="outside the valid range"):
        session.run(loss, {logits: np.zeros((2, 3)), labels: [0, 3]})


def test_in_top_k_matches_tensorflow_with_ties(tfv1):
    predictions = np.array([[0.1, 0.5, 0.5, 0.2], [0.9, 0.1, 0.3, 0.3], [1, 2, 3, 4]], np.float32)
    targets = np.array([2, 3, 0], np.int32)

    def program(t, p, y):
        return [t.nn.in_top_k(p, y, 1), t.nn.in_top_k(p, y, 2), t.nn.in_top_k(p, y, 4)]

    ours, theirs = run_both(tfv1, program, predictions, targets)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == np.bool_


def test_top_k_is_the_index_familys(tfv1):
    values = RNG.permutation(12).reshape(3, 4).astype(np.float32)
    ours, theirs = run_both(tfv1, lambda t, x: list(t.nn.top_k(x, k=2)), values)
    assert_same(ours, theirs)


def _keep_share(out):
    return float(np.mean(out != 0))


def test_dropout_keep_prob_positional_and_rate_keyword():
    x = tf.placeholder(tf.float64, (20000,))
    ones = np.ones(20000)
    kept_positional = tf.nn.dropout(x, 0.9)
    by_rate = tf.nn.dropout(x, rate=0.9)
    with tf.Session(seed=3) as session:
        positional, rated = session.run([kept_positional, by_rate], {x: ones})
    assert abs(_keep_share(positional) - 0.9) < 0.02
    np.testing.assert_allclose(np.unique(positional), [0.0, 1 / 0.9])
    assert abs(_keep_share(rated) - 0.1) < 0.02
    np.testing.assert_allclose(np.unique(rated), [0.0, 1 / 0.1])


def test_dropout_keep_prob_fed_per_run():
    x = tf.placeholder(tf.float64, (20000,))
    keep = tf.placeholder(tf.float32, ())
    out = tf.nn.dropout(x, keep_prob=keep)
    with tf.Session(seed=1) as session:
        for value in (0.5, 0.8, 1.0):
            got = session.run(out, {x: np.ones(20000), keep: value})
            assert abs(_keep_share(got) - value) < 0.02
        with pytest.raises(Exception, match="keep_prob"):
            session.run(out, {x: np.ones(20000), keep: 0.0})


def test_dropout_rate_node_and_training_switch():
    x = tf.placeholder(tf.float64, (10000,))
    rate = tf.placeholder(tf.float64, ())
    training = tf.placeholder(tf.bool_, ())
    out = tf.nn.dropout(x, rate=rate, training=training)
    with tf.Session(seed=2) as session:
        on = session.run(out, {x: np.ones(10000), rate: 0.25, training: True})
        off = session.run(out, {x: np.ones(10000), rate: 0.25, training: False})
    assert abs(_keep_share(on) - 0.75) < 0.02
    np.testing.assert_array_equal(off, np.ones(10000))


def test_dropout_argument_errors():
    x = tf.placeholder(tf.float32, (3,))
    with pytest.raises(ValueError, match="not both"):
        tf.nn.dropout(x, keep_prob=0.5, rate=0.5)
    with pytest.raises(ValueError):
        tf.nn.dropout(x)
    with pytest.raises(ValueError, match="keep_prob"):
        tf.nn.dropout(x, 0.0)
    with pytest.raises(ValueError, match="rate"):
        tf.nn.dropout(x, rate=1.0)


def test_dropout_noise_shape_and_seed():
    x = tf.placeholder(tf.float64, (50, 6))
    shared = tf.nn.dropout(x, 0.5, noise_shape=[50, 1])
    seeded = tf.nn.dropout(x, 0.5, seed=11)
    with tf.Session() as s1, tf.Session() as s2:
        ones = np.ones((50, 6))
        rows, first = s1.run([shared, seeded], {x: ones})
        second = s2.run(seeded, {x: ones})
    assert all(len(set(row)) == 1 for row in rows)  # one draw per row, broadcast over columns
    np.testing.assert_array_equal(first, second)  # an op seed repeats across sessions


def test_engine_spellings_keep_working():
    x = tf.placeholder(tf.float32, (None, 3))
    assert tf.softmax(x, axis=0).op_type == "softmax"
    assert tf.dropout(x, rate=0.5, training=False).op_type == "dropout"
    assert tf.nn.dropout is tf.dropout


def test_static_shapes_and_dtypes():
    x = tf.placeholder(tf.float32, (None, 5))
    labels = tf.placeholder(tf.int32, (None,))
    assert tf.nn.relu6(x).shape == tf.TensorShape([None, 5])
    assert tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=x).shape == (
        tf.TensorShape([None])
    )
    assert tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=x).dtype == (
        np.float32
    )
    assert tf.nn.in_top_k(x, labels, 2).dtype == np.bool_
    assert tf.nn.l2_loss(x).shape == tf.TensorShape([])
    assert tf.nn.softmax_cross_entropy_with_logits_v2(labels=x, logits=x).shape == (
        tf.TensorShape([None])
    )
    assert tf.nn.bias_add(x, tf.placeholder(tf.float32, (5,))).shape == tf.TensorShape([None, 5])
    mean, variance = tf.nn.moments(x, [0])
    assert mean.shape == tf.TensorShape([5]) and variance.shape == tf.TensorShape([5])
    assert tf.nn.crelu(x).shape == tf.TensorShape([None, 10])


def test_sufficient_statistics_count_known_only_at_run_time():
    x = tf.placeholder(tf.float32, (None, 3))
    count, mean_ss, variance_ss, shift = tf.nn.sufficient_statistics(x, [0])
    assert shift is None
    with tf.Session() as session:
        got = session.run([count, mean_ss, variance_ss], {x: X[:, :3]})
    assert got[0] == 4
    np.testing.assert_allclose(got[1], X[:, :3].sum(0), rtol=1e-5)
    np.testing.assert_allclose(got[2], (X[:, :3] ** 2).sum(0), rtol=1e-5)


def test_every_nn_name_has_tensorflows_parameters_in_order(tfv1):
    # Each engine tf.nn name exists in TF-1's tf.nn, and TF's parameter names come first, in
    # TF's order (the engine may add keywords after them, e.g. dropout's training=).
    newer_in_tf2 = {"top_k": "index_type"}  # TF 2 added it after TF 1.15's name=
    for name in nn.__all__:
        ours = list(inspect.signature(getattr(nn, name)).parameters)
        theirs = list(inspect.signature(getattr(tfv1.nn, name)).parameters)
        theirs = [p for p in theirs if p != newer_in_tf2.get(name)]
        assert ours[: len(theirs)] == theirs, name
