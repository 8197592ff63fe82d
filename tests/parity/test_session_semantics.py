"""Session.run's contract as TF-1 has it, checked on both implementations (the `tf` fixture).

Fetch structures come back as their own types, fetched arrays are the caller's to write,
uninitialised variables raise, Session(config=...) is accepted, tensors are fetched and fed by
name and found with get_tensor_by_name.
"""

from __future__ import annotations

import collections

import numpy as np
import pytest

Pair = collections.namedtuple("Pair", ["first", "second"])


def test_namedtuple_and_ordered_dict_fetches_keep_their_types(tf):
    with tf.Graph().as_default() as graph:
        a, b = tf.constant([1.0, 2.0]), tf.constant(3.0)
    with tf.Session(graph=graph) as session:
        pair = session.run(Pair(a, b))
        ordered = session.run(collections.OrderedDict([("b", b), ("a", a)]))
        nested = session.run({"pair": Pair(a, [b, a])})
    assert type(pair) is Pair
    np.testing.assert_array_equal(pair.first, [1.0, 2.0])
    assert pair.second == 3.0
    assert type(ordered) is collections.OrderedDict and list(ordered) == ["b", "a"]
    assert type(nested["pair"]) is Pair and type(nested["pair"].second) is list


def test_fetched_gradient_is_a_writable_array(tf):
    """The gradient of reduce_sum (numpy would give a read-only broadcast view) can be
    written to, and writing to it changes no later run."""
    with tf.Graph().as_default() as graph:
        x = tf.placeholder(tf.float32, [None, 3])
        (grad,) = tf.gradients(tf.reduce_sum(x), [x])
    with tf.Session(graph=graph) as session:
        out = session.run(grad, {x: np.ones((2, 3), np.float32)})
        assert out.flags.writeable
        out += 1
        np.testing.assert_array_equal(session.run(grad, {x: np.ones((2, 3), np.float32)}), 1.0)


def test_fetched_variable_is_a_copy(tf):
    with tf.Graph().as_default() as graph:
        v = tf.Variable(np.ones(3, np.float32))
        init = tf.global_variables_initializer()
    with tf.Session(graph=graph) as session:
        session.run(init)
        out = session.run(v)
        out += 100
        np.testing.assert_array_equal(session.run(v), 1.0)


def test_reading_an_uninitialised_variable_raises_failed_precondition(tf):
    with tf.Graph().as_default() as graph:
        v = tf.Variable(np.ones(3, np.float32), name="never_initialised")
        doubled = v * 2.0
    with tf.Session(graph=graph) as session:
        for fetch in (v, doubled):
            with pytest.raises(tf.errors.FailedPreconditionError):
                session.run(fetch)
    assert issubclass(tf.errors.FailedPreconditionError, tf.errors.OpError)


def test_session_accepts_config_and_runs_by_name(tf):
    """Session(config=ConfigProto(...)); fetch "y:0" / feed "x:0" by name; get_tensor_by_name."""
    with tf.Graph().as_default() as graph:
        x = tf.placeholder(tf.float32, [None, 2], name="x")
        y = tf.reduce_sum(x * 2.0, axis=1, name="y")
    config = tf.ConfigProto(intra_op_parallelism_threads=2, inter_op_parallelism_threads=1)
    with tf.Session(graph=graph, config=config) as session:
        value = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
        by_name = session.run("y:0", feed_dict={"x:0": value})
        by_tensor = session.run(graph.get_tensor_by_name("y:0"), {x: value})
        np.testing.assert_array_equal(by_name, [6.0, 14.0])
        np.testing.assert_array_equal(by_tensor, by_name)
        np.testing.assert_array_equal(session.run(y, {"x:0": value}), by_name)
        assert graph.get_tensor_by_name("x:0").dtype == tf.float32


def test_default_session_eval_and_interactive_patterns(tf):
    """`with tf.Session() as sess:` on the default graph makes t.eval() and op.run() work."""
    with tf.Graph().as_default():
        v = tf.Variable(np.zeros(2, np.float32))
        bump = tf.assign_add(v, [1.0, 2.0])
        init = tf.global_variables_initializer()
        with tf.Session() as session:
            session.run(init)
            session.run(bump)
            np.testing.assert_array_equal(v.eval(), [1.0, 2.0])
            np.testing.assert_array_equal((v * 2.0).eval(session=session), [2.0, 4.0])


def test_control_dependencies_and_group_order_updates(tf):
    """An op built under control_dependencies([assign]) sees the assignment; group runs both."""
    with tf.Graph().as_default() as graph:
        v = tf.Variable(np.float32(1.0))
        w = tf.Variable(np.float32(10.0))
        assign = tf.assign(v, 5.0)
        with tf.control_dependencies([assign]):
            read_after = tf.identity(v)
        both = tf.group(tf.assign_add(v, 1.0), tf.assign_add(w, 1.0))
        init = tf.variables_initializer([v, w])
        nothing = tf.no_op()
    with tf.Session(graph=graph) as session:
        session.run(init)
        assert session.run(read_after) == 5.0
        session.run(both)
        assert session.run([v, w]) == [6.0, 11.0]
        assert session.run(nothing) is None


def test_common_session_idioms(tf):
    """ConfigProto with gpu_options.allow_growth / allow_soft_placement, InteractiveSession
    with .eval() and op.run(), graph collections, and the batch-norm idiom
    control_dependencies(get_collection(UPDATE_OPS))."""
    config = tf.ConfigProto(allow_soft_placement=True, log_device_placement=False)
    config.gpu_options.allow_growth = True
    with tf.Graph().as_default() as graph:
        v = tf.Variable(np.float32(2.0))
        with tf.control_dependencies(tf.get_collection(tf.GraphKeys.UPDATE_OPS)):
            doubled = v * 2.0
        tf.add_to_collection("my_outputs", doubled)
        assert tf.get_collection("my_outputs") == [doubled]
        assert tf.get_collection(tf.GraphKeys.TRAINABLE_VARIABLES) == [v]
        assert tf.get_collection(tf.GraphKeys.GLOBAL_VARIABLES) == [v]
        init = tf.global_variables_initializer()
        session = tf.InteractiveSession(graph=graph, config=config)
        try:
            session.run(init)
            assert doubled.eval() == 4.0
            init.run()  # Operation.run(): the TF-1 tutorial spelling, on the default session
        finally:
            session.close()
