"""tf.losses against TensorFlow compat.v1: every loss with non-trivial weights under every
Reduction, label smoothing, squeezable labels, the collections and the gradients."""

from __future__ import annotations

import numpy as np
import pytest

import engine as tf
from tests.engine.tf_oracle import run_both

RNG = np.random.default_rng(5)
N, C = 6, 4
LABELS = (RNG.random((N, 1)) > 0.5).astype(np.float32)
PREDICTIONS = RNG.uniform(0.05, 0.95, size=(N, 1)).astype(np.float32)
REGRESSION = RNG.normal(size=(N, 1)).astype(np.float32) * 2
LOGITS = RNG.normal(size=(N, C)).astype(np.float32) * 2
ONEHOT = np.eye(C, dtype=np.float32)[RNG.integers(0, C, N)]
CLASSES = RNG.integers(0, C, N).astype(np.int32)
WEIGHTS = {
    "scalar": 1.0,
    "scalar-2.5": 2.5,
    "per-example": np.array([[1.0], [0.0], [2.0], [0.5], [0.0], [3.0]], np.float32),
    "zeros": np.zeros((N, 1), np.float32),
}
REDUCTIONS = ["NONE", "SUM", "MEAN", "SUM_OVER_BATCH_SIZE", "SUM_BY_NONZERO_WEIGHTS"]


def _weights(key, squeeze=False):
    w = WEIGHTS[key]
    return w.reshape(-1) if squeeze and isinstance(w, np.ndarray) else w


LOSSES = {
    "mean_squared_error": lambda t, w, r: t.losses.mean_squared_error(
        REGRESSION, t.constant(PREDICTIONS) * 3, weights=w, reduction=r
    ),
    "absolute_difference": lambda t, w, r: t.losses.absolute_difference(
        REGRESSION, PREDICTIONS, weights=w, reduction=r
    ),
    "cosine_distance": lambda t, w, r: t.losses.cosine_distance(
        t.nn.l2_normalize(LOGITS, 1),
        t.nn.l2_normalize(t.constant(LOGITS) * 0.5 + 1, 1),
        axis=1,
        weights=w,
        reduction=r,
    ),
    "log_loss": lambda t, w, r: t.losses.log_loss(LABELS, PREDICTIONS, weights=w, reduction=r),
    "log_loss-epsilon": lambda t, w, r: t.losses.log_loss(
        LABELS, PREDICTIONS, w, epsilon=0.1, reduction=r
    ),
    "hinge_loss": lambda t, w, r: t.losses.hinge_loss(LABELS, REGRESSION, weights=w, reduction=r),
    "huber_loss": lambda t, w, r: t.losses.huber_loss(REGRESSION, PREDICTIONS, w, reduction=r),
    "huber_loss-delta": lambda t, w, r: t.losses.huber_loss(
        REGRESSION, PREDICTIONS, w, delta=0.3, reduction=r
    ),
    "sigmoid_cross_entropy": lambda t, w, r: t.losses.sigmoid_cross_entropy(
        LABELS, REGRESSION, weights=w, reduction=r
    ),
    "sigmoid_cross_entropy-smoothing": lambda t, w, r: t.losses.sigmoid_cross_entropy(
        LABELS, REGRESSION, weights=w, label_smoothing=0.2, reduction=r
    ),
    "softmax_cross_entropy": lambda t, w, r: t.losses.softmax_cross_entropy(
        ONEHOT, LOGITS, weights=_flat(w), reduction=r
    ),
    "softmax_cross_entropy-smoothing": lambda t, w, r: t.losses.softmax_cross_entropy(
        ONEHOT, LOGITS, weights=_flat(w), label_smoothing=0.1, reduction=r
    ),
    "sparse_softmax_cross_entropy": lambda t, w, r: t.losses.sparse_softmax_cross_entropy(
        CLASSES, LOGITS, weights=_flat(w), reduction=r
    ),
    "sparse_softmax_cross_entropy-column-labels": lambda t, w, r: (
        t.losses.sparse_softmax_cross_entropy(
            CLASSES.reshape(-1, 1), LOGITS, weights=w, reduction=r
        )
    ),
}


