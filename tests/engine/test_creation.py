"""Creation ops and initializers against real TensorFlow (compat.v1); random ops and random
initializers by their statistics and reproducibility (their values differ from TF's)."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import engine as tf
from tests.engine.tf_oracle import assert_matches_tf


def test_creation_ops_match_tf(tfv1):
    def program(t):
        x = t.constant(np.ones((2, 3), np.float64))
        return [
            t.zeros([2, 3]),
            t.ones((4,), t.int32),
            t.fill([2, 2], 1.5),
            t.fill([3], 7),
            t.zeros_like(x),
            t.ones_like(x, dtype=t.int32),
            t.range(5),
            t.range(1, 4, 0.5),
            t.range(10, 0, -3),
            t.linspace(0.0, 1.0, 5),
            t.lin_space(-1.0, 1.0, 3),
        ]

    assert_matches_tf(tfv1, program)


def test_creation_from_shape_nodes_matches_tf(tfv1):
    def program(t):
        x = t.constant(np.ones((2, 3), np.float32))
        dims = t.constant(np.array([3, 2], np.int32))
        return [
            t.zeros(dims),
            t.ones(dims, t.int64),
            t.fill(dims, t.reduce_sum(x)),
            t.range(t.constant(2), 9, 2),
        ]

    assert_matches_tf(tfv1, program)


def test_creation_static_shapes_and_dtypes():
    x = tf.placeholder(tf.float32, (None, 3))
    assert tf.zeros([2, 3]).shape == (2, 3) and tf.zeros([2, 3]).dtype == np.float32
    assert tf.ones([2], tf.int64).dtype == np.int64
    assert tf.zeros_like(x).shape == (None, 3)
    assert tf.ones_like(x, dtype=tf.int32).dtype == np.int32
    assert tf.fill([2, 5], 0.5).shape == (2, 5)
    assert tf.range(5).shape == (5,) and tf.range(5).dtype == np.int32
    assert tf.range(0.0, 2.0).dtype == np.float32
    shape_node = tf.constant(np.array([4, 2], np.int32))
    assert tf.zeros(shape_node).shape == (4, 2)


def test_zeros_of_a_run_time_shape(device):
    x = tf.placeholder(tf.float32, (None,))
    dims = tf.placeholder(tf.int32, (2,))
    out = tf.zeros(dims) + tf.reduce_sum(x)
    assert out.shape.rank == 2
    with tf.Session(device=device) as session:
        value = session.run(out, {x: np.ones(3, np.float32), dims: np.array([2, 1], np.int32)})
    np.testing.assert_array_equal(value, np.full((2, 1), 3.0, np.float32))


def _draws(op_builder, graph_seed=None, session_seed=None, runs=1):
    with tf.Graph().as_default() as graph:
        if graph_seed is not None:
            tf.set_random_seed(graph_seed)
        ops = op_builder()
        with tf.Session(graph, seed=session_seed) as session:
            return [session.run(ops) for _ in range(runs)]


def test_random_ops_have_their_distributions():
    def build():
        return [
            tf.random_normal([20000], mean=1.0, stddev=2.0),
            tf.truncated_normal([20000], mean=-1.0, stddev=0.5),
            tf.random_uniform([20000], -2.0, 4.0),
            tf.random_uniform([20000], 0, 10, dtype=tf.int32),
        ]

    normal, truncated, uniform, ints = _draws(build, graph_seed=1)[0]
    assert normal.dtype == np.float32 and abs(normal.mean() - 1.0) < 0.05
    assert abs(normal.std() - 2.0) < 0.05
    assert np.all(np.abs(truncated + 1.0) <= 1.0) and abs(truncated.mean() + 1.0) < 0.02
    # A unit normal truncated at two stddev has stddev 0.8796.
    assert abs(truncated.std() - 0.5 * 0.8796) < 0.01
    assert uniform.min() >= -2.0 and uniform.max() < 4.0 and abs(uniform.mean() - 1.0) < 0.05
    assert ints.dtype == np.int32 and set(np.unique(ints)) == set(range(10))


def test_random_ops_draw_anew_each_run_and_never_repeat_each_other():
    (first, second) = _draws(lambda: [tf.random_normal([5]), tf.random_normal([5])], 3, runs=2)
    a1, b1 = first
    a2, _ = second
    assert not np.allclose(a1, b1)  # two ops, two streams
    assert not np.allclose(a1, a2)  # one op, new values each run


def test_graph_seed_makes_a_program_reproducible():
    def build():
        return [tf.random_normal([4]), tf.truncated_normal([4]), tf.random_uniform([4])]

    one = _draws(build, graph_seed=42, runs=2)
    two = _draws(build, graph_seed=42, runs=2)
    for run_one, run_two in zip(one, two, strict=True):
        for a, b in zip(run_one, run_two, strict=True):
            np.testing.assert_array_equal(a, b)
    other = _draws(build, graph_seed=43)
    assert not np.allclose(one[0][0], other[0][0])


def test_op_seed_alone_is_reproducible_and_session_seed_fixes_unseeded_ops():
    np.testing.assert_array_equal(
        _draws(lambda: tf.random_uniform([3], seed=5))[0],
        _draws(lambda: tf.random_uniform([3], seed=5))[0],
    )
    np.testing.assert_array_equal(
        _draws(lambda: tf.random_normal([3]), session_seed=9)[0],
        _draws(lambda: tf.random_normal([3]), session_seed=9)[0],
    )


def test_random_op_continues_one_stream_across_fetch_sets():
    with tf.Graph().as_default() as graph:
        tf.set_random_seed(0)
        r = tf.random_normal([3])
        doubled = r * 2.0
        with tf.Session(graph) as session:
            first = session.run(r)
            second = session.run(doubled) / 2.0
    with tf.Graph().as_default() as graph:
        tf.set_random_seed(0)
        r = tf.random_normal([3])
        with tf.Session(graph) as session:
            expected = [session.run(r), session.run(r)]
    np.testing.assert_array_equal(first, expected[0])
    np.testing.assert_allclose(second, expected[1])


def test_random_ops_with_tensor_arguments(device):
    dims = tf.placeholder(tf.int32, (2,))
    std = tf.placeholder(tf.float32, ())
    out = tf.random_normal(dims, mean=10.0, stddev=std, seed=1)
    assert out.shape.rank == 2
    with tf.Session(device=device) as session:
        value = session.run(out, {dims: np.array([100, 50], np.int32), std: 0.001})
    assert value.shape == (100, 50) and np.all(np.abs(value - 10.0) < 0.01)
    with pytest.raises(ValueError, match="maxval"):
        tf.random_uniform([2], dtype=tf.int32)


def test_variable_from_a_random_op():
    tf.set_random_seed(1)
    v = tf.Variable(tf.random_normal([2, 3], seed=1))
    assert v.shape == (2, 3) and v.dtype == np.float32


def test_deterministic_initializers_match_tf(tfv1):
    names = [
        ("zeros_initializer", (), {}),
        ("ones_initializer", (), {"dtype": np.int32}),
        ("constant_initializer", (2.5,), {}),
        ("constant_initializer", ([1.0, 2.0, 3.0, 4.0, 5.0, 6.0],), {}),
        ("constant_initializer", ([1.0, 2.0],), {}),  # completed with the last element
    ]
    for name, args, kwargs in names:
        tf_kwargs = {k: tfv1.as_dtype(v) for k, v in kwargs.items()}
        with tfv1.Graph().as_default(), tfv1.Session() as session:
            expected = session.run(getattr(tfv1, name)(*args, **tf_kwargs)([2, 3]))
        got = getattr(tf, name)(*args, **kwargs)([2, 3])
        assert isinstance(got, np.ndarray)
        assert got.dtype == expected.dtype, name
        np.testing.assert_array_equal(got, expected, err_msg=name)


@pytest.mark.parametrize(
    "build, shape, stddev",
    [
        (lambda: tf.random_normal_initializer(0.5, 2.0), (400, 50), 2.0),
        (lambda: tf.truncated_normal_initializer(stddev=1.0), (400, 50), 0.8796),
        (lambda: tf.random_uniform_initializer(-3.0, 3.0), (400, 50), np.sqrt(3.0)),
        (lambda: tf.glorot_uniform_initializer(), (300, 100), np.sqrt(2.0 / 400)),
        (lambda: tf.glorot_normal_initializer(), (300, 100), np.sqrt(2.0 / 400)),
        (lambda: tf.variance_scaling_initializer(), (300, 100), np.sqrt(1.0 / 300)),
        (lambda: tf.variance_scaling_initializer(2.0, "fan_out", "uniform"), (30, 100), 0.1414),
        (lambda: tf.initializers.he_normal(), (200, 100), np.sqrt(2.0 / 200)),
        (lambda: tf.initializers.he_uniform(), (200, 100), np.sqrt(2.0 / 200)),
        (lambda: tf.initializers.lecun_normal(), (200, 100), np.sqrt(1.0 / 200)),
        (lambda: tf.initializers.lecun_uniform(), (200, 100), np.sqrt(1.0 / 200)),
        (
            lambda: tf.initializers.variance_scaling(1.0, "fan_avg", "untruncated_normal"),
            (10, 10, 20, 30),
            np.sqrt(1.0 / 2500),
        ),
    ],
)
def test_random_initializers_have_tf1_statistics(build, shape, stddev):
    value = build()(shape)
    assert value.shape == shape and value.dtype == np.float32
    assert abs(value.std() - stddev) < 0.05 * stddev


def test_constant_initializer_refuses_too_many_values():
    with pytest.raises(ValueError):
        tf.constant_initializer([1.0, 2.0, 3.0])([2])


def test_seeded_initializers_repeat_and_graph_seed_reproduces():
    init = tf.glorot_uniform_initializer(seed=3)
    np.testing.assert_array_equal(init([3, 4]), init([3, 4]))

    def program():
        with tf.Graph().as_default():
            tf.set_random_seed(11)
            init = tf.random_normal_initializer()
            return init([5]), init([5])

    first, second = program(), program()
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert not np.allclose(first[0], first[1])


def test_initializers_namespace_holds_tf1_names(tfv1):
    for name in [
        "zeros",
        "ones",
        "constant",
        "random_normal",
        "random_uniform",
        "truncated_normal",
        "glorot_uniform",
        "glorot_normal",
        "variance_scaling",
        "he_normal",
        "he_uniform",
        "lecun_normal",
        "lecun_uniform",
        "global_variables",
        "variables",
        "local_variables",
        "tables_initializer",
    ]:
        assert hasattr(tf.initializers, name), name
        ours = list(inspect.signature(getattr(tf.initializers, name)).parameters)
        theirs = list(inspect.signature(getattr(tfv1.initializers, name)).parameters)
        assert ours[: len(theirs)] == theirs, name
    assert isinstance(tf.initializers.zeros()([2]), np.ndarray)


SIGNATURE_NAMES = [
    "zeros",
    "ones",
    "zeros_like",
    "ones_like",
    "fill",
    "range",
    "linspace",
    "random_normal",
    "truncated_normal",
    "random_uniform",
    "set_random_seed",
    "zeros_initializer",
    "ones_initializer",
    "constant_initializer",
    "random_normal_initializer",
    "random_uniform_initializer",
    "truncated_normal_initializer",
    "glorot_uniform_initializer",
    "glorot_normal_initializer",
    "variance_scaling_initializer",
]


@pytest.mark.parametrize("name", SIGNATURE_NAMES)
def test_signature_matches_tf1(tfv1, name):
    ours = [p for p in inspect.signature(getattr(tf, name)).parameters if p != "layout"]
    theirs = [p for p in inspect.signature(getattr(tfv1, name)).parameters if p != "layout"]
    assert ours[: len(theirs)] == theirs


def test_shapes_holding_nodes_match_tf(tfv1):
    def program(t):
        x = t.constant(np.ones((5, 3), np.float32))
        rows = t.gather(t.shape(x), 0)
        return [
            t.zeros([rows, 2]),
            t.ones(t.shape(x), t.int32),
            t.fill([rows, 1], 2.5),
            t.shape(t.random_normal([rows, 4])),
            t.shape(t.random_uniform(t.shape(x))),
        ]

    assert_matches_tf(tfv1, program)
    x = tf.placeholder(tf.float32, (None, 3))
    rows = tf.gather(tf.shape(x), 0)
    assert tf.zeros([rows, 2]).shape == (None, 2)
    assert tf.random_normal([rows, 4]).shape == (None, 4)
