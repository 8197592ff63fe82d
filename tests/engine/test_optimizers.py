"""Each optimizer against a hand-written numpy implementation of TF-1's update rule."""

from __future__ import annotations

import numpy as np
import pytest

import engine as tf

RNG = np.random.default_rng(3)
X = RNG.standard_normal((8, 3))
Y = RNG.standard_normal((8, 2))
W0 = RNG.standard_normal((3, 2))
B0 = RNG.standard_normal(2)
STEPS = 4


def _grads(w, b):
    """d/dw, d/db of mean((X @ w + b - Y) ** 2), worked out by hand."""
    r = X @ w + b - Y
    return 2 * X.T @ r / r.size, 2 * r.sum(axis=0) / r.size


def _sgd(lr):
    def step(p, g, s, t):
        return p - lr * g

    return step


def _momentum(lr, mu, nesterov=False):
    def step(p, g, s, t):
        s["a"] = mu * s.get("a", 0.0) + g
        return p - lr * (g + mu * s["a"] if nesterov else s["a"])

    return step


def _adagrad(lr, init=0.1):
    def step(p, g, s, t):
        s["acc"] = s.get("acc", init) + g**2
        return p - lr * g / np.sqrt(s["acc"])

    return step


def _adam(lr, b1=0.9, b2=0.999, eps=1e-8):
    def step(p, g, s, t):
        s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
        s["v"] = b2 * s.get("v", 0.0) + (1 - b2) * g**2
        lr_t = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
        return p - lr_t * s["m"] / (np.sqrt(s["v"]) + eps)

    return step


def _ftrl(lr, l1, l2, init=0.1):
    def step(p, g, s, t):
        n = s.get("n", np.full_like(p, init))
        z = s.get("z", np.zeros_like(p))
        n_new = n + g**2
        z = z + g - (np.sqrt(n_new) - np.sqrt(n)) / lr * p
        s["n"], s["z"] = n_new, z
        w = -(z - np.sign(z) * l1) / (np.sqrt(n_new) / lr + 2 * l2)
        return np.where(np.abs(z) <= l1, 0.0, w)

    return step


CASES = {
    "sgd": (lambda: tf.train.GradientDescentOptimizer(0.1), _sgd(0.1)),
    "momentum": (lambda: tf.train.MomentumOptimizer(0.05, 0.9), _momentum(0.05, 0.9)),
    "nesterov": (
        lambda: tf.train.MomentumOptimizer(0.05, 0.9, use_nesterov=True),
        _momentum(0.05, 0.9, nesterov=True),
    ),
    "adagrad": (lambda: tf.train.AdagradOptimizer(0.2), _adagrad(0.2)),
    "adam": (lambda: tf.train.AdamOptimizer(0.1), _adam(0.1)),
    "ftrl": (
        lambda: tf.train.FtrlOptimizer(
            0.3, l1_regularization_strength=0.05, l2_regularization_strength=0.2
        ),
        _ftrl(0.3, 0.05, 0.2),
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_optimizer_matches_reference(device, name):
    make, reference = CASES[name]
    x = tf.placeholder(tf.float64, (None, 3))
    y = tf.placeholder(tf.float64, (None, 2))
    w = tf.Variable(W0)
    b = tf.Variable(B0)
    loss = tf.reduce_mean(tf.square(x @ w + b - y))
    train_op = make().minimize(loss)
    ref_w, ref_b, state_w, state_b = W0.copy(), B0.copy(), {}, {}
    with tf.Session(device=device) as session:
        session.run(tf.global_variables_initializer())
        for t in range(1, STEPS + 1):
            loss_value, _ = session.run([loss, train_op], {x: X, y: Y})
            # The fetched loss is the pre-update one, from the same forward pass.
            np.testing.assert_allclose(loss_value, np.mean((X @ ref_w + ref_b - Y) ** 2))
            gw, gb = _grads(ref_w, ref_b)
            ref_w, ref_b = reference(ref_w, gw, state_w, t), reference(ref_b, gb, state_b, t)
            np.testing.assert_allclose(session.get_value(w), ref_w, rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(session.get_value(b), ref_b, rtol=1e-10, atol=1e-12)


def test_float32_stays_float32_through_training():
    x = tf.placeholder(tf.float32, (None, 3))
    y = tf.placeholder(tf.float32, (None, 2))
    w = tf.Variable(W0.astype(np.float32))
    b = tf.Variable(B0.astype(np.float32))
    logits = tf.fused_dense(x, w, b, "relu") * 0.5 + 1.0
    loss = tf.reduce_mean(tf.sigmoid_cross_entropy_with_logits(labels=y, logits=logits))
    grads = tf.gradients(loss, [w, b])
    train_op = tf.train.AdamOptimizer(0.01).minimize(loss)
    feed = {x: X.astype(np.float32), y: (Y > 0).astype(np.float32)}
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        loss_value, gw, gb, _ = session.run([loss, grads[0], grads[1], train_op], feed)
        assert loss_value.dtype == np.float32
        assert gw.dtype == np.float32 and gb.dtype == np.float32
        assert session.get_value(w).dtype == np.float32


def test_training_integer_variables_is_refused():
    w = tf.Variable([[1, 2]])
    loss = tf.reduce_sum(w * w)
    with pytest.raises(tf.GraphError, match=r"'variable'.*int64.*floating-point"):
        tf.train.GradientDescentOptimizer(0.1).minimize(loss)


def test_bad_hyperparameters_are_named():
    with pytest.raises(ValueError, match="learning_rate must be > 0"):
        tf.train.AdamOptimizer(0.0)
