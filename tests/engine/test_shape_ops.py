"""Shape and slicing ops against real TensorFlow (compat.v1): values, static shapes, dtypes."""

from __future__ import annotations

import numpy as np
import pytest

import engine as tf
from engine.ops_slice import getitem
from tests.engine.tf_forward_oracle import assert_matches_tf

RNG = np.random.default_rng(5)
X234 = RNG.standard_normal((2, 3, 4)).astype(np.float32)
X36 = RNG.standard_normal((3, 6)).astype(np.float32)
X1 = RNG.standard_normal((2, 1, 3, 1)).astype(np.float32)
I1 = np.array(1, np.int32)
I2 = np.array(-2, np.int64)


def _index(t, x, key):
    # TF tensors index with [] natively; engine nodes through getitem until Node binds it.
    return getitem(x, key) if t is tf else x[key]


_KEYS = {
    "column": (slice(None), 0),
    "rows": slice(1, 3),
    "newaxis-last": (Ellipsis, None),
    "last-column": (slice(None), -1),
    "negative-step": (slice(None, None, -2),),
    "mixed": (0, slice(None), slice(3, 0, -1)),
    "newaxis-ellipsis-int": (None, Ellipsis, 2),
    "ellipsis-middle": (1, Ellipsis, slice(1, None)),
    "beyond-end": (slice(1, 10), slice(-10, 2)),
    "empty": (slice(2, 1),),
}

CASES = [
    ("shape", lambda t, x: t.shape(x), [X234]),
    ("shape-int64", lambda t, x: t.shape(x, out_type=np.int64), [X234]),
    ("size", lambda t, x: t.size(x), [X234]),
    ("rank", lambda t, x: t.rank(x), [X234]),
    ("expand_dims-0", lambda t, x: t.expand_dims(x, 0), [X36]),
    ("expand_dims-neg", lambda t, x: t.expand_dims(x, -1), [X36]),
    ("expand_dims-dim", lambda t, x: t.expand_dims(x, dim=1), [X36]),
    ("squeeze-all", lambda t, x: t.squeeze(x), [X1]),
    ("squeeze-axis", lambda t, x: t.squeeze(x, axis=[3]), [X1]),
    ("squeeze-dims", lambda t, x: t.squeeze(x, squeeze_dims=[1, -1]), [X1]),
    ("stack-0", lambda t, a, b: t.stack([a, b]), [X36, X36 * 2]),
    ("stack-neg", lambda t, a, b: t.stack([a, b, a], axis=-1), [X36, X36 * 2]),
    ("unstack-0", lambda t, x: t.unstack(x), [X234]),
    ("unstack-neg", lambda t, x: t.unstack(x, axis=-1), [X234]),
    ("unstack-num", lambda t, x: t.unstack(x, num=3, axis=1), [X234]),
    ("tile", lambda t, x: t.tile(x, [2, 1, 3]), [X234]),
    (
        "tile-node-multiple",
        lambda t, x, y: t.tile(
            x[:1] if t is not tf else getitem(x, slice(1)), [_index(t, t.shape(y), 0), 1]
        ),
        [X36, X234],
    ),
    ("tile-node-multiples", lambda t, x, m: t.tile(x, m), [X36, np.array([2, 1], np.int32)]),
    ("split-int", lambda t, x: t.split(x, 3, axis=1), [X36]),
    ("split-sizes", lambda t, x: t.split(x, [1, -1, 2], axis=1), [X36]),
    ("split-axis0", lambda t, x: t.split(x, [2, 1]), [X36]),
    ("split-neg-axis", lambda t, x: t.split(x, 2, axis=-1), [X234]),
    ("pad-constant", lambda t, x: t.pad(x, [[1, 0], [0, 2]]), [X36]),
    ("pad-value", lambda t, x: t.pad(x, [[0, 0], [1, 1], [2, 0]], constant_values=5), [X234]),
    ("pad-reflect", lambda t, x: t.pad(x, [[1, 2], [2, 3]], mode="REFLECT"), [X36]),
    ("pad-symmetric", lambda t, x: t.pad(x, [[3, 1], [0, 6]], mode="symmetric"), [X36]),
    ("reverse", lambda t, x: t.reverse(x, [0, 2]), [X234]),
    ("reverse_v2", lambda t, x: t.reverse_v2(x, [1]), [X234]),
    ("broadcast_to", lambda t, x: t.broadcast_to(x, [2, 3, 6]), [X36[:1]]),
    ("broadcast_to-shape-of", lambda t, x, y: t.broadcast_to(x, t.shape(y)), [X234[:1, :1], X234]),
    (
        "broadcast_to-packed",
        lambda t, x, y: t.broadcast_to(x, [_index(t, t.shape(y), 0), 4]),
        [X234[0, :1], X234],
    ),
    ("broadcast_to-rank", lambda t, x: t.broadcast_to(x, [5, 3, 6]), [X36]),
    ("reverse-neg", lambda t, x: t.reverse(x, axis=[-1]), [X36]),
    ("slice", lambda t, x: t.slice(x, [1, 0, 1], [1, -1, 2]), [X234]),
    ("strided_slice", lambda t, x: t.strided_slice(x, [0, 1], [3, 6], [2, 2]), [X36]),
    ("slice-node-begin", lambda t, x, i: t.slice(x, [0, i], [-1, 2]), [X36, I1]),
    (
        "slice-shape-size",
        lambda t, x, y: t.slice(x, [1, 0], [_index(t, t.shape(y), 0), -1]),
        [X36, X234],
    ),
    (
        "slice-vector-nodes",
        lambda t, x, b, n: t.slice(x, b, n),
        [X234, np.array([1, 0, 2], np.int32), np.array([1, 2, 2], np.int32)],
    ),
    (
        "strided_slice-masks",
        lambda t, x: t.strided_slice(
            x, [0, 0, 1], [0, 0, 3], [1, 1, 1], new_axis_mask=1, ellipsis_mask=2
        ),
        [X234],
    ),
    (
        "strided_slice-shrink",
        lambda t, x: t.strided_slice(x, [1, 0], [2, 0], end_mask=2, shrink_axis_mask=1),
        [X36],
    ),
    ("shape-then-index", lambda t, x: _index(t, t.shape(x), 1), [X234]),
    ("shape-then-slice", lambda t, x: _index(t, t.shape(x), slice(1, None)), [X234]),
] + [
    (f"getitem-{k}", (lambda key: lambda t, x: _index(t, x, key))(v), [X234])
    for k, v in _KEYS.items()
]


