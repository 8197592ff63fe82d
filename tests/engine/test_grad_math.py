"""Finite-difference gradient checks for math, reductions, einsum, gather(axis=), clipping and
creation ops (H2's op families); NOT_DIFFERENTIABLE lists the op types passing no gradient."""

from __future__ import annotations

import numpy as np
import pytest

import engine as tf
from tests.engine.gradcheck import check_gradient

RNG = np.random.default_rng(2024)


def _r(*shape, low=-1.0, high=1.0):
    return RNG.uniform(low, high, size=shape)


def _away_from_zero(*shape):
    return _r(*shape, low=0.2, high=1.0) * RNG.choice([-1.0, 1.0], size=shape)


def _distinct(*shape):
    return RNG.permutation(np.arange(np.prod(shape), dtype=np.float64)).reshape(shape) / 7.0


def _einsum(eq):
    return lambda *xs: tf.einsum(eq, *xs)


# (case id, op type, build(*input nodes) -> node, input arrays, differentiable input indices)
CASES = [
    ("abs", "abs", tf.abs, [_away_from_zero(3, 4)], [0]),
    ("pow-broadcast", "pow", tf.pow, [_r(2, 3, low=0.5, high=2.0), _r(3)], [0, 1]),
    ("pow-scalar-exponent", "pow", lambda x: tf.pow(x, 3), [_r(2, 3)], [0]),
    ("maximum", "maximum", tf.maximum, [_distinct(3, 4), _distinct(3, 4)[::-1].copy()], [0, 1]),
    ("maximum-broadcast", "maximum", tf.maximum, [_r(3, 4), _r(4) * 0.5 + 0.01], [0, 1]),
    ("minimum", "minimum", tf.minimum, [_distinct(3, 4), _distinct(3, 4)[::-1].copy()], [0, 1]),
    ("sin", "sin", tf.sin, [_r(2, 3, low=-3, high=3)], [0]),
    ("cos", "cos", tf.cos, [_r(2, 3, low=-3, high=3)], [0]),
    ("log1p", "log1p", tf.log1p, [_r(2, 3, low=-0.5, high=2.0)], [0]),
    ("rsqrt", "rsqrt", tf.rsqrt, [_r(2, 3, low=0.5, high=2.0)], [0]),
    ("reciprocal", "reciprocal", tf.reciprocal, [_away_from_zero(2, 3)], [0]),
    ("sign", "sign", tf.sign, [_away_from_zero(2, 3)], [0]),
    ("softplus", "softplus", tf.softplus, [_r(3, 4, low=-5, high=5)], [0]),
    (
        "add_n",
        "add_n",
        lambda a, b, c: tf.add_n([a, b, c]),
        [_r(2, 3), _r(2, 3), _r(2, 3)],
        [0, 1, 2],
    ),
    ("squared_difference", "squared_difference", tf.squared_difference, [_r(2, 3), _r(3)], [0, 1]),
    (
        "floormod",
        "floormod",
        tf.floormod,
        [_r(2, 3, low=0.2, high=0.8) + np.array([0.0, 2.0, -3.0]), np.full(3, 1.0)],
        [0, 1],
    ),
    ("div-floats", "div", tf.div, [_r(2, 3), _r(3, low=1.0, high=2.0)], [0, 1]),
    ("reduce_min-axis", "reduce_min", lambda x: tf.reduce_min(x, axis=1), [_distinct(3, 4)], [0]),
    ("reduce_min-all", "reduce_min", tf.reduce_min, [_distinct(3, 4)], [0]),
    ("reduce_prod-axis", "reduce_prod", lambda x: tf.reduce_prod(x, 1), [_r(3, 4)], [0]),
    (
        "reduce_prod-with-zero-keepdims",
        "reduce_prod",
        lambda x: tf.reduce_prod(x, axis=[0, 2], keepdims=True),
        [np.concatenate([_r(1, 3, 2), np.zeros((1, 3, 2))]) + np.array([0, 0.5])],
        [0],
    ),
    (
        "reduce_logsumexp",
        "reduce_logsumexp",
        lambda x: tf.reduce_logsumexp(x, axis=-1),
        [_r(3, 4, low=-3, high=3)],
        [0],
    ),
    ("cumsum", "cumsum", lambda x: tf.cumsum(x, axis=1), [_r(2, 4)], [0]),
    (
        "cumsum-exclusive-reverse",
        "cumsum",
        lambda x: tf.cumsum(x, axis=0, exclusive=True, reverse=True),
        [_r(4, 2)],
        [0],
    ),
    ("einsum-matmul", "einsum", _einsum("ij,jk->ik"), [_r(2, 3), _r(3, 4)], [0, 1]),
    ("einsum-rowdot", "einsum", _einsum("bi,bi->b"), [_r(3, 4), _r(3, 4)], [0, 1]),
    ("einsum-batched", "einsum", _einsum("bij,bjk->bik"), [_r(2, 3, 4), _r(2, 4, 2)], [0, 1]),
    ("einsum-transpose", "einsum", _einsum("ij->ji"), [_r(2, 3)], [0]),
    ("einsum-scores", "einsum", _einsum("bd,nd->bn"), [_r(3, 4), _r(5, 4)], [0, 1]),
    ("einsum-sum-out", "einsum", _einsum("ij->i"), [_r(3, 4)], [0]),
    (
        "einsum-ellipsis",
        "einsum",
        _einsum("...ij,...jk->...ik"),
        [_r(2, 2, 3, 4), _r(2, 2, 4, 2)],
        [0, 1],
    ),
    ("einsum-ellipsis-implicit", "einsum", _einsum("...i,i"), [_r(3, 4), _r(4)], [0, 1]),
    (
        "gather-axis1",
        "gather",
        lambda p, i: tf.gather(p, i, axis=1),
        [_r(3, 5, 2), np.array([[4, 0], [4, 2]])],
        [0],
    ),
    (
        "clip_by_value-tensor-bounds",
        "clip_by_value",
        lambda t, lo, hi: tf.clip_by_value(t, lo, hi),
        [np.array([[-0.9, -0.3, 0.1], [0.4, 0.7, -0.6]]), np.full(3, -0.5), np.array(0.5)],
        [0, 1, 2],
    ),
    ("clip_by_norm-clipping", "clip_by_norm", lambda t: tf.clip_by_norm(t, 0.5), [_r(2, 3)], [0]),
    (
        "clip_by_norm-axes-tensor-norm",
        "clip_by_norm",
        lambda t, c: tf.clip_by_norm(t, c, axes=[1]),
        [np.array([[3.0, 4.0, 0.5], [0.1, 0.2, -0.1]]), np.array(1.5)],
        [0, 1],
    ),
    (
        "squared_norm",
        "squared_norm",
        lambda a, b: tf.global_norm([a, b]),
        [_r(2, 3), _r(4)],
        [0, 1],
    ),
    (
        "clip_scale",
        "clip_scale",
        lambda a, b: tf.add_n(
            [c * (i + 1.0) for i, c in enumerate(tf.clip_by_global_norm([a, b], 0.7)[0][:1])]
        ),
        [_r(2, 3), _r(4)],
        [0, 1],
    ),
    (
        "reshape-run-time-shape",
        "reshape",
        lambda x: tf.reshape(x, [tf.gather(tf.shape(x), 1), -1]),
        [_r(2, 3)],
        [0],
    ),
    ("fill-value", "fill", lambda v: tf.fill(tf.constant([2, 3]), v), [np.array(0.7)], [0]),
]

