"""TF-1 session and state semantics (#18), each against a hand-worked or numpy oracle."""

from __future__ import annotations

from collections import OrderedDict, namedtuple

import numpy as np
import pytest

import engine as tf


def test_variable_from_a_node_is_evaluated_once_with_its_shape_and_dtype():
    base = tf.Variable(np.array([1.0, 2.0], np.float32), name="base")
    zeros = tf.Variable(tf.zeros([3]), name="zeros")
    doubled = tf.Variable(base.initialized_value() * 2, name="doubled")
    drawn = tf.Variable(tf.random_normal([2, 3], seed=1), name="drawn")
    assert zeros.shape == (3,) and zeros.dtype == np.float32
    assert drawn.shape == (2, 3) and drawn.dtype == np.float32
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        np.testing.assert_array_equal(sess.run(zeros), [0.0, 0.0, 0.0])
        np.testing.assert_array_equal(sess.run(doubled), [2.0, 4.0])
        first = sess.run(drawn)
        sess.run(tf.global_variables_initializer())
        np.testing.assert_array_equal(sess.run(drawn), first)


def test_an_uninitialised_variable_raises_until_its_initializer_runs():
    w = tf.Variable(np.ones(2), name="w")
    v = tf.Variable(np.zeros(2), name="v")
    sess = tf.Session()
    with pytest.raises(tf.errors.FailedPreconditionError, match="uninitialized value 'w'"):
        sess.run(w)
    sess.run(w.initializer)
    np.testing.assert_array_equal(sess.run(w), [1.0, 1.0])
    with pytest.raises(tf.errors.FailedPreconditionError, match="'v'"):
        sess.run(v + w)
    assert not sess.run(tf.is_variable_initialized(v))
    sess.run(tf.variables_initializer([v]))
    np.testing.assert_array_equal(sess.run(v + w), [1.0, 1.0])


def test_fetched_constants_and_fed_arrays_are_never_aliased():
    c = tf.constant(np.array([1.0, 2.0]))
    x = tf.placeholder(tf.float64, [2])
    sess = tf.Session()
    out = sess.run(c)
    out += 100
    np.testing.assert_array_equal(sess.run(c), [1.0, 2.0])
    fed = np.array([5.0, 6.0])
    got = sess.run(x, {x: fed})
    got += 1
    np.testing.assert_array_equal(fed, [5.0, 6.0])


def test_a_fetched_gradient_is_a_writable_array():
    x = tf.placeholder(tf.float64, [2, 3])
    (grad,) = tf.gradients(tf.reduce_sum(x), [x])
    value = tf.Session().run(grad, {x: np.zeros((2, 3))})
    assert value.flags.writeable and 0 not in value.strides
    value += 1  # would raise on numpy's read-only broadcast view
    np.testing.assert_array_equal(value, np.full((2, 3), 2.0))


def test_ops_on_an_embedding_gradient_see_it_dense_and_clipping_keeps_it_sparse():
    start = np.arange(8.0).reshape(4, 2)
    table = tf.Variable(start, name="table")
    ids = tf.placeholder(tf.int32, [None])
    loss = tf.reduce_sum(tf.square(tf.gather(table, ids)))
    (grad,) = tf.gradients(loss, [table])
    clipped = tf.clip_by_value(grad, -5.0, 5.0)
    halved = grad * 0.5
    sess = tf.Session()
    sess.run(tf.global_variables_initializer())
    got_clipped, got_halved = sess.run([clipped, halved], {ids: [1, 1, 3]})
    # d/dE of sum(E[ids]^2) is 2 * E[i] per occurrence; TF-1's clip_by_value clips each
    # occurrence's row (the slices stay sparse), other ops see the summed dense gradient.
    dense = np.zeros((4, 2))
    clipped_rows = np.zeros((4, 2))
    for i in [1, 1, 3]:
        dense[i] += 2 * start[i]
        clipped_rows[i] += np.clip(2 * start[i], -5, 5)
    assert isinstance(got_clipped, tf.IndexedSlices)
    np.testing.assert_allclose(got_clipped.to_dense(), clipped_rows)
    np.testing.assert_allclose(got_halved, dense * 0.5)


def test_the_gradient_with_respect_to_a_fed_intermediate():
    table = tf.Variable(np.ones((3, 2)), name="table")
    emb = tf.gather(table, [0, 2])
    loss = tf.reduce_sum(emb * emb * 3.0)
    (grad,) = tf.gradients(loss, [emb])
    x = np.array([[1.0, -2.0], [0.5, 4.0]])
    sess = tf.Session()
    sess.run(tf.global_variables_initializer())
    np.testing.assert_allclose(sess.run(grad, {emb: x}), 6.0 * x)


def test_namedtuple_ordereddict_and_named_fetches_keep_their_types():
    a = tf.constant(1.0, name="a")
    b = tf.constant(2.0, name="b")
    pair = namedtuple("Pair", "first second")
    sess = tf.Session()
    got = sess.run(pair(a, b))
    assert type(got) is pair and got == (1.0, 2.0)
    ordered = sess.run(OrderedDict([("b", b), ("a", a)]))
    assert type(ordered) is OrderedDict and list(ordered.items()) == [("b", 2.0), ("a", 1.0)]
    assert sess.run(["a:0", "b"]) == [1.0, 2.0]


def test_feeding_by_name_and_get_tensor_by_name():
    x = tf.placeholder(tf.float32, [None], name="x")
    y = tf.multiply(x, 2.0, name="y")
    graph = tf.get_default_graph()
    assert graph.get_tensor_by_name("y:0") is y
    assert graph.get_operation_by_name("x") is x
    np.testing.assert_array_equal(tf.Session().run("y:0", {"x:0": [1.0, 2.0]}), [2.0, 4.0])
    with pytest.raises(KeyError, match="one output"):
        graph.get_tensor_by_name("y:1")


