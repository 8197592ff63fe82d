"""Central finite differences of a model's loss: the oracle for its analytic gradients."""

from __future__ import annotations

import numpy as np

import engine as tf


def assert_loss_gradients_match(model, sess, feed, entries=None, seed=0) -> None:
    """Each trainable variable's gradient against (L(w + eps) - L(w - eps)) / (2 eps).

    `entries`: how many random entries per variable to check (None: every entry).
    """
    trainable = [v for v in model.graph.variables if v.trainable]
    grads = sess.run([g for g, _ in tf.compute_gradients(model.loss, trainable)], feed)
    rng = np.random.default_rng(seed)
    eps = 1e-6
    for var, grad in zip(trainable, grads, strict=True):
        dense = grad.to_dense() if isinstance(grad, tf.IndexedSlices) else np.asarray(grad)
        value = sess.get_value(var)
        if entries is None:
            indices = list(np.ndindex(value.shape))
        else:
            indices = [tuple(rng.integers(0, s) for s in value.shape) for _ in range(entries)]
        for idx in indices:
            plus, minus = value.copy(), value.copy()
            plus[idx] += eps
            minus[idx] -= eps
            sess.set_value(var, plus)
            lp = float(sess.run(model.loss, feed))
            sess.set_value(var, minus)
            lm = float(sess.run(model.loss, feed))
            sess.set_value(var, value)
            np.testing.assert_allclose(
                dense[idx], (lp - lm) / (2 * eps), atol=1e-6, rtol=1e-4, err_msg=f"{var.name}{idx}"
            )


def session_in(model, dtype) -> tf.Session:
    """A session over `model` with its trainable variables cast to `dtype` (float64 makes
    finite differences exact enough), variables initialised."""
    for var in model.graph.variables:
        if var.trainable:
            var.initial_value = var.initial_value.astype(dtype)
            var.dtype = var.initial_value.dtype
    sess = tf.Session(model.graph)
    sess.initialize_variables()
    return sess
