"""tf.losses (values with weights and reductions == TF's), tf.layers.dense (TF 2.21 no longer
has tf.compat.v1.layers: numpy oracle), and initializers (seeded draws cannot match TF's:
their distributions, checked on both implementations)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.parity.harness import assert_same

_RNG = np.random.default_rng(77)
PRED = _RNG.uniform(0.05, 0.95, (6, 3)).astype(np.float32)
LOGITS = _RNG.standard_normal((6, 3)).astype(np.float32)
TARGET = _RNG.uniform(0.0, 1.0, (6, 3)).astype(np.float32)
BINARY = _RNG.integers(0, 2, (6, 3)).astype(np.float32)
CLASSES = np.array([0, 2, 1, 1, 0, 2], np.int32)
ONEHOT = np.eye(3, dtype=np.float32)[CLASSES]
# Weights with zeros: SUM_BY_NONZERO_WEIGHTS (TF-1's default) divides by their count.
ROW_WEIGHTS = np.array([[1.0], [0.0], [2.0], [0.5], [0.0], [1.0]], np.float32)
CLASS_WEIGHTS = np.array([1.0, 0.0, 2.0, 0.5, 0.0, 1.0], np.float32)


def _losses(tf):
    reduction = tf.losses.Reduction
    return {
        "mean_squared_error": tf.losses.mean_squared_error(TARGET, PRED),
        "mean_squared_error weighted": tf.losses.mean_squared_error(
            TARGET, PRED, weights=ROW_WEIGHTS
        ),
        "mean_squared_error NONE": tf.losses.mean_squared_error(
            TARGET, PRED, weights=ROW_WEIGHTS, reduction=reduction.NONE
        ),
        "mean_squared_error SUM": tf.losses.mean_squared_error(
            TARGET, PRED, weights=2.0, reduction=reduction.SUM
        ),
        "mean_squared_error MEAN": tf.losses.mean_squared_error(
            TARGET, PRED, weights=ROW_WEIGHTS, reduction=reduction.MEAN
        ),
        "absolute_difference": tf.losses.absolute_difference(TARGET, PRED, ROW_WEIGHTS),
        "huber_loss": tf.losses.huber_loss(TARGET, PRED * 3.0, delta=0.5),
        "log_loss": tf.losses.log_loss(BINARY, PRED, weights=ROW_WEIGHTS),
        "sigmoid_cross_entropy": tf.losses.sigmoid_cross_entropy(
            BINARY, LOGITS, weights=ROW_WEIGHTS, label_smoothing=0.1
        ),
        "softmax_cross_entropy": tf.losses.softmax_cross_entropy(
            ONEHOT, LOGITS, weights=CLASS_WEIGHTS, label_smoothing=0.2
        ),
        "sparse_softmax_cross_entropy": tf.losses.sparse_softmax_cross_entropy(
            CLASSES, LOGITS, weights=CLASS_WEIGHTS
        ),
        "hinge_loss": tf.losses.hinge_loss(BINARY, LOGITS),
        "compute_weighted_loss": tf.losses.compute_weighted_loss(TARGET, ROW_WEIGHTS),
    }


def _run_losses(tf):
    with tf.Graph().as_default() as graph:
        losses = _losses(tf)
    with tf.Session(graph=graph) as session:
        return session.run(losses)


def test_losses_with_weights_and_reductions_match_tensorflow(eng, tfv1):
    mine, theirs = _run_losses(eng), _run_losses(tfv1)
    for name, value in theirs.items():
        assert_same(mine[name], value, f"tf.losses.{name}", rtol=1e-5)


def test_layers_dense_creates_kernel_and_bias_and_computes_activation(eng):
    """Engine only (tf.compat.v1.layers needs Keras 2): variables "<name>/kernel" and
    "<name>/bias" with the given initializers, trainable; value relu(x @ K + b)."""
    tf = eng
    x_value = _RNG.standard_normal((4, 5)).astype(np.float32)
    kernel = _RNG.standard_normal((5, 3)).astype(np.float32)
    bias = np.array([0.1, -0.2, 0.3], np.float32)
    with tf.Graph().as_default() as graph:
        x = tf.placeholder(tf.float32, [None, 5])
        out = tf.layers.dense(
            x,
            3,
            activation=tf.nn.relu,
            kernel_initializer=tf.constant_initializer(kernel),
            bias_initializer=tf.constant_initializer(bias),
            name="fc",
        )
        names = [v.name.split(":")[0] for v in tf.trainable_variables()]
        assert names == ["fc/kernel", "fc/bias"]
        assert out.get_shape().as_list() == [None, 3]
        init = tf.global_variables_initializer()
    with tf.Session(graph=graph) as session:
        session.run(init)
        value = session.run(out, {x: x_value})
    assert_same(value, np.maximum(x_value @ kernel + bias, 0.0), "dense(relu)", rtol=1e-5)


FAN_IN, FAN_OUT = 200, 300


def _initialized(tf):
    with tf.Graph().as_default() as graph:
        shape = [FAN_IN, FAN_OUT]
        made = {
            "zeros": tf.get_variable("zeros", shape, initializer=tf.zeros_initializer()),
            "ones": tf.get_variable("ones", [3], initializer=tf.initializers.ones()),
            "constant": tf.get_variable("constant", [2], initializer=tf.constant_initializer(0.5)),
            "random_normal": tf.get_variable(
                "random_normal", shape, initializer=tf.random_normal_initializer(1.0, 2.0, seed=1)
            ),
            "truncated_normal": tf.get_variable(
                "truncated_normal", shape, initializer=tf.truncated_normal_initializer(0.0, 0.5)
            ),
            "random_uniform": tf.get_variable(
                "random_uniform", shape, initializer=tf.random_uniform_initializer(-0.1, 0.3)
            ),
            "glorot_uniform": tf.get_variable(
                "glorot_uniform", shape, initializer=tf.glorot_uniform_initializer(seed=3)
            ),
            "glorot_normal": tf.get_variable(
                "glorot_normal", shape, initializer=tf.initializers.glorot_normal()
            ),
            "variance_scaling": tf.get_variable(
                "variance_scaling", shape, initializer=tf.variance_scaling_initializer()
            ),
            "he_normal": tf.get_variable(
                "he_normal", shape, initializer=tf.initializers.he_normal()
            ),
            "default (glorot_uniform)": tf.get_variable("default", shape),
        }
        init = tf.global_variables_initializer()
    with tf.Session(graph=graph) as session:
        session.run(init)
        return session.run(made)


def test_initializers_draw_tensorflow_s_distributions(tf):
    """Exact values for the constant ones; mean, spread and bounds for the random ones (TF-1
    truncated normals cut at 2 standard deviations; variance scaling's truncated normal is
    rescaled so the result has the asked variance)."""
    v = _initialized(tf)
    assert v["zeros"].dtype == np.float32
    np.testing.assert_array_equal(v["zeros"], 0.0)
    np.testing.assert_array_equal(v["ones"], 1.0)
    np.testing.assert_array_equal(v["constant"], 0.5)
    glorot_limit = np.sqrt(6.0 / (FAN_IN + FAN_OUT))
    expected = {  # name: (mean, standard deviation, largest |x - mean|)
        "random_normal": (1.0, 2.0, None),
        "truncated_normal": (0.0, 0.5 * 0.8796, 1.0),
        "random_uniform": (0.1, 0.4 / np.sqrt(12), None),
        "glorot_uniform": (0.0, glorot_limit / np.sqrt(3), glorot_limit),
        "default (glorot_uniform)": (0.0, glorot_limit / np.sqrt(3), glorot_limit),
        "glorot_normal": (0.0, np.sqrt(2.0 / (FAN_IN + FAN_OUT)), None),
        "variance_scaling": (0.0, np.sqrt(1.0 / FAN_IN), None),
        "he_normal": (0.0, np.sqrt(2.0 / FAN_IN), None),
    }
    for name, (mean, std, bound) in expected.items():
        value = v[name]
        assert abs(value.mean() - mean) < 0.05 * std + 1e-3, f"{name}: mean {value.mean()}"
        assert value.std() == pytest.approx(std, rel=0.03), f"{name}: std {value.std()}"
        if bound is not None:
            assert np.abs(value - mean).max() <= bound * (1 + 1e-6), name
    assert v["random_uniform"].min() >= -0.1 and v["random_uniform"].max() < 0.3
