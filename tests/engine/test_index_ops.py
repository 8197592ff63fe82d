"""Indexing ops against real TensorFlow (compat.v1): values, static shapes, dtypes."""

from __future__ import annotations

import numpy as np
import pytest

import engine as tf
from engine.ops_slice import getitem
from tests.engine.tf_forward_oracle import assert_matches_tf

RNG = np.random.default_rng(11)
X34 = RNG.standard_normal((3, 4)).astype(np.float32)
TIES = np.array([[1, 3, 3, 0, 2], [5, 5, 5, 1, 0], [2, 2, 2, 2, 2]], np.float32)
COND = np.array([[True, False, True, False], [False, False, True, True], [True] * 4])
X_LONG = RNG.standard_normal((3, 2, 300)).astype(np.float32)
IDS = np.array([[0, 2], [3, -1], [1, 1]], np.int32)


def _top_k(t):
    # TF-1 spells it tf.nn.top_k; the engine's tf.nn gets it from ops_index (H4 wires it).
    return t.nn.top_k if hasattr(t.nn, "top_k") else t.top_k


def _shape_dim(t, x, i):
    return getitem(t.shape(x), i) if t is tf else t.shape(x)[i]


CASES = [
    ("argmax-axis1", lambda t, x: t.argmax(x, axis=1), [TIES]),
    ("argmax-default-axis", lambda t, x: t.argmax(x), [TIES]),
    ("argmax-dimension-int32", lambda t, x: t.argmax(x, dimension=1, output_type=t.int32), [X34]),
    ("argmin-neg-axis", lambda t, x: t.argmin(x, axis=-1), [TIES]),
    ("where-select", lambda t, c, x, y: t.where(c, x, y), [COND, X34, -X34]),
    ("where-rows", lambda t, c, x, y: t.where(c, x, y), [COND[:, 0], X34, -X34]),
    ("where-coordinates", lambda t, c: t.where(c), [COND]),
    ("where-coordinates-3d", lambda t, c: t.where(c), [COND.reshape(2, 3, 2)]),
    ("one_hot", lambda t, i: t.one_hot(i, 4), [IDS]),
    ("one_hot-axis0", lambda t, i: t.one_hot(i, 3, axis=0), [IDS]),
    ("one_hot-axis1", lambda t, i: t.one_hot(i, 3, axis=1), [IDS]),
    ("one_hot-values", lambda t, i: t.one_hot(i, 4, on_value=5, off_value=-1), [IDS]),
    ("one_hot-dtype", lambda t, i: t.one_hot(i, 2, dtype=t.float64), [IDS[:, 0]]),
    ("one_hot-float-values", lambda t, i: t.one_hot(i, 3, 0.9, 0.05), [IDS]),
    ("slice", lambda t, x: t.slice(x, [1, 1], [2, 3]), [X34]),
    ("gather_nd-points", lambda t, x, i: t.gather_nd(x, i), [X34, np.array([[0, 3], [2, 1]])]),
    ("gather_nd-rows", lambda t, x, i: t.gather_nd(x, i), [X34, np.array([[2], [0]], np.int32)]),
    (
        "gather_nd-batched-points",
        lambda t, x, i: t.gather_nd(x, i),
        [X34.reshape(3, 2, 2), np.array([[[0, 1, 1]], [[2, 0, 1]]], np.int64)],
    ),
    ("boolean_mask", lambda t, x, m: t.boolean_mask(x, m), [X34, COND[:, 1]]),
    ("boolean_mask-2d", lambda t, x, m: t.boolean_mask(x, m), [X34, COND]),
    ("boolean_mask-axis1", lambda t, x, m: t.boolean_mask(x, m, axis=1), [X34, COND[0]]),
    ("sequence_mask", lambda t, n: t.sequence_mask(n, 5), [np.array([0, 2, 5], np.int32)]),
    (
        "sequence_mask-shape-maxlen",
        lambda t, n, x: t.sequence_mask(n, _shape_dim(t, x, 1)),
        [np.array([0, 2, 4], np.int32), X34],
    ),
    ("sequence_mask-max", lambda t, n: t.sequence_mask(n), [np.array([[1, 3]], np.int32)]),
    (
        "sequence_mask-float",
        lambda t, n: t.sequence_mask(n, 3, dtype=t.float32),
        [np.array([1, 3], np.int64)],
    ),
    ("top_k-ties", lambda t, x: _top_k(t)(x, 3), [TIES]),
    ("top_k-default-k", lambda t, x: _top_k(t)(x), [X34]),
    ("top_k-vector", lambda t, x: _top_k(t)(x, k=4), [X34[0]]),
    ("top_k-ints", lambda t, x: _top_k(t)(x, 2), [TIES.astype(np.int32)]),
    # Rows long enough for the partitioned path, with many ties at the k-th value.
    ("top_k-long-rows-ties", lambda t, x: _top_k(t)(x, 25), [np.round(X_LONG, 1)]),
    ("top_k-long-rows", lambda t, x: _top_k(t)(x, 7), [X_LONG]),
    ("where_v2-broadcast", lambda t, c, x, y: t.where_v2(c, x, y), [COND[0], X34, X34[:1]]),
    ("where_v2-coordinates", lambda t, c: t.where_v2(c), [COND]),
    ("sort", lambda t, x: t.sort(x), [TIES]),
    ("sort-descending-axis0", lambda t, x: t.sort(x, axis=0, direction="DESCENDING"), [TIES]),
    ("argsort-ties", lambda t, x: t.argsort(x), [TIES]),
    ("argsort-descending", lambda t, x: t.argsort(x, direction="DESCENDING"), [TIES]),
    ("argsort-axis0-ints", lambda t, x: t.argsort(x, axis=0), [TIES.astype(np.int32)]),
    (
        "scatter_nd-repeats",
        lambda t, i, u: t.scatter_nd(i, u, [3, 4]),
        [np.array([[0, 1], [2, 3], [0, 1]], np.int32), np.array([1.0, 2.0, 4.0], np.float32)],
    ),
    (
        "scatter_nd-rows",
        lambda t, i, u: t.scatter_nd(i, u, [4, 3]),
        [np.array([[3], [1]], np.int64), X34[:2, :3]],
    ),
    ("unique", lambda t, x: tuple(t.unique(x)), [np.array([4, 1, 4, 2, 1, 7], np.int32)]),
    (
        "unique-int64-idx",
        lambda t, x: tuple(t.unique(x, out_idx=t.int64)),
        [np.array([0.5, -1.0, 0.5], np.float32)],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_forward_matches_tensorflow(device, case):
    _, build, arrays = case
    assert_matches_tf(build, arrays, device)


def test_top_k_returns_values_then_int32_indices_with_gradient_to_input():
    x = tf.placeholder(tf.float32, (None, 5))
    values, indices = tf.top_k(x, k=2)
    assert tf.top_k(x, k=2).indices.op_type == "top_k_indices"
    assert values.shape.as_list() == [None, 2] and indices.dtype == np.int32
    (grad,) = tf.gradients(tf.reduce_sum(values), [x])
    with tf.Session() as session:
        got = session.run(grad, {x: TIES})
    np.testing.assert_array_equal(got, [[0, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1, 1, 0, 0, 0]])


def test_top_k_refuses_k_beyond_the_last_dimension():
    with pytest.raises(ValueError, match="at least k=6 columns"):
        tf.top_k(tf.placeholder(tf.float32, (None, 5)), 6)


def test_argmax_dtype_is_int64_and_axis_is_checked():
    x = tf.placeholder(tf.float32, (None, 4))
    assert tf.argmax(x, 1).dtype == np.int64
    with pytest.raises(ValueError, match="out of range"):
        tf.argmax(x, 2)
    with pytest.raises(ValueError, match="both 'axis' and 'dimension'"):
        tf.argmax(x, 1, dimension=1)


def test_where_needs_both_x_and_y_or_neither():
    c = tf.placeholder(tf.bool_, (3,))
    with pytest.raises(ValueError, match="both be given"):
        tf.where(c, x=tf.placeholder(tf.float32, (3,)))


def test_where_refuses_shapes_that_cannot_match():
    c = tf.placeholder(tf.bool_, (2, 3))
    x = tf.placeholder(tf.float32, (2, 3))
    with pytest.raises(ValueError, match="Dimensions must be equal"):
        tf.where(c, x, tf.placeholder(tf.float32, (2, 4)))


def test_sequence_mask_takes_maxlen_from_a_node():
    lengths = tf.placeholder(tf.int32, (None,))
    x = tf.placeholder(tf.float32, (None, None))
    mask = tf.sequence_mask(lengths, getitem(tf.shape(x), 1))
    assert mask.shape.as_list() == [None, None]
    with tf.Session() as session:
        got = session.run(mask, {lengths: [1, 3], x: np.zeros((2, 4), np.float32)})
    np.testing.assert_array_equal(got, [[1, 0, 0, 0], [1, 1, 1, 0]])


def test_boolean_mask_checks_shapes():
    x = tf.placeholder(tf.float32, (3, 4))
    with pytest.raises(ValueError, match="incompatible"):
        tf.boolean_mask(x, tf.placeholder(tf.bool_, (4,)))
    with pytest.raises(ValueError, match="rank of mask must be known"):
        tf.boolean_mask(x, tf.placeholder(tf.bool_))
    loose = tf.placeholder(tf.float32, (None, 4))
    masked = tf.boolean_mask(loose, tf.placeholder(tf.bool_, (None,)))
    with pytest.raises(tf.OpExecutionError, match="does not match"), tf.Session() as session:
        session.run(masked, {masked.input_nodes[0]: X34, masked.input_nodes[1]: [True, False]})


def test_gather_nd_refuses_index_tuples_longer_than_the_rank():
    with pytest.raises(ValueError, match="index tuples of length 3"):
        tf.gather_nd(tf.placeholder(tf.float32, (3, 4)), tf.placeholder(tf.int32, (5, 3)))


def test_unique_is_a_pair_in_order_of_first_appearance():
    y, idx = tf.unique(tf.constant(np.array([3, 3, 1, 2, 1], np.int32)))
    with tf.Session() as session:
        got_y, got_idx = session.run([y, idx])
    np.testing.assert_array_equal(got_y, [3, 1, 2])
    np.testing.assert_array_equal(got_idx, [0, 0, 1, 2, 1])


def test_one_hot_out_of_range_index_is_a_row_of_off_values():
    with tf.Session() as session:
        got = session.run(tf.one_hot(np.array([-1, 3, 1]), 3))
    np.testing.assert_array_equal(got, [[0, 0, 0], [0, 0, 0], [0, 1, 0]])


def test_shape_index_and_matmul_ops_save_and_load(tmp_path):
    # Attrs are JSON-able and ops rebuilt from them (without __init__) compute the same.
    x = tf.placeholder(tf.float32, (None, 4), name="x")
    w = tf.Variable(RNG.standard_normal((3, 4)).astype(np.float32), name="w")
    scores = tf.matmul(x, w, transpose_b=True)
    values, indices = tf.top_k(getitem(scores, (slice(None), slice(None, None, -1))), 2)
    parts = tf.split(tf.pad(scores, [[0, 0], [1, 0]], mode="SYMMETRIC"), [1, -1], axis=1)
    outputs = {
        "values": values,
        "indices": indices,
        "masked": tf.where(tf.sequence_mask(tf.argmax(scores, 1), 3), parts[1], -parts[1]),
        "hot": tf.one_hot(tf.argmax(scores, 1), 3, on_value=2.0),
        "tiled": tf.tile(tf.expand_dims(tf.squeeze(parts[0], axis=1), 0), [2, 1]),
    }
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        expected = session.run(outputs, {x: X34})
        tf.save(tmp_path / "m", session, {"s": {"inputs": {"x": x}, "outputs": outputs}})
    loaded = tf.load(tmp_path / "m")
    got = loaded.predict("s", {"x": X34})
    for key, value in expected.items():
        np.testing.assert_array_equal(got[key], value, err_msg=key)


def test_top_k_long_rows_with_nan_order_like_a_stable_sort():
    x = np.round(RNG.standard_normal((4, 400)), 1)
    x[0, :395] = np.nan  # fewer than k numbers: that row falls back to the full sort
    x[1, 7] = np.nan
    values, indices = tf.top_k(tf.constant(x), 10)
    with tf.Session() as session:
        got_values, got_indices = session.run([values, indices])
    expected = np.argsort(-x, axis=-1, kind="stable")[:, :10]
    np.testing.assert_array_equal(got_indices, expected)
    np.testing.assert_array_equal(got_values, np.take_along_axis(x, expected, axis=-1))


def test_scatter_nd_and_sort_check_their_arguments():
    with pytest.raises(ValueError, match="do not fit"):
        tf.scatter_nd(tf.placeholder(tf.int32, (2, 1)), tf.placeholder(tf.float32, (2, 5)), [4, 3])
    with pytest.raises(ValueError, match="direction must be one of"):
        tf.sort(tf.placeholder(tf.float32, (3,)), direction="UP")
    with pytest.raises(ValueError, match="out of range"):
        tf.argsort(tf.placeholder(tf.float32, (3,)), axis=1)
