"""Math, comparison, reduction and array ops against real TensorFlow (compat.v1): values,
dtypes and static shapes; TF-1 signatures (parameter names and order)."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import engine as tf
from tests.engine.tf_oracle import assert_matches_tf

RNG = np.random.default_rng(7)


X = RNG.uniform(-2, 2, size=(3, 4)).astype(np.float32)
Y = RNG.uniform(0.5, 2, size=(4,)).astype(np.float32)
POS = RNG.uniform(0.5, 3, size=(3, 4)).astype(np.float32)
I = np.array([[7, -3, 0], [5, 9, -8]], np.int32)
J = np.array([2, -4, 3], np.int32)
B1 = np.array([True, False, True, False])
B2 = np.array([True, True, False, False])


def _nn_or_top(t, name):
    return getattr(t, name, None) or getattr(t.nn, name)


UNARY = [
    "abs",
    "sin",
    "cos",
    "sign",
    "floor",
    "ceil",
    "round",
    "negative",
    "exp",
    "square",
    "tanh",
    "sigmoid",
    "relu",
    "softplus",
]
UNARY_POSITIVE = ["log1p", "rsqrt", "reciprocal", "sqrt", "log"]
BINARY = [
    "add",
    "subtract",
    "multiply",
    "divide",
    "truediv",
    "realdiv",
    "div",
    "pow",
    "maximum",
    "minimum",
    "squared_difference",
    "floordiv",
    "floormod",
    "mod",
]
COMPARE = ["equal", "not_equal", "greater", "greater_equal", "less", "less_equal"]
LOGICAL = ["logical_and", "logical_or", "logical_xor"]


@pytest.mark.parametrize("name", UNARY + UNARY_POSITIVE)
def test_unary_ops_match_tf(tfv1, name):
    data = POS if name in UNARY_POSITIVE else X
    assert_matches_tf(tfv1, lambda t: _nn_or_top(t, name)(t.constant(data)), rtol=2e-6)


@pytest.mark.parametrize("name", BINARY)
def test_binary_float_ops_match_tf(tfv1, name):
    base = POS if name == "pow" else X
    assert_matches_tf(tfv1, lambda t: getattr(t, name)(t.constant(base), t.constant(Y)), rtol=2e-6)


@pytest.mark.parametrize(
    "name",
    [
        "add",
        "subtract",
        "multiply",
        "divide",
        "truediv",
        "div",
        "maximum",
        "minimum",
        "squared_difference",
        "floordiv",
        "floormod",
        "mod",
    ],
)
def test_binary_integer_ops_match_tf(tfv1, name):
    assert_matches_tf(tfv1, lambda t: getattr(t, name)(t.constant(I), t.constant(J)))


@pytest.mark.parametrize("name", COMPARE)
def test_comparisons_match_tf(tfv1, name):
    def program(t):
        return [getattr(t, name)(t.constant(X), t.constant(Y)), getattr(t, name)(t.constant(I), 0)]

    assert_matches_tf(tfv1, program)


def test_logical_ops_match_tf(tfv1):
    def program(t):
        a, b = t.constant(B1), t.constant(B2)
        return [getattr(t, n)(a, b) for n in LOGICAL] + [t.logical_not(a)]

    assert_matches_tf(tfv1, program)


def test_add_n_and_python_scalars_keep_float32(tfv1):
    def program(t):
        x = t.constant(X)
        return [
            t.add_n([x, x * 2.0, t.constant(X)]),
            t.pow(x, 2),
            t.maximum(x, 0.5),
            1.0 / t.constant(POS),
        ]

    assert_matches_tf(tfv1, program, rtol=2e-6)


REDUCERS = [
    "reduce_sum",
    "reduce_mean",
    "reduce_max",
    "reduce_min",
    "reduce_prod",
    "reduce_logsumexp",
]


@pytest.mark.parametrize("name", REDUCERS)
def test_reductions_match_tf_with_tf1_aliases(tfv1, name):
    data = RNG.uniform(-1, 1, size=(2, 3, 4)).astype(np.float32)

    def program(t):
        fn = getattr(t, name)
        x = t.constant(data)
        return [
            fn(x),
            fn(x, 1),
            fn(x, axis=[0, 2], keepdims=True),
            fn(x, reduction_indices=-1),
            fn(x, axis=0, keep_dims=True),
        ]

    assert_matches_tf(tfv1, program, rtol=1e-5)


@pytest.mark.parametrize("name", ["reduce_sum", "reduce_mean", "reduce_max", "reduce_prod"])
def test_integer_reductions_keep_the_dtype(tfv1, name):
    assert_matches_tf(
        tfv1, lambda t: [getattr(t, name)(t.constant(I), 1), getattr(t, name)(t.constant(I))]
    )


def test_reduce_any_all_match_tf(tfv1):
    data = np.array([[True, False], [True, True]])

    def program(t):
        x = t.constant(data)
        return [
            t.reduce_any(x, 0),
            t.reduce_all(x, 1),
            t.reduce_all(x),
            t.reduce_any(x, keepdims=True),
        ]

    assert_matches_tf(tfv1, program)


def test_reduction_alias_conflicts_raise():
    x = tf.constant(X)
    with pytest.raises(ValueError, match="axis"):
        tf.reduce_sum(x, axis=0, reduction_indices=0)
    with pytest.raises(ValueError, match="keep"):
        tf.reduce_mean(x, keepdims=True, keep_dims=True)


def test_cumsum_matches_tf(tfv1):
    def program(t):
        x, i = t.constant(X), t.constant(I)
        return [
            t.cumsum(x),
            t.cumsum(x, axis=1, exclusive=True),
            t.cumsum(x, 1, reverse=True),
            t.cumsum(i, axis=-1, exclusive=True, reverse=True),
        ]

    assert_matches_tf(tfv1, program, rtol=1e-5)


@pytest.mark.parametrize(
    "equation, shapes",
    [
        ("ij,jk->ik", [(2, 3), (3, 4)]),
        ("bi,bi->b", [(3, 4), (3, 4)]),
        ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
        ("ij->ji", [(2, 3)]),
        ("bd,nd->bn", [(3, 4), (5, 4)]),
        ("ij,jk", [(2, 3), (3, 4)]),
        ("...ij,...jk->...ik", [(2, 2, 3, 4), (2, 2, 4, 5)]),
    ],
)
def test_einsum_matches_tf_with_static_shape(tfv1, equation, shapes):
    arrays = [RNG.standard_normal(s).astype(np.float32) for s in shapes]
    assert_matches_tf(
        tfv1, lambda t: t.einsum(equation, *[t.constant(a) for a in arrays]), rtol=1e-5
    )
    out = tf.einsum(equation, *[tf.placeholder(tf.float32, s) for s in shapes])
    assert out.shape == np.einsum(equation, *arrays).shape


def test_einsum_static_shape_keeps_unknown_dims():
    out = tf.einsum(
        "bd,nd->bn", tf.placeholder(tf.float32, (None, 4)), tf.constant(np.ones((5, 4)))
    )
    assert out.shape == (None, 5)


def test_einsum_rejects_mismatched_dimensions():
    with pytest.raises(ValueError, match="einsum"):
        tf.einsum("ij,jk->ik", tf.constant(np.zeros((2, 3))), tf.constant(np.zeros((4, 5))))


def test_gather_axis_and_embedding_lookup_match_tf(tfv1):
    params = RNG.standard_normal((4, 5, 3)).astype(np.float32)
    idx = np.array([[3, 0], [1, 1]], np.int32)

    def program(t):
        p = t.constant(params)
        lookup = getattr(t, "nn", t).embedding_lookup
        return [
            t.gather(p, idx),
            t.gather(p, idx, axis=1),
            t.gather(p, [2, 0], axis=-1),
            lookup(p, idx),
            lookup(p, idx, max_norm=1.0),
        ]

    assert_matches_tf(tfv1, program, rtol=1e-5)
    assert tf.gather(tf.constant(params), idx, axis=1).shape == (4, 2, 2, 3)


@pytest.mark.parametrize("strategy", ["mod", "div"])
def test_sharded_embedding_lookup_matches_tf(tfv1, strategy):
    shards = [RNG.standard_normal((n, 2)).astype(np.float32) for n in (3, 3, 2)]
    ids = np.array([0, 7, 4, 2, 5, 1], np.int32)

    def program(t):
        lookup = getattr(t, "nn", t).embedding_lookup
        return lookup([t.constant(s) for s in shards], ids, partition_strategy=strategy)

    assert_matches_tf(tfv1, program)


def test_clip_by_value_with_tensor_bounds_matches_tf(tfv1):
    def program(t):
        x = t.constant(X)
        lo = t.constant(np.array([-1.0, -0.5, 0.0, -2.0], np.float32))
        return [
            t.clip_by_value(x, lo, 1.0),
            t.clip_by_value(x, -0.5, 0.5),
            t.clip_by_value(t.constant(I), -1, 6),
        ]

    assert_matches_tf(tfv1, program)
    with pytest.raises(ValueError, match="greater"):
        tf.clip_by_value(tf.constant(X), 2.0, 1.0)


def test_array_ops_match_tf(tfv1):
    def program(t):
        x = t.constant(X)
        return [
            t.concat([x, x], 1),
            t.reshape(x, [2, -1]),
            t.transpose(x),
            t.transpose(t.reshape(x, [3, 2, 2]), [2, 0, 1]),
            t.cast(x, t.int32),
            t.identity(x),
            t.stop_gradient(x),
        ]

    assert_matches_tf(tfv1, program)


def test_static_shapes_and_dtypes():
    x = tf.placeholder(tf.float32, (None, 4))
    assert tf.maximum(x, tf.constant(Y)).shape == (None, 4)
    assert tf.greater(x, 0.0).dtype == np.bool_
    assert tf.reduce_sum(x, 1, keepdims=True).shape == (None, 1)
    assert tf.reduce_mean(x).shape == ()
    assert tf.reduce_any(tf.less(x, 1.0), 0).dtype == np.bool_
    assert tf.cumsum(x, 1).shape == (None, 4)
    assert tf.concat([x, x], 0).shape == (None, 4)
    assert tf.concat([x, x], 1).shape == (None, 8)
    assert tf.reshape(x, [-1, 2]).shape == (None, 2)
    assert tf.transpose(x).shape == (4, None)
    assert tf.cast(x, tf.int64).dtype == np.int64
    assert tf.divide(tf.constant(I), tf.constant(J)).dtype == np.float64
    assert tf.add_n([x, x]).shape == (None, 4)


def test_build_time_shape_errors_name_the_op_and_shapes():
    a = tf.placeholder(tf.float32, (2, 3))
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4,\)"):
        tf.add(a, tf.placeholder(tf.float32, (4,)))
    with pytest.raises(ValueError, match="reshape"):
        tf.reshape(a, [4, 2])
    with pytest.raises(ValueError, match="concat"):
        tf.concat([a, tf.placeholder(tf.float32, (2, 3, 1))], 0)


SIGNATURE_NAMES = [
    "abs",
    "pow",
    "maximum",
    "minimum",
    "sin",
    "cos",
    "log1p",
    "rsqrt",
    "sign",
    "add_n",
    "floor",
    "reciprocal",
    "squared_difference",
    "floordiv",
    "mod",
    "truediv",
    "div",
    "divide",
    "equal",
    "not_equal",
    "greater",
    "greater_equal",
    "less",
    "less_equal",
    "logical_and",
    "logical_or",
    "logical_not",
    "reduce_sum",
    "reduce_mean",
    "reduce_max",
    "reduce_min",
    "reduce_prod",
    "reduce_any",
    "reduce_all",
    "reduce_logsumexp",
    "cumsum",
    "clip_by_value",
    "gather",
    "cast",
    "reshape",
    "transpose",
    "concat",
    "identity",
    "stop_gradient",
    "ceil",
    "round",
    "exp",
    "sqrt",
    "negative",
    "square",
    "add",
    "subtract",
    "multiply",
]


@pytest.mark.parametrize("name", SIGNATURE_NAMES)
def test_signature_matches_tf1(tfv1, name):
    ours = list(inspect.signature(getattr(tf, name)).parameters)
    theirs = list(inspect.signature(getattr(tfv1, name)).parameters)
    assert ours[: len(theirs)] == theirs


def test_reshape_to_shapes_known_only_at_run_time_matches_tf(tfv1):
    def program(t):
        x = t.constant(X)
        flat = t.reshape(x, [-1])
        return [
            t.reshape(flat, t.shape(x)),
            t.reshape(flat, [t.gather(t.shape(x), 0), -1]),
            t.reshape(flat, [-1, t.gather(t.shape(x), 0), 2]),
        ]

    assert_matches_tf(tfv1, program)
    x = tf.placeholder(tf.float32, (None, 4))
    assert tf.reshape(x, [tf.gather(tf.shape(x), 0), 2, 2]).shape == (None, 2, 2)


def test_saved_graph_and_optimized_graph_keep_these_ops(tmp_path):
    with tf.Graph().as_default() as graph:
        x = tf.placeholder(tf.float32, (None, 4), name="x")
        table = tf.get_variable("table", initializer=tf.constant(POS))
        scores = tf.einsum("bd,nd->bn", x, table)
        top = tf.reduce_logsumexp(tf.clip_by_value(scores, -1.0, tf.reduce_max(scores)), axis=1)
        picked = tf.gather(tf.cumsum(x, axis=1, reverse=True), [3, 0], axis=1)
        shaped = tf.reshape(picked, [tf.gather(tf.shape(x), 0), -1]) * tf.fill([1, 2], 0.5)
        out = tf.add_n(
            [top, tf.reduce_prod(tf.maximum(shaped, 0.1), axis=1), tf.pow(tf.abs(top), 2)]
        )
        session = tf.Session(graph)
        session.run(tf.global_variables_initializer())
        feed = RNG.standard_normal((3, 4)).astype(np.float32)
        expected = session.run(out, {x: feed})
        tf.save(tmp_path / "m", session, {"s": {"inputs": {"x": x}, "outputs": {"y": out}}})
        optimized = tf.optimize_for_inference(session, [out])
    np.testing.assert_allclose(tf.load(tmp_path / "m").predict("s", {"x": feed})["y"], expected)
    with tf.Session(optimized.graph) as fresh:
        new_x = optimized.graph.get_node("x")
        got = fresh.run(optimized.outputs[out.name], {new_x: feed})
    np.testing.assert_allclose(got, expected, rtol=1e-6)


@pytest.mark.skipif(
    not hasattr(tf.Node, "__pow__"), reason="Node operators **, abs, <, ... not bound yet"
)
def test_node_operators_match_tf(tfv1):
    def program(t):
        x, y = t.constant(X), t.constant(Y)
        i = t.constant(I)
        return [
            x**2,
            2.0**y,
            abs(x),
            x < y,
            x <= 0.5,
            x > y,
            x >= 0.0,
            i // 3,
            i % 4,
            (x > 0) & (x < 1),
            (x > 1) | (x < -1),
            ~(x > 0),
        ]

    assert_matches_tf(tfv1, program)


def test_non_node_operands_take_the_node_dtype_as_tf(tfv1):
    def program(t):
        x, i = t.constant(X), t.constant(I[0])
        return [
            t.add(x, [1, 2, 3, 4]),
            t.maximum(x, [0.5, 0.0, -0.5, 1.0]),
            t.multiply(x, np.float64(2.0)),
            t.subtract(x, np.arange(4)),
            t.greater(x, np.zeros(4)),
            t.floordiv(i, np.array([2, 2, 2])),
        ]

    assert_matches_tf(tfv1, program)
    assert (np.ones(4) * tf.placeholder(tf.float32, (4,))).dtype == np.float32