# Op types H2 owns that pass no gradient (TF-1 gives none), each tested for values elsewhere.
NOT_DIFFERENTIABLE = {
    "ceil",
    "equal",
    "floor",
    "floordiv",
    "greater",
    "greater_equal",
    "less",
    "less_equal",
    "logical_and",
    "logical_not",
    "logical_or",
    "logical_xor",
    "not_equal",
    "ones_like",
    "random_normal",
    "random_uniform",
    "range",
    "reduce_all",
    "reduce_any",
    "round",
    "truncated_normal",
    "zeros_like",
}


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_gradient_matches_finite_differences(device, case):
    check_gradient(device, case)


def test_non_differentiable_ops_pass_zero_gradient(device):
    x = tf.placeholder(tf.float64, (3,))
    y = tf.floor(x) + tf.round(x) + tf.ceil(x) + tf.cast(tf.greater(x, 0.0), tf.float64)
    loss = tf.reduce_sum(y * x)
    (grad,) = tf.gradients(loss, [x])
    value = np.array([0.3, -1.7, 2.2])
    with tf.Session(device=device) as session:
        expected = np.floor(value) + np.round(value) + np.ceil(value) + (value > 0)
        np.testing.assert_allclose(session.run(grad, {x: value}), expected)


def test_gather_axis0_gradient_is_row_sparse(device):
    table = tf.Variable(np.arange(12.0).reshape(4, 3))
    loss = tf.reduce_sum(tf.gather(table, [3, 1, 3]))
    (grad,) = tf.gradients(loss, [table])
    with tf.Session(device=device) as session:
        session.run(tf.global_variables_initializer())
        value = session.run(grad)
    assert isinstance(value, tf.IndexedSlices)
    assert sorted(value.indices.tolist()) == [1, 3, 3]