CASES += [
    ("getitem-node-column", lambda t, x, i: _index(t, x, (slice(None), i)), [X234, I1]),
    ("getitem-node-first", lambda t, x, i: _index(t, x, i), [X234, I1]),
    (
        "getitem-node-bounds",
        lambda t, x, i, j: _index(t, x, (Ellipsis, slice(j, i))),
        [X234, I2, I1],
    ),
    (
        "getitem-node-mixed",
        lambda t, x, i, j: _index(t, x, (slice(None, None, -1), None, slice(j, None), i)),
        [X234, I2, I2],
    ),
]


# TF-1's Slice shape function gives up on every dimension once a size is a tensor; the engine
# still knows the dimensions a -1 size keeps whole: [?, 6] where TF-1 says [?, ?].
KNOWS_MORE_THAN_TF = {"slice-shape-size"}


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_forward_matches_tensorflow(device, case):
    name, build, arrays = case
    assert_matches_tf(build, arrays, device, partial_shapes=name not in KNOWS_MORE_THAN_TF)


requires_node_getitem = pytest.mark.skipif(
    not hasattr(tf.Node, "__getitem__"), reason="Node.__getitem__ is not bound yet (lead)"
)


@requires_node_getitem
def test_node_indexing_builds_a_strided_slice():
    x = tf.placeholder(tf.float32, (None, 3, 4))
    y = x[:, -1, tf.newaxis, ::2]
    assert y.op_type == "strided_slice"
    assert y.shape.as_list() == [None, 1, 2]
    with tf.Session() as session:
        np.testing.assert_array_equal(session.run(y, {x: X234}), X234[:, -1, None, ::2])


def test_newaxis_is_none():
    assert tf.newaxis is None


def test_getitem_refuses_tensor_and_fancy_indices():
    x = tf.placeholder(tf.float32, (3, 4))
    with pytest.raises(TypeError, match="valid indices"):
        getitem(x, [0, 2])
    with pytest.raises(TypeError, match="valid indices"):
        getitem(x, (slice(None), 1.5))
    with pytest.raises(ValueError, match="single ellipsis"):
        getitem(x, (Ellipsis, Ellipsis))


