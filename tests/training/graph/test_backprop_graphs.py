"""Graphs that break a naive breadth-first backprop, checked against finite differences."""

from __future__ import annotations

import numpy as np

import training.graph as ts

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
    grads = ts.gradients(losses, variables)
    with ts.Session(device=device) as session:
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
    x = ts.constant(RNG.standard_normal((4, 3)))
    w1 = ts.Variable(RNG.standard_normal((3, 3)), name="w1")
    w2 = ts.Variable(RNG.standard_normal((3, 3)), name="w2")
    h = ts.tanh(x @ w1)
    out = ts.tanh(h @ w2) + h  # residual: h reaches the loss directly and through w2
    loss = ts.reduce_sum(ts.square(out + x))
    _check(device, [loss], [w1, w2])


def test_variable_reached_by_several_paths(device):
    x = ts.constant(RNG.standard_normal((5, 2)))
    w = ts.Variable(RNG.standard_normal((2, 2)), name="w")
    a = ts.sigmoid(x @ w)
    b = ts.exp(ts.reduce_sum(w * w, axis=0))  # w used directly, not via matmul
    c = (a @ w) * b  # and a third time, downstream of its first use
    loss = ts.reduce_mean(c) + ts.l2_loss(w)
    _check(device, [loss], [w])


def test_variable_used_by_two_losses(device):
    x = ts.constant(RNG.standard_normal((6, 3)))
    w = ts.Variable(RNG.standard_normal((3, 1)), name="shared")
    v = ts.Variable(RNG.standard_normal((3, 1)), name="only_first")
    loss1 = ts.reduce_sum(ts.square(x @ w + x @ v))
    loss2 = ts.reduce_mean(ts.sigmoid(x @ w))
    _check(device, [loss1, loss2], [w, v])
    _check(device, [loss2], [w])
    # Each loss's own gradient in one run, from one shared forward pass.
    g1, g2, g12 = (
        ts.gradients(loss1, w)[0],
        ts.gradients(loss2, w)[0],
        ts.gradients([loss1, loss2], w)[0],
    )
    with ts.Session(device=device) as session:
        a, b, both = session.run([g1, g2, g12])
    np.testing.assert_allclose(a + b, both, rtol=1e-12)


def test_broadcasting_inputs(device):
    x = ts.placeholder(ts.float64, (None, 3))
    scale = ts.Variable(RNG.standard_normal((1, 3)), name="scale")  # stretched over rows
    bias = ts.Variable(RNG.standard_normal(3), name="bias")  # rank-1 against rank-2
    s = ts.Variable(np.array(0.7), name="scalar")  # 0-d against everything
    y = ts.relu(x * scale + bias) / (s * s + 1.0) - s
    loss = ts.reduce_sum(ts.square(y))
    _check(device, [loss], [scale, bias, s], {x: RNG.standard_normal((4, 3))})


def test_disconnected_variable_has_no_gradient():
    w = ts.Variable(np.ones(2))
    unused = ts.Variable(np.ones(2))
    loss = ts.reduce_sum(w * 3.0)
    grad_w, grad_unused = ts.gradients(loss, [w, unused])
    assert grad_unused is None
    with ts.Session() as session:
        np.testing.assert_allclose(session.run(grad_w), [3.0, 3.0])
