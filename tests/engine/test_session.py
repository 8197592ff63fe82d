"""Session semantics (TF-1), graph bookkeeping, the node contract, and error messages."""

from __future__ import annotations

import numpy as np
import pytest

import engine as tf


class CountingSquare(tf.Operation):
    """A seed-style user op counting how often it is computed."""

    op_type = "test_counting_square"
    calls = 0

    def __init__(self, x):
        super().__init__([x])

    def compute(self, x_value):
        CountingSquare.calls += 1
        return x_value * x_value


@tf.RegisterGradient("test_counting_square")
def _counting_square_grad(op, grad):
    return grad * 2 * op.inputs[0]


def test_fetch_structures_and_one_computation_per_run(device):
    x = tf.placeholder(tf.float64, (2,))
    sq = CountingSquare(x)
    a, b = sq + 1.0, sq * 2.0
    CountingSquare.calls = 0
    with tf.Session(device=device) as session:
        session.initialize_variables()
        feed = {x: [1.0, 3.0]}
        single = session.run(a, feed)
        as_list = session.run([a, b, sq], feed)
        as_tuple = session.run((a, b), feed)
        as_dict = session.run({"a": a, "nested": [b, {"sq": sq}]}, feed)
    assert CountingSquare.calls == 4  # one per run, however many fetches need it
    np.testing.assert_allclose(single, [2.0, 10.0])
    assert isinstance(as_list, list) and isinstance(as_tuple, tuple)
    np.testing.assert_allclose(as_list[1], [2.0, 18.0])
    np.testing.assert_allclose(as_dict["nested"][1]["sq"], [1.0, 9.0])


def test_train_step_shares_the_forward_pass_and_plans_are_cached():
    x = tf.placeholder(tf.float64, (None,))
    w = tf.Variable(np.array([0.5, -0.5]))
    loss = tf.reduce_sum(CountingSquare(x * w))
    train_op = tf.train.GradientDescentOptimizer(0.1).minimize(loss)
    with tf.Session() as session:
        session.initialize_variables()
        feed = {x: np.array([1.0, 2.0])}
        before = session.run(loss, feed)
        CountingSquare.calls = 0
        loss_value, none = session.run([loss, train_op], feed)
        assert CountingSquare.calls == 1 and none is None
        assert loss_value == before  # pre-update value
        assert session.run(loss, feed) < before
        plans = len(session._plans)
        for _ in range(3):
            session.run([loss, train_op], feed)
        assert len(session._plans) == plans


def test_missing_feed_names_every_missing_placeholder():
    x = tf.placeholder(tf.float32, name="user_ids")
    y = tf.placeholder(tf.float32, name="labels")
    z = tf.placeholder(tf.float32, name="fed")
    out = x + y + z
    with tf.Session() as session, pytest.raises(tf.FeedError, match="'user_ids', 'labels'"):
        session.run(out, {z: 1.0})


def test_feed_shape_mismatch_names_the_placeholder():
    x = tf.placeholder(tf.float32, (None, 3), name="features")
    with tf.Session() as session, pytest.raises(tf.FeedError, match=r"'features'.*\(None, 3\)"):
        session.run(x * 2.0, {x: np.zeros((4, 2))})


def test_shape_mismatch_names_op_name_and_input_shapes():
    x = tf.placeholder(tf.float64, name="x")
    w = tf.Variable(np.ones((3, 2)), name="kernel")
    out = tf.matmul(x, w, name="dense_1")
    with tf.Session() as session, pytest.raises(tf.OpExecutionError) as info:
        session.run(tf.global_variables_initializer())
        session.run(out, {x: np.ones((4, 5))})
    message = str(info.value)
    assert "'dense_1'" in message and "matmul" in message and "(4, 5), (3, 2)" in message


def test_op_without_gradient_is_named():
    class Mystery(tf.Operation):
        op_type = "test_mystery"

        def compute(self, x):
            return x

    w = tf.Variable(np.ones(2))
    loss = tf.reduce_sum(Mystery([w * 2.0], name="mystery_op"))
    with pytest.raises(tf.NoGradientError, match=r"'mystery_op'.*'test_mystery'"):
        tf.train.AdamOptimizer().minimize(loss)


def _dropout_trajectory(seed):
    with tf.Graph().as_default() as graph:
        x = tf.placeholder(tf.float32, (None, 4))
        w = tf.Variable(np.linspace(-1, 1, 8, dtype=np.float32).reshape(4, 2))
        loss = tf.reduce_mean(tf.square(tf.dropout(x @ w, 0.5)))
        train_op = tf.train.AdamOptimizer(0.05).minimize(loss)
        feed = {x: np.ones((16, 4), np.float32)}
        with tf.Session(graph, seed=seed) as session:
            session.initialize_variables()
            return [float(session.run([loss, train_op], feed)[0]) for _ in range(5)]


