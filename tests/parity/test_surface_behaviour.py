"""The issue's names that are behaviours rather than functions: static shapes and dtypes on
every node, Variable.initializer, variable scopes and reuse, name scopes, variable
collections, graph-level seeds, learning-rate schedules with the global step, a tensor
learning rate. Checked on both implementations or against TF's numbers.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.parity.harness import STEPS, Model, assert_traces_match, train
from tests.parity.programs import weights


def _static(tf, node):
    dtype = node.dtype
    return (
        node.get_shape().as_list(),
        node.shape.as_list(),
        np.dtype(getattr(dtype, "as_numpy_dtype", dtype)),
    )


def _static_shapes(tf):
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [None, 3])
        ids = tf.placeholder(tf.int32, [None])
        unknown = tf.placeholder(tf.float32)
        w = tf.Variable(np.ones((3, 2), np.float32))
        nodes = {
            "placeholder": x,
            "constant": tf.constant([[1, 2, 3]]),
            "variable": w,
            "matmul": tf.matmul(x, w),
            "reduce_sum": tf.reduce_sum(x, axis=1),
            "reduce_sum keepdims": tf.reduce_sum(x, axis=1, keepdims=True),
            "concat": tf.concat([x, x], axis=1),
            "expand_dims": tf.expand_dims(ids, 1),
            "one_hot": tf.one_hot(ids, 4),
            "embedding_lookup": tf.nn.embedding_lookup(w, ids),
            "cast": tf.cast(ids, tf.float32),
            "argmax": tf.argmax(x, 1),
            "shape": tf.shape(x),
            "equal": tf.equal(ids, 1),
            "broadcast add": x + tf.constant([1.0, 2.0, 3.0]),
            "transpose": tf.transpose(x),
            "reshape": tf.reshape(x, [-1, 1, 3]),
        }
        static = {name: _static(tf, node) for name, node in nodes.items()}
        rank_unknown = unknown.get_shape()
        init = tf.global_variables_initializer()
    with tf.Session(graph=x.graph) as session:
        session.run(init)
        feed = {x: np.ones((2, 3), np.float32), ids: np.array([0, 1], np.int32)}
        values = session.run(nodes, feed)
    # What a run gives: the value's dtype and shape, next to the static ones.
    for name, value in values.items():
        static[name] += (np.asarray(value).dtype, list(np.shape(value)))
    return static, rank_unknown.ndims


def test_static_shape_and_dtype_of_every_node_kind_match_tensorflow(eng, tfv1):
    """get_shape().as_list(), .shape.as_list() and .dtype at build time, and the dtype and
    shape of the value a run gives, == TF's."""
    mine, mine_unknown = _static_shapes(eng)
    theirs, theirs_unknown = _static_shapes(tfv1)
    assert mine_unknown is None and theirs_unknown is None
    wrong = [f"{n}: engine {mine[n]}, TF {theirs[n]}" for n in theirs if mine[n] != theirs[n]]
    assert not wrong, "; ".join(wrong)


def _constant_dtypes(tf):
    values = {
        "float list": [1.0, 2.0],
        "int list": [[1, 2]],
        "float scalar": 0.5,
        "int scalar": 3,
        "bool list": [True, False],
        "float64 array": np.ones(2),
        "int64 array": np.arange(2),
        "float32 array": np.ones(2, np.float32),
    }
    with tf.Graph().as_default() as graph:
        nodes = {name: tf.constant(value) for name, value in values.items()}
        nodes["float list as float64"] = tf.constant([1.0], dtype=tf.float64)
        nodes["int list as float32"] = tf.constant([1, 2], tf.float32)
    with tf.Session(graph=graph) as session:
        fetched = session.run(nodes)
    return {
        name: (
            np.dtype(getattr(n.dtype, "as_numpy_dtype", n.dtype)),
            np.asarray(fetched[name]).dtype,
        )
        for name, n in nodes.items()
    }


def test_constant_dtypes_follow_tensorflow(eng, tfv1):
    """tf.constant of Python floats is float32 and of Python ints int32 (numpy arrays keep
    their dtype), statically and in the value a run gives, as TF."""
    mine, theirs = _constant_dtypes(eng), _constant_dtypes(tfv1)
    wrong = [f"{n}: engine {mine[n]}, TF {theirs[n]}" for n in theirs if mine[n] != theirs[n]]
    assert not wrong, "; ".join(wrong)


def test_variable_initializer_and_variables_initializer(tf):
    with tf.Graph().as_default() as graph:
        a = tf.Variable(np.full(2, 3.0, np.float32))
        b = tf.Variable(np.full(2, 4.0, np.float32))
        c = tf.Variable(np.full(2, 5.0, np.float32))
        init_bc = tf.variables_initializer([b, c])
    with tf.Session(graph=graph) as session:
        session.run(a.initializer)
        np.testing.assert_array_equal(session.run(a), [3.0, 3.0])
        session.run(init_bc)
        np.testing.assert_array_equal(session.run([b, c]), [[4.0, 4.0], [5.0, 5.0]])


def _base(node) -> str:
    return node.name.split(":")[0]