def test_static_index_out_of_bounds_is_a_build_time_error():
    x = tf.placeholder(tf.float32, (None, 3))
    with pytest.raises(ValueError, match="out of bounds"):
        getitem(x, (slice(None), 3))
    with pytest.raises(ValueError, match="3 indices for a tensor of rank 2"):
        getitem(x, (0, 0, 0))


def test_squeeze_of_a_dimension_not_one_is_refused():
    x = tf.placeholder(tf.float32, (2, 3))
    with pytest.raises(ValueError, match=r"Can not squeeze dim\[1\], expected a dimension of 1"):
        tf.squeeze(x, axis=1)


def test_squeeze_with_unknown_dims_has_unknown_shape_until_run():
    x = tf.placeholder(tf.float32, (None, 1, 3))
    y = tf.squeeze(x)
    assert y.shape.rank is None
    with tf.Session() as session:
        assert session.run(y, {x: np.zeros((1, 1, 3), np.float32)}).shape == (3,)


def test_unstack_needs_a_known_dimension_or_num():
    x = tf.placeholder(tf.float32, (None, 3))
    with pytest.raises(ValueError, match="cannot infer num"):
        tf.unstack(x)
    assert len(tf.unstack(x, num=4)) == 4


def test_split_checks_static_sizes():
    x = tf.placeholder(tf.float32, (None, 5))
    with pytest.raises(ValueError, match="not divisible"):
        tf.split(x, 2, axis=1)
    with pytest.raises(ValueError, match="do not add up"):
        tf.split(x, [2, 2], axis=1)
    with pytest.raises(ValueError, match="at most one size may be -1"):
        tf.split(x, [-1, -1], axis=1)


def test_split_of_an_unknown_dimension_is_sized_at_run_time():
    x = tf.placeholder(tf.float32, (None, 2))
    first, second = tf.split(x, 2)
    assert first.shape.as_list() == [None, 2]
    with tf.Session() as session:
        a, b = session.run([first, second], {x: X36[:, :2].reshape(3, 2).repeat(2, axis=0)})
    assert a.shape == b.shape == (3, 2)
    with pytest.raises(tf.OpExecutionError, match="not divisible"), tf.Session() as session:
        session.run(first, {x: np.zeros((3, 2), np.float32)})


def test_tile_and_pad_check_their_arguments():
    x = tf.placeholder(tf.float32, (2, 3))
    with pytest.raises(ValueError, match="multiples"):
        tf.tile(x, [2])
    with pytest.raises(ValueError, match="mode must be one of"):
        tf.pad(x, [[0, 0], [0, 0]], mode="EDGE")
    with pytest.raises(ValueError, match="rows for a tensor of rank 2"):
        tf.pad(x, [[1, 1]])
    with pytest.raises(tf.OpExecutionError, match="REFLECT"), tf.Session() as session:
        session.run(tf.pad(x, [[0, 0], [3, 0]], mode="REFLECT"), {x: X36[:2, :3]})


def test_shape_is_read_at_run_time():
    x = tf.placeholder(tf.float32, (None, None))
    s = tf.shape(x)
    assert s.shape.as_list() == [2] and s.dtype == np.int32
    with tf.Session() as session:
        np.testing.assert_array_equal(session.run(s, {x: np.zeros((5, 7), np.float32)}), [5, 7])


def test_stack_refuses_incompatible_shapes():
    with pytest.raises(ValueError, match="Shapes must be equal rank"):
        tf.stack([tf.placeholder(tf.float32, (2, 3)), tf.placeholder(tf.float32, (3, 3))])


def test_node_indices_must_be_integer_scalars():
    x = tf.placeholder(tf.float32, (3, 4))
    with pytest.raises(TypeError, match="scalar tf.int32/tf.int64 tensors"):
        getitem(x, tf.placeholder(tf.int32, (2,)))
    with pytest.raises(TypeError, match="scalar tf.int32/tf.int64 tensors"):
        getitem(x, (slice(None), tf.placeholder(tf.float32, ())))
    with pytest.raises(ValueError, match="3 indices for a tensor of rank 2"):
        getitem(x, (0, 0, tf.placeholder(tf.int32, ())))


def test_broadcast_to_refuses_shapes_that_do_not_broadcast():
    with pytest.raises(ValueError, match="cannot broadcast a tensor of shape \\[2,3\\] to \\[3\\]"):
        tf.broadcast_to(tf.placeholder(tf.float32, (2, 3)), [3])
    with pytest.raises(ValueError, match="cannot broadcast"):
        tf.broadcast_to(tf.placeholder(tf.float32, (4,)), [2, 3])