def test_same_seed_same_loss_trajectory():
    assert _dropout_trajectory(1) == _dropout_trajectory(1)
    assert _dropout_trajectory(1) != _dropout_trajectory(2)


def test_dropout_training_switch():
    x = tf.placeholder(tf.float64, (1000,))
    training = tf.placeholder(tf.bool_, ())
    out = tf.dropout(x, rate=0.25, training=training)
    with tf.Session(seed=0) as session:
        session.initialize_variables()
        ones = np.ones(1000)
        off = session.run(out, {x: ones, training: False})
        on = session.run(out, {x: ones, training: True})
    np.testing.assert_array_equal(off, ones)
    assert set(np.unique(on)) == {0.0, 1 / 0.75}
    assert 0.2 < np.mean(on == 0) < 0.3


def test_variables_live_in_the_session():
    w = tf.Variable(np.array([1.0, 2.0]), name="w")
    step = tf.train.GradientDescentOptimizer(1.0).minimize(tf.reduce_sum(w))
    first, second = tf.Session(), tf.Session()
    first.run(tf.global_variables_initializer())
    second.run(tf.global_variables_initializer())
    first.run(step)
    np.testing.assert_allclose(first.get_value(w), [0.0, 1.0])
    np.testing.assert_allclose(second.get_value(w), [1.0, 2.0])  # untouched
    np.testing.assert_allclose(w.initial_value, [1.0, 2.0])
    first.set_value(w, [5.0, 6.0])
    np.testing.assert_allclose(first.run(w), [5.0, 6.0])
    with pytest.raises(ValueError, match=r"'w' has shape \(2,\)"):
        first.set_value(w, [1.0])
    first.run(tf.global_variables_initializer())
    np.testing.assert_allclose(w.eval(first), [1.0, 2.0])
    for fetch in (w, tf.identity(w), tf.reshape(w, [2, 1])):
        fetched = first.run(fetch)
        fetched[0] = 99.0  # a fetched value is a copy, never the session's storage
        np.testing.assert_allclose(first.get_value(w), [1.0, 2.0])


def test_operators_promote_numbers_and_arrays_without_upcasting():
    x = tf.placeholder(tf.float32, (2,))
    out = -(2.0 * x + 1 - x / 4.0) @ np.ones((2, 2), np.float32) + np.float32(0.5)
    with tf.Session() as session:
        session.initialize_variables()
        value = session.run(out, {x: np.array([1.0, 2.0], np.float32)})
    assert value.dtype == np.float32
    np.testing.assert_allclose(value, [-(3 - 0.25) - (5 - 0.5) + 0.5] * 2)
    # numpy values on the left defer to the node's reflected operators.
    left = np.float32(2.0) * x + np.ones(2, np.float32) - np.eye(2, dtype=np.float32) @ x
    assert isinstance(left, tf.Node)
    with tf.Session() as session:
        session.initialize_variables()
        np.testing.assert_allclose(session.run(left, {x: np.array([1.0, 2.0], np.float32)}), [2, 3])


def test_graph_default_scoping_and_names():
    outer = tf.get_default_graph()
    with tf.Graph().as_default() as g:
        assert tf.get_default_graph() is g
        a = tf.placeholder(name="a")
        m1, m2, m3 = tf.matmul(a, a), tf.matmul(a, a), tf.matmul(a, a, name="mine")
        assert (m1.name, m2.name, m3.name) == ("matmul", "matmul_1", "mine")
        assert (
            g.get_node("matmul_1") is m2
            and m1.consumers == []
            and a.consumers == [m1, m1, m2, m2, m3, m3]
        )
        with pytest.raises(KeyError, match="no node named 'matmul_7'"):
            g.get_node("matmul_7")
    assert tf.get_default_graph() is outer
    with pytest.raises(tf.GraphError, match="another graph"):
        tf.add(a, tf.placeholder())


