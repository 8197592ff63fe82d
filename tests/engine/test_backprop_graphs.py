"""Graphs that break a naive breadth-first backprop, checked against finite differences."""

from __future__ import annotations

import numpy as np

import engine as tf

RNG = np.random.default_rng(99)


def _numeric_gradient(f, x, eps=1e-6):
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        orig = x[i]
        x[i] = orig + eps
        up = f()
        x[i] = orig - eps
        down = f()
        x[i] = orig
        grad[i] = (up - down) / (2 * eps)
    return grad


def _check(device, losses, variables, feed=None):
    """gradients(sum(losses), variables) equals finite differences of the summed loss."""
    grads = tf.gradients(losses, variables)
    with tf.Session(device=device) as session:
        session.initialize_variables()
        got = session.run(grads, feed)
        for var, g in zip(variables, got, strict=True):
            value = var.initial_value

            def f(value=value, var=var):
                session.set_value(var, value)
                return sum(float(v) for v in session.run(losses, feed))

            expected = _numeric_gradient(f, value)
            session.set_value(var, value)
            np.testing.assert_allclose(g, expected, rtol=1e-6, atol=1e-9, err_msg=var.name)


def test_skip_connection(device):
    x = tf.constant(RNG.standard_normal((4, 3)))
    w1 = tf.Variable(RNG.standard_normal((3, 3)), name="w1")
    w2 = tf.Variable(RNG.standard_normal((3, 3)), name="w2")
    h = tf.tanh(x @ w1)
    out = tf.tanh(h @ w2) + h  # residual: h reaches the loss directly and through w2
    loss = tf.reduce_sum(tf.square(out + x))
    _check(device, [loss], [w1, w2])


def test_variable_reached_by_several_paths(device):
    x = tf.constant(RNG.standard_normal((5, 2)))
    w = tf.Variable(RNG.standard_normal((2, 2)), name="w")
    a = tf.sigmoid(x @ w)
    b = tf.exp(tf.reduce_sum(w * w, axis=0))  # w used directly, not via matmul
    c = (a @ w) * b  # and a third time, downstream of its first use
    loss = tf.reduce_mean(c) + tf.l2_loss(w)
    _check(device, [loss], [w])


def test_variable_used_by_two_losses(device):
    x = tf.constant(RNG.standard_normal((6, 3)))
    w = tf.Variable(RNG.standard_normal((3, 1)), name="shared")
    v = tf.Variable(RNG.standard_normal((3, 1)), name="only_first")
    loss1 = tf.reduce_sum(tf.square(x @ w + x @ v))
    loss2 = tf.reduce_mean(tf.sigmoid(x @ w))
    _check(device, [loss1, loss2], [w, v])
    _check(device, [loss2], [w])
    # Each loss's own gradient in one run, from one shared forward pass.
    g1, g2, g12 = (
        tf.gradients(loss1, w)[0],
        tf.gradients(loss2, w)[0],
        tf.gradients([loss1, loss2], w)[0],
    )
    with tf.Session(device=device) as session:
        session.initialize_variables()
        a, b, both = session.run([g1, g2, g12])
    np.testing.assert_allclose(a + b, both, rtol=1e-12)


def test_broadcasting_inputs(device):
    x = tf.placeholder(tf.float64, (None, 3))
    scale = tf.Variable(RNG.standard_normal((1, 3)), name="scale")  # stretched over rows
    bias = tf.Variable(RNG.standard_normal(3), name="bias")  # rank-1 against rank-2
    s = tf.Variable(np.array(0.7), name="scalar")  # 0-d against everything
    y = tf.relu(x * scale + bias) / (s * s + 1.0) - s
    loss = tf.reduce_sum(tf.square(y))
    _check(device, [loss], [scale, bias, s], {x: RNG.standard_normal((4, 3))})


def test_disconnected_variable_has_no_gradient():
    w = tf.Variable(np.ones(2))
    unused = tf.Variable(np.ones(2))
    loss = tf.reduce_sum(w * 3.0)
    grad_w, grad_unused = tf.gradients(loss, [w, unused])
    assert grad_unused is None
    with tf.Session() as session:
        session.initialize_variables()
        np.testing.assert_allclose(session.run(grad_w), [3.0, 3.0])