def _flat(w):
    return w.reshape(-1) if isinstance(w, np.ndarray) else w


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weights", sorted(WEIGHTS))
def test_losses_match_tensorflow(tfv1, weights, reduction):
    # Every loss in one graph per (weights, reduction): one TF graph build each.
    def program(t):
        r = getattr(t.losses.Reduction, reduction)
        return [LOSSES[name](t, WEIGHTS[weights], r) for name in names]

    names = sorted(LOSSES)
    ours, theirs = run_both(tfv1, program)
    for name, a, b in zip(names, ours, theirs, strict=True):
        assert np.shape(a) == np.shape(b), name
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=name)


def test_reduction_names_are_tensorflows(tfv1):
    for key in [*REDUCTIONS, "SUM_OVER_NONZERO_WEIGHTS"]:
        assert getattr(tf.losses.Reduction, key) == getattr(tfv1.losses.Reduction, key)
    assert set(tf.losses.Reduction.all()) == set(tfv1.losses.Reduction.all())
    with pytest.raises(ValueError):
        tf.losses.Reduction.validate("mean")


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_compute_weighted_loss_and_its_gradients_match_tensorflow(tfv1, reduction):
    per_element = RNG.normal(size=(N, 3)).astype(np.float32)
    weights = np.array([[1.0], [0.0], [2.0], [0.5], [0.0], [3.0]], np.float32)

    def program(t, losses, w):
        loss = t.losses.compute_weighted_loss(
            losses * losses, w, reduction=getattr(t.losses.Reduction, reduction)
        )
        return [loss, t.gradients(t.reduce_sum(loss), [losses, w])]

    ours, theirs = run_both(tfv1, program, per_element, weights)
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-5, atol=1e-6)
    for a, b in zip(ours[1], theirs[1], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_weights_that_do_not_broadcast_fail_at_build_time(tfv1):
    # [N] weights against [N, 1] losses would broadcast to [N, N] in numpy; TF-1 refuses.
    for module in (tf, tfv1):
        graph = tf.Graph() if module is tf else tfv1.Graph()
        with graph.as_default(), pytest.raises(ValueError):
            module.losses.mean_squared_error(
                REGRESSION, PREDICTIONS, weights=np.ones(N, np.float32)
            )


def test_predictions_of_another_shape_fail_at_build_time():
    with pytest.raises(ValueError):
        tf.losses.mean_squared_error(np.zeros((N, 1)), np.zeros((N, 2)))


def test_losses_collect_and_sum(tfv1):
    def program(t):
        a = t.losses.mean_squared_error(REGRESSION, PREDICTIONS)
        b = t.losses.absolute_difference(REGRESSION, PREDICTIONS, loss_collection=None)
        t.losses.add_loss(t.constant(2.0))
        counts[t.__name__] = len(t.losses.get_losses())
        return [t.losses.get_total_loss(), a, b]

    counts = {}
    ours, theirs = run_both(tfv1, program)
    assert set(counts.values()) == {2}
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)


def test_regularization_loss_sums_the_collection(tfv1):
    def program(t):
        empty = t.losses.get_regularization_loss()
        w = t.constant(np.array([1.0, -2.0], np.float32))
        t.add_to_collection(t.GraphKeys.REGULARIZATION_LOSSES, t.nn.l2_loss(w))
        t.add_to_collection(t.GraphKeys.REGULARIZATION_LOSSES, t.reduce_sum(w) * 0.5)
        return [empty, t.losses.get_regularization_loss(), t.losses.get_total_loss()]

    if not hasattr(tf, "add_to_collection") or not hasattr(tf, "GraphKeys"):
        pytest.skip("tf.add_to_collection / tf.GraphKeys are not at the top level yet")
    ours, theirs = run_both(tfv1, program)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)


def test_loss_dtype_follows_the_losses():
    per_element = tf.placeholder(tf.float64, (None,))
    loss = tf.losses.compute_weighted_loss(per_element)
    assert loss.dtype == np.float64 and loss.shape == tf.TensorShape([])
    with tf.Session() as session:
        got = session.run(loss, {per_element: np.array([1.0, 2.0, 4.0])})
    assert got.dtype == np.float64 and got == pytest.approx(7 / 3)


def test_every_losses_name_has_tensorflows_parameters_in_order(tfv1):
    import inspect

    for name in tf.losses.__all__:
        if name == "Reduction":
            continue
        ours = list(inspect.signature(getattr(tf.losses, name)).parameters)
        theirs = list(inspect.signature(getattr(tfv1.losses, name)).parameters)
        assert ours == theirs, name