def test_default_graph_is_per_thread():
    """Two threads building graphs at once (two model loads) never mix their nodes (TF-1 keeps
    a thread-local default-graph stack)."""
    import threading

    barrier = threading.Barrier(2)
    built: dict[str, tuple] = {}

    def build(tag: str) -> None:
        with tf.Graph().as_default() as g:
            barrier.wait()  # both threads inside their own scope now
            nodes = [tf.placeholder(name=f"{tag}_{i}") for i in range(200)]
            barrier.wait()
            built[tag] = (g, nodes, tf.get_default_graph())

    threads = [threading.Thread(target=build, args=(t,)) for t in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for tag, (g, nodes, default_then) in built.items():
        assert default_then is g
        assert all(n.graph is g for n in nodes)
        assert sorted(p.name for p in g.placeholders) == sorted(f"{tag}_{i}" for i in range(200))
    # A thread with no scope of its own sees the process-wide default graph.
    seen = []

    def look() -> None:
        seen.append(tf.get_default_graph())

    with tf.Graph().as_default() as mine:
        for _ in range(2):
            worker = threading.Thread(target=look)
            worker.start()
            worker.join()
    assert seen[0] is seen[1] and seen[0] is not mine


def test_node_contract_rebuild_with_from_attrs():
    x = tf.placeholder(tf.float64, (None, 3), name="x")
    s = tf.reduce_sum(tf.softmax(x, axis=0), axis=[0, 1], keepdims=True, name="total")
    assert s.op_type == "reduce_sum" and s.attrs == {"axis": [0, 1], "keepdims": True}
    assert tf.OP_TYPES["reduce_sum"] is type(s)
    with tf.Graph().as_default() as rebuilt:
        x2 = tf.placeholder(tf.float64, (None, 3), name="x")
        sm = tf.Operation.from_attrs("softmax", [x2], {"axis": 0})
        s2 = tf.Operation.from_attrs("reduce_sum", [sm], s.attrs, name="total")
        assert s2.name == "total" and rebuilt.operations == [sm, s2]
    value = np.arange(6.0).reshape(2, 3)
    with tf.Session() as a, tf.Session(rebuilt) as b:
        np.testing.assert_allclose(a.run(s, {x: value}), b.run(s2, {x2: value}))


def test_topological_order_is_pure_and_minimal():
    a = tf.placeholder(name="a")
    b = tf.Variable(1.0, name="b")
    unused = tf.Variable(2.0, name="unused")
    c = tf.add(a, b, name="c")
    d = tf.multiply(c, a, name="d")
    order = tf.topological_order([d])
    assert [n.name for n in order] == ["a", "b", "c", "d"]
    assert unused not in order and tf.topological_order([d]) == order


def test_rewiring_invalidates_compiled_plans():
    a = tf.constant(2.0)
    b = tf.constant(5.0)
    out = tf.negative(a)
    with tf.Session() as session:
        session.initialize_variables()
        assert session.run(out) == -2.0
        out.set_input_nodes([b])
        assert session.run(out) == -5.0
        assert a.consumers == [] and b.consumers == [out]


def test_bad_fetches_feeds_and_closed_sessions_are_explained():
    w = tf.Variable(1.0)
    session = tf.Session()
    session.initialize_variables()
    with pytest.raises(tf.FeedError, match="feed_dict key 'x': graph has no node named 'x'"):
        session.run(w, {"x": 1.0})
    with pytest.raises(tf.FeedError, match="feed_dict key 3 is not a graph node"):
        session.run(w, {3: 1.0})
    with tf.Graph().as_default():
        stranger = tf.constant(1.0, name="stranger")
    with pytest.raises(tf.GraphError, match="'stranger' belongs to another graph"):
        session.run(stranger)
    with pytest.raises(tf.GraphError, match="fetch is None"):
        session.run([w, None])
    assert session.run(f"{w.name}:0") == 1.0  # by name, as TF-1
    with pytest.raises(KeyError, match="no node named 'nope'"):
        session.run("nope")
    with pytest.raises(tf.GraphError, match="cannot fetch a int"):
        session.run(3)
    session.close()
    with pytest.raises(tf.GraphError, match="closed"):
        session.run(w)


def test_unknown_device_is_refused(monkeypatch):
    monkeypatch.setenv("PEPPERCORN_DEVICE", "tpu")
    with pytest.raises(ValueError, match="PEPPERCORN_DEVICE.*'tpu'"):
        tf.Session()


def test_ops_on_python_scalar_constants(device):
    # Weakly typed constants stay Python scalars; unary ops and reductions must still take them.
    with tf.Graph().as_default():
        c = tf.constant(0.5)
        fetches = {
            "reduce_sum": tf.reduce_sum(c),
            "reduce_mean": tf.reduce_mean(c),
            "reduce_max": tf.reduce_max(c),
            "l2_loss": tf.l2_loss(c),
            "sigmoid": tf.sigmoid(c),
            "tanh": tf.tanh(c),
            "exp": tf.exp(c),
        }
        with tf.Session(device=device) as session:
            session.initialize_variables()
            got = session.run(fetches)
    want = {
        "reduce_sum": 0.5,
        "reduce_mean": 0.5,
        "reduce_max": 0.5,
        "l2_loss": 0.125,
        "sigmoid": 1 / (1 + np.exp(-0.5)),
        "tanh": np.tanh(0.5),
        "exp": np.exp(0.5),
    }
    for name, value in want.items():
        np.testing.assert_allclose(float(got[name]), value, rtol=1e-12, err_msg=name)
