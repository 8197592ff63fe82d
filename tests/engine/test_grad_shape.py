"""Finite-difference gradient checks of the shape and slicing ops (and tensordot)."""

from __future__ import annotations

import numpy as np
import pytest

import engine as tf
from engine.ops_slice import getitem
from tests.engine.gradcheck import check_gradient

RNG = np.random.default_rng(2024)


def _r(*shape):
    return RNG.uniform(-1.0, 1.0, size=shape)


def _weighted(nodes):
    # Every piece weighted differently, so a piece routed to the wrong place shows.
    total = nodes[0]
    for k, node in enumerate(nodes[1:], start=2):
        total = total + node * float(k)
    return total


# (case id, op type, build(*input nodes) -> node, input arrays, indices of differentiable inputs)
CASES = [
    (
        "strided_slice-column",
        "strided_slice",
        lambda x: getitem(x, (slice(None), 0)),
        [_r(3, 4)],
        [0],
    ),
    ("strided_slice-range", "strided_slice", lambda x: getitem(x, slice(1, 3)), [_r(4, 2)], [0]),
    (
        "strided_slice-newaxis-ellipsis",
        "strided_slice",
        lambda x: getitem(x, (Ellipsis, None, slice(None, None, -2))),
        [_r(2, 5)],
        [0],
    ),
    (
        "strided_slice-last",
        "strided_slice",
        lambda x: getitem(x, (slice(None), -1)),
        [_r(3, 4)],
        [0],
    ),
    (
        "strided_slice-masks",
        "strided_slice",
        lambda x: tf.strided_slice(x, [0, 1], [2, 0], [1, 2], end_mask=2),
        [_r(3, 5)],
        [0],
    ),
    ("slice", "strided_slice", lambda x: tf.slice(x, [1, 0], [2, -1]), [_r(4, 3)], [0]),
    (
        "slice-node-begin",
        "strided_slice_dynamic",
        lambda x, i: tf.slice(x, [i, 0], [2, -1]),
        [_r(4, 3), np.array(1, np.int32)],
        [0],
    ),
    ("split-equal", "split", lambda x: _weighted(tf.split(x, 3, axis=1)), [_r(2, 6)], [0]),
    ("split-sizes", "split", lambda x: tf.split(x, [1, -1], axis=0)[1], [_r(4, 2)], [0]),
    ("unstack", "strided_slice", lambda x: _weighted(tf.unstack(x, axis=1)), [_r(2, 3)], [0]),
    ("expand_dims", "expand_dims", lambda x: tf.expand_dims(x, -1), [_r(2, 3)], [0]),
    ("squeeze-all", "squeeze", tf.squeeze, [_r(2, 1, 3, 1)], [0]),
    ("squeeze-axis", "squeeze", lambda x: tf.squeeze(x, axis=[1]), [_r(2, 1, 1)], [0]),
    ("stack-axis1", "stack", lambda a, b: tf.stack([a, b], axis=1), [_r(2, 3), _r(2, 3)], [0, 1]),
    ("stack-last", "stack", lambda a, b: tf.stack([a, b, a], axis=-1), [_r(2), _r(2)], [0, 1]),
    ("tile", "tile", lambda x: tf.tile(x, [2, 3]), [_r(2, 3)], [0]),
    (
        "tile-node-multiple",
        "tile",
        lambda x, y: tf.tile(x, [getitem(tf.shape(y), 0), 2]),
        [_r(1, 3), _r(4, 2)],
        [0],
    ),
    ("tile-rank3", "tile", lambda x: tf.tile(x, [1, 2, 2]), [_r(2, 1, 3)], [0]),
    (
        "pad-constant",
        "pad",
        lambda x: tf.pad(x, [[1, 0], [2, 1]], constant_values=3),
        [_r(2, 3)],
        [0],
    ),
    ("pad-reflect", "pad", lambda x: tf.pad(x, [[1, 2], [2, 1]], "REFLECT"), [_r(4, 3)], [0]),
    ("pad-symmetric", "pad", lambda x: tf.pad(x, [[2, 1], [0, 3]], "SYMMETRIC"), [_r(3, 3)], [0]),
    ("broadcast_to", "broadcast_to", lambda x: tf.broadcast_to(x, [2, 3, 4]), [_r(3, 1)], [0]),
    (
        "broadcast_to-shape-of",
        "broadcast_to",
        lambda x, y: tf.broadcast_to(x, tf.shape(y)),
        [_r(1, 3), _r(2, 3)],
        [0],
    ),
    ("reverse", "reverse", lambda x: tf.reverse(x, [0, -1]), [_r(2, 3, 2)], [0]),
    (
        "tensordot-pairs",
        "tensordot",
        lambda a, b: tf.tensordot(a, b, [[2, 0], [0, 1]]),
        [_r(2, 3, 4), _r(4, 2, 5)],
        [0, 1],
    ),
    (
        "tensordot-int",
        "tensordot",
        lambda a, b: tf.tensordot(a, b, 1),
        [_r(2, 3), _r(3, 4)],
        [0, 1],
    ),
    (
        "strided_slice_dynamic-column",
        "strided_slice_dynamic",
        lambda x, i: getitem(x, (slice(None), i)),
        [_r(3, 4), np.array(2)],
        [0],
    ),
    (
        "strided_slice_dynamic-bounds",
        "strided_slice_dynamic",
        lambda x, i, j: getitem(x, (slice(i, j), None, -1)),
        [_r(4, 3), np.array(1), np.array(-1)],
        [0],
    ),
]


# Integer-valued shape facts: no gradient, forward-tested in test_shape_ops.py.
NOT_DIFFERENTIABLE = {"shape", "size", "rank"}


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_gradient_matches_finite_differences(device, case):
    check_gradient(device, case)


def test_shape_passes_no_gradient(device):
    x = tf.placeholder(tf.float64, (2, 3))
    loss = tf.reduce_sum(x) + tf.reduce_sum(tf.cast(tf.shape(x), tf.float64))
    (grad,) = tf.gradients(loss, [x])
    with tf.Session(device=device) as session:
        np.testing.assert_allclose(session.run(grad, {x: np.zeros((2, 3))}), np.ones((2, 3)))