def test_assign_ops_give_the_new_value_and_run_after_other_ops():
    v = tf.Variable(np.array([1.0, 2.0]), name="v")
    add = tf.assign_add(v, [10.0, 10.0])
    sess = tf.Session()
    sess.run(tf.global_variables_initializer())
    total = tf.reduce_sum(v)
    before, after = sess.run([total, add])
    assert before == 3.0  # computed before the update: updates run last
    np.testing.assert_array_equal(after, [11.0, 12.0])
    np.testing.assert_array_equal(sess.run(v.assign([0.0, 1.0])), [0.0, 1.0])
    np.testing.assert_array_equal(sess.run(tf.assign_sub(v, [1.0, 1.0])), [-1.0, 0.0])
    with pytest.raises(ValueError, match="shape"):
        tf.assign(v, np.zeros(3))


def test_control_dependencies_order_a_read_after_an_update():
    counter = tf.Variable(np.int64(0), name="counter")
    step = tf.assign_add(counter, 1)
    with tf.control_dependencies([step]):
        after = tf.identity(counter)
    both = tf.group(tf.assign_add(counter, 5), tf.no_op())
    sess = tf.Session()
    sess.run(tf.global_variables_initializer())
    assert sess.run(after) == 1
    assert sess.run(after) == 2
    assert sess.run(both) is None
    assert sess.run(counter) == 7


def test_name_scopes_prefix_node_names():
    with tf.name_scope("tower") as scope:
        a = tf.constant(1.0, name="a")
        with tf.name_scope("inner"):
            b = tf.add(a, 1.0)
    with tf.name_scope("tower"):
        c = tf.constant(2.0, name="a")
    assert scope == "tower/"
    assert a.name == "tower/a" and b.name.startswith("tower/inner/")
    assert c.name == "tower_1/a"


def test_static_shapes_and_dtypes_on_every_node():
    x = tf.placeholder(tf.float32, [None, 3], name="x")
    w = tf.Variable(np.zeros((3, 2), np.float32))
    c = tf.constant(2.0)
    y = x * c
    assert x.shape == (None, 3) and x.get_shape().as_list() == [None, 3]
    assert w.shape == (3, 2) and w.dtype == np.float32
    assert c.shape == () and c.dtype == np.float32  # a weak scalar reports TF-1's dtype
    assert y.dtype == np.float32  # ...and never upcasts what it meets
    assert tf.placeholder(tf.float32).shape.rank is None
    (g,) = tf.gradients(tf.reduce_sum(tf.matmul(x, w)), [w])
    assert g.shape == (3, 2) and g.dtype == np.float32


def test_variable_collections_and_lists():
    a = tf.Variable(1.0, name="layer/a")
    b = tf.Variable(2.0, name="layer/b", trainable=False)
    other = tf.Variable(3.0, name="other")
    assert tf.global_variables() == [a, b, other]
    assert tf.trainable_variables() == [a, other]
    assert tf.trainable_variables(scope="layer") == [a]
    assert tf.get_collection(tf.GraphKeys.GLOBAL_VARIABLES, scope="layer") == [a, b]
    tf.add_to_collection("mine", b)
    assert tf.get_collection("mine") == [b]


def test_sessions_take_tf1_arguments_and_become_the_default():
    x = tf.constant(np.array([1.0, 2.0]))
    config = tf.ConfigProto(allow_soft_placement=True, gpu_options=tf.GPUOptions(allow_growth=True))
    config.gpu_options.allow_growth = True
    with tf.Session(config=config) as sess:
        assert tf.get_default_session() is sess
        np.testing.assert_array_equal(x.eval(), [1.0, 2.0])
    assert tf.get_default_session() is None
    with pytest.raises(ValueError, match="no default session"):
        x.eval()
    interactive = tf.InteractiveSession()
    np.testing.assert_array_equal(x.eval(), [1.0, 2.0])
    interactive.close()


def test_constants_take_tf1_dtypes():
    assert tf.constant([1.0, 2.0]).dtype == np.float32
    assert tf.constant([1, 2]).dtype == np.int32
    assert tf.constant(np.array([1.0])).dtype == np.float64  # a numpy array keeps its dtype
    value = tf.Session().run(tf.constant(1.5))
    assert type(value) is np.float32 and value == 1.5
    assert type(tf.Session().run(tf.constant(2))) is np.int32


def test_gradients_take_tf1_arguments_stop_gradients_and_unconnected_zero():
    a = tf.placeholder(tf.float64, [2], name="a")
    b = a * 3.0
    c = tf.placeholder(tf.float64, [2], name="c")
    y = tf.reduce_sum(a * b)  # d/da = 2 * 3a when b depends on a; 3a when b is held constant
    full, held = tf.gradients(y, [a])[0], tf.gradients(y, [a], stop_gradients=[b])[0]
    assert tf.gradients(y, [c]) == [None]
    zero = tf.gradients(y, [c], unconnected_gradients="zero", name="g")[0]
    sess = tf.Session()
    feed = {a: np.array([1.0, 2.0]), c: np.zeros(2)}
    np.testing.assert_allclose(sess.run(full, feed), [6.0, 12.0])
    np.testing.assert_allclose(sess.run(held, feed), [3.0, 6.0])
    np.testing.assert_array_equal(sess.run(zero, feed), [0.0, 0.0])
