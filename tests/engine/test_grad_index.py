"""Finite-difference gradient checks of the indexing ops (select, gathers, top_k)."""

from __future__ import annotations

import numpy as np
import pytest

import engine as tf
from tests.engine.gradcheck import check_gradient

RNG = np.random.default_rng(77)


def _r(*shape):
    return RNG.uniform(-1.0, 1.0, size=shape)


def _distinct(*shape):
    # top_k's choice must not flip within the finite-difference step: no near-ties.
    return RNG.permutation(np.arange(np.prod(shape), dtype=np.float64)).reshape(shape) / 5.0


_CONDITION = np.array([[True, False, True], [False, False, True]])

# (case id, op type, build(*input nodes) -> node, input arrays, indices of differentiable inputs)
CASES = [
    ("where-select", "select", tf.where, [_CONDITION, _r(2, 3), _r(2, 3)], [1, 2]),
    (
        "where-rows",
        "select",
        tf.where,
        [np.array([True, False, True]), _r(3, 2), _r(3, 2)],
        [1, 2],
    ),
    (
        "where-broadcast-y",
        "select",
        lambda c, x, y: tf.where(c, x, y),
        [_CONDITION, _r(2, 3), _r(1, 3)],
        [1, 2],
    ),
    (
        "gather_nd-points-repeated",
        "gather_nd",
        tf.gather_nd,
        [_r(3, 4), np.array([[0, 1], [2, 3], [0, 1]])],
        [0],
    ),
    ("gather_nd-rows", "gather_nd", tf.gather_nd, [_r(3, 2, 2), np.array([[[2]], [[0]]])], [0]),
    (
        "boolean_mask-2d-mask",
        "boolean_mask",
        tf.boolean_mask,
        [_r(2, 3, 2), np.array([[True, False, True], [False, True, True]])],
        [0],
    ),
    (
        "boolean_mask-axis1",
        "boolean_mask",
        lambda x, m: tf.boolean_mask(x, m, axis=1),
        [_r(2, 4), np.array([False, True, True, False])],
        [0],
    ),
    (
        "where_v2-broadcast",
        "select_v2",
        tf.where_v2,
        [_CONDITION[:1], _r(2, 3), _r(2, 1)],
        [1, 2],
    ),
    ("sort-last", "take_along_axis", tf.sort, [_distinct(3, 4)], [0]),
    (
        "sort-axis0-descending",
        "take_along_axis",
        lambda x: tf.sort(x, axis=0, direction="DESCENDING"),
        [_distinct(4, 2, 3)],
        [0],
    ),
    (
        "scatter_nd-repeats",
        "scatter_nd",
        lambda i, u: tf.scatter_nd(i, u, [3, 2]),
        [np.array([[0], [2], [0]]), _r(3, 2)],
        [1],
    ),
    ("top_k-rows", "take_along_axis", lambda x: tf.top_k(x, 2)[0], [_distinct(3, 5)], [0]),
    ("top_k-vector", "take_along_axis", lambda x: tf.top_k(x, 3)[0], [_distinct(6)], [0]),
]

# Index-valued or constant-valued outputs: no gradient; forward-tested in test_index_ops.py.
NOT_DIFFERENTIABLE = {
    "argmax",
    "argmin",
    "argsort",
    "one_hot",
    "sequence_mask",
    "top_k_indices",
    "unique",
    "where_indices",
}


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_gradient_matches_finite_differences(device, case):
    check_gradient(device, case)


def test_top_k_indices_carry_no_gradient_but_values_do(device):
    x = tf.placeholder(tf.float64, (4,))
    values, indices = tf.top_k(x, 2)
    loss = tf.reduce_sum(values) + tf.reduce_sum(tf.cast(indices, tf.float64))
    (grad,) = tf.gradients(loss, [x])
    with tf.Session(device=device) as session:
        got = session.run(grad, {x: np.array([0.5, 3.0, -1.0, 2.0])})
    np.testing.assert_allclose(got, [0.0, 1.0, 0.0, 1.0])