def test_get_variable_with_variable_scope_reuse(tf):
    """get_variable creates "scope/name"; reuse=True and AUTO_REUSE return the same variable;
    creating it twice, or reusing one that does not exist, is a ValueError."""
    with tf.Graph().as_default() as graph:
        with tf.variable_scope("tower"):
            w = tf.get_variable("w", [2, 3], initializer=tf.constant_initializer(0.5))
            b = tf.get_variable("b", [3], initializer=tf.zeros_initializer())
        with tf.variable_scope("tower", reuse=True):
            assert tf.get_variable("w") is w
        with tf.variable_scope("tower") as scope:
            scope.reuse_variables()
            assert tf.get_variable("b") is b
        with tf.variable_scope("tower", reuse=tf.AUTO_REUSE):
            assert tf.get_variable("w", [2, 3]) is w
            fresh = tf.get_variable("fresh", [1], initializer=tf.ones_initializer())
        with pytest.raises(ValueError), tf.variable_scope("tower"):
            tf.get_variable("w", [2, 3])
        with pytest.raises(ValueError), tf.variable_scope("tower", reuse=True):
            tf.get_variable("missing", [1])
        assert [_base(v) for v in (w, b, fresh)] == ["tower/w", "tower/b", "tower/fresh"]
        assert w.get_shape().as_list() == [2, 3] and w.dtype == tf.float32
        init = tf.global_variables_initializer()
    with tf.Session(graph=graph) as session:
        session.run(init)
        np.testing.assert_array_equal(session.run(w), np.full((2, 3), 0.5, np.float32))


def test_name_scope_prefixes_op_names(tf):
    with tf.Graph().as_default() as graph:
        x = tf.placeholder(tf.float32, [2], name="x")
        with tf.name_scope("block"):
            y = tf.add(x, 1.0, name="y")
            with tf.name_scope("inner"):
                z = tf.multiply(y, 2.0, name="z")
        assert _base(y) == "block/y" and _base(z) == "block/inner/z"
    with tf.Session(graph=graph) as session:
        fetched = session.run("block/inner/z:0", {"x:0": np.array([1.0, 2.0], np.float32)})
        np.testing.assert_array_equal(fetched, [4.0, 6.0])


def test_trainable_and_global_variables(tf):
    with tf.Graph().as_default():
        w = tf.Variable(np.ones(2, np.float32), name="w")
        step = tf.Variable(0, trainable=False, name="step")
        assert tf.trainable_variables() == [w]
        assert tf.global_variables() == [w, step]


def _seeded_draws(tf):
    with tf.Graph().as_default() as graph:
        tf.set_random_seed(42)
        normal = tf.random_normal([3])
        uniform = tf.random_uniform([3], seed=7)
        truncated = tf.truncated_normal([1000], stddev=2.0)
    runs = []
    for _ in range(2):
        with tf.Session(graph=graph) as session:
            runs.append([session.run([normal, uniform, truncated]) for _ in range(2)])
    return runs


def test_set_random_seed_makes_programs_reproducible(tf):
    """With a graph seed: the same draws in a new session, new draws on each run, truncated
    normal within 2 standard deviations."""
    (first, second), (again, _) = _seeded_draws(tf)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], second[0])
    assert np.all(np.abs(first[2]) <= 4.0)


_RNG = np.random.default_rng(5)
X = _RNG.standard_normal((STEPS, 16, 4)).astype(np.float32)
Y = (X @ np.array([[1.0], [-1.0], [0.5], [2.0]], np.float32)).astype(np.float32)


def _schedule_program(tf, schedule: str) -> Model:
    x = tf.placeholder(tf.float32, [None, 4])
    y = tf.placeholder(tf.float32, [None, 1])
    fed_rate = tf.placeholder(tf.float32, [])
    w = tf.Variable(weights(61, w=(4, 1))["w"])
    loss = tf.reduce_mean(tf.square(tf.matmul(x, w) - y))
    global_step = tf.train.get_or_create_global_step()
    if schedule == "exponential_decay":
        rate = tf.train.exponential_decay(0.1, global_step, 5, 0.5, staircase=True)
        optimizer = tf.train.GradientDescentOptimizer(rate)
    elif schedule == "exponential_decay-smooth":
        rate = tf.train.exponential_decay(0.05, global_step, 10, 0.3)
        optimizer = tf.train.MomentumOptimizer(rate, 0.9)
    elif schedule == "piecewise_constant":
        rate = tf.train.piecewise_constant(global_step, [5, 15], [0.1, 0.03, 0.01])
        optimizer = tf.train.AdamOptimizer(rate)
    else:  # a tensor learning rate fed each step, with RMSProp
        rate = fed_rate
        optimizer = tf.train.RMSPropOptimizer(rate, momentum=0.2)
    train_op = optimizer.minimize(loss, global_step=global_step)

    def feed(step):
        return {x: X[step], y: Y[step], fed_rate: 0.02 / (1 + step)}

    return Model(loss, train_op, {"w": w, "global_step": global_step}, feed, {"rate": rate})


@pytest.mark.parametrize(
    "schedule",
    ["exponential_decay", "exponential_decay-smooth", "piecewise_constant", "fed_tensor"],
)
def test_learning_rate_schedules_with_global_step(eng, tfv1, schedule):
    """minimize(..., global_step=) counts steps (25 at the end); the schedule's rate each step
    and the weights == TF's."""

    def build(tf):
        return _schedule_program(tf, schedule)

    mine, theirs = train(eng, build), train(tfv1, build)
    assert int(theirs.weights["global_step"]) == STEPS
    assert_traces_match(mine, theirs)
