"""Finite-difference gradient checks shared by every op family's tests.

A case is (case id, op type, build(*input nodes) -> node, input arrays, indices of the
differentiable inputs); the loss is sum(out * fixed random weights).
"""

from __future__ import annotations

import numpy as np

import engine as tf

RNG = np.random.default_rng(4321)


def _loss_value(device, graph, loss, feed):
    # A fresh session per evaluation: ops drawing random numbers (dropout) see the same draws.
    with tf.Session(graph, device=device, seed=7) as session:
        return float(session.run(loss, feed))


def _numeric_gradient(f, x, eps=1e-6):
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        orig = x[i]
        x[i] = orig + eps
        up = f(x)
        x[i] = orig - eps
        down = f(x)
        x[i] = orig
        grad[i] = (up - down) / (2 * eps)
    return grad


def check_gradient(device, case, rtol=1e-6, atol=1e-8):
    """Assert the op's analytic gradient matches central finite differences (float64)."""
    _, _, build, inputs, diff = case
    inputs = [a.copy() for a in inputs]
    with tf.Graph().as_default() as graph:
        nodes = [tf.placeholder(a.dtype, a.shape) for a in inputs]
        out = build(*nodes)
        feed = dict(zip(nodes, inputs, strict=True))
        with tf.Session(graph, device=device, seed=7) as session:
            out_shape = np.shape(session.run(out, feed))
        weights = tf.constant(RNG.standard_normal(out_shape))
        loss = tf.reduce_sum(out * weights)
        grads = tf.gradients(loss, [nodes[i] for i in diff])
        with tf.Session(graph, device=device, seed=7) as session:
            analytic = session.run(grads, feed)
    for i, got in zip(diff, analytic, strict=True):
        if isinstance(got, tf.IndexedSlices):
            got = got.to_dense()

        def f(x, i=i):
            return _loss_value(device, graph, loss, {**feed, nodes[i]: x})

        expected = _numeric_gradient(f, inputs[i])
        assert got.shape == inputs[i].shape
        np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol, err_msg=f"input {i}")
