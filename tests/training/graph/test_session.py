"""Session semantics (TF-1), graph bookkeeping, the node contract, and error messages."""

from __future__ import annotations

import numpy as np
import pytest

import training.graph as ts


class CountingSquare(ts.Operation):
    """A seed-style user op counting how often it is computed."""

    op_type = "test_counting_square"
    calls = 0

    def __init__(self, x):
        super().__init__([x])

    def compute(self, x_value):
        CountingSquare.calls += 1
        return x_value * x_value


@ts.RegisterGradient("test_counting_square")
def _counting_square_grad(op, grad):
    return grad * 2 * op.inputs[0]


def test_fetch_structures_and_one_computation_per_run(device):
    x = ts.placeholder(ts.float64, (2,))
    sq = CountingSquare(x)
    a, b = sq + 1.0, sq * 2.0
    CountingSquare.calls = 0
    with ts.Session(device=device) as session:
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
    x = ts.placeholder(ts.float64, (None,))
    w = ts.Variable(np.array([0.5, -0.5]))
    loss = ts.reduce_sum(CountingSquare(x * w))
    train_op = ts.train.GradientDescentOptimizer(0.1).minimize(loss)
    with ts.Session() as session:
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
    x = ts.placeholder(ts.float32, name="user_ids")
    y = ts.placeholder(ts.float32, name="labels")
    z = ts.placeholder(ts.float32, name="fed")
    out = x + y + z
    with ts.Session() as session, pytest.raises(ts.FeedError, match="'user_ids', 'labels'"):
        session.run(out, {z: 1.0})


def test_feed_shape_mismatch_names_the_placeholder():
    x = ts.placeholder(ts.float32, (None, 3), name="features")
    with ts.Session() as session, pytest.raises(ts.FeedError, match=r"'features'.*\(None, 3\)"):
        session.run(x * 2.0, {x: np.zeros((4, 2))})


def test_shape_mismatch_names_op_name_and_input_shapes():
    x = ts.placeholder(ts.float64, name="x")
    w = ts.Variable(np.ones((3, 2)), name="kernel")
    out = ts.matmul(x, w, name="dense_1")
    with ts.Session() as session, pytest.raises(ts.OpExecutionError) as info:
        session.run(out, {x: np.ones((4, 5))})
    message = str(info.value)
    assert "'dense_1'" in message and "matmul" in message and "(4, 5), (3, 2)" in message


def test_op_without_gradient_is_named():
    class Mystery(ts.Operation):
        op_type = "test_mystery"

        def compute(self, x):
            return x

    w = ts.Variable(np.ones(2))
    loss = ts.reduce_sum(Mystery([w * 2.0], name="mystery_op"))
    with pytest.raises(ts.NoGradientError, match=r"'mystery_op'.*'test_mystery'"):
        ts.train.AdamOptimizer().minimize(loss)


def _dropout_trajectory(seed):
    with ts.Graph().as_default() as graph:
        x = ts.placeholder(ts.float32, (None, 4))
        w = ts.Variable(np.linspace(-1, 1, 8, dtype=np.float32).reshape(4, 2))
        loss = ts.reduce_mean(ts.square(ts.dropout(x @ w, 0.5)))
        train_op = ts.train.AdamOptimizer(0.05).minimize(loss)
        feed = {x: np.ones((16, 4), np.float32)}
        with ts.Session(graph, seed=seed) as session:
            return [float(session.run([loss, train_op], feed)[0]) for _ in range(5)]


def test_same_seed_same_loss_trajectory():
    assert _dropout_trajectory(1) == _dropout_trajectory(1)
    assert _dropout_trajectory(1) != _dropout_trajectory(2)


def test_dropout_training_switch():
    x = ts.placeholder(ts.float64, (1000,))
    training = ts.placeholder(ts.bool_, ())
    out = ts.dropout(x, 0.25, training=training)
    with ts.Session(seed=0) as session:
        ones = np.ones(1000)
        off = session.run(out, {x: ones, training: False})
        on = session.run(out, {x: ones, training: True})
    np.testing.assert_array_equal(off, ones)
    assert set(np.unique(on)) == {0.0, 1 / 0.75}
    assert 0.2 < np.mean(on == 0) < 0.3


def test_variables_live_in_the_session():
    w = ts.Variable(np.array([1.0, 2.0]), name="w")
    step = ts.train.GradientDescentOptimizer(1.0).minimize(ts.reduce_sum(w))
    first, second = ts.Session(), ts.Session()
    first.run(step)
    np.testing.assert_allclose(first.get_value(w), [0.0, 1.0])
    np.testing.assert_allclose(second.get_value(w), [1.0, 2.0])  # untouched
    np.testing.assert_allclose(w.initial_value, [1.0, 2.0])
    first.set_value(w, [5.0, 6.0])
    np.testing.assert_allclose(first.run(w), [5.0, 6.0])
    with pytest.raises(ValueError, match=r"'w' has shape \(2,\)"):
        first.set_value(w, [1.0])
    first.run(ts.global_variables_initializer())
    np.testing.assert_allclose(w.eval(first), [1.0, 2.0])
    for fetch in (w, ts.identity(w), ts.reshape(w, [2, 1])):
        fetched = first.run(fetch)
        fetched[0] = 99.0  # a fetched value is a copy, never the session's storage
        np.testing.assert_allclose(first.get_value(w), [1.0, 2.0])


def test_operators_promote_numbers_and_arrays_without_upcasting():
    x = ts.placeholder(ts.float32, (2,))
    out = -(2.0 * x + 1 - x / 4.0) @ np.ones((2, 2), np.float32) + np.float32(0.5)
    with ts.Session() as session:
        value = session.run(out, {x: np.array([1.0, 2.0], np.float32)})
    assert value.dtype == np.float32
    np.testing.assert_allclose(value, [-(3 - 0.25) - (5 - 0.5) + 0.5] * 2)
    # numpy values on the left defer to the node's reflected operators.
    left = np.float32(2.0) * x + np.ones(2, np.float32) - np.eye(2, dtype=np.float32) @ x
    assert isinstance(left, ts.Node)
    with ts.Session() as session:
        np.testing.assert_allclose(session.run(left, {x: np.array([1.0, 2.0], np.float32)}), [2, 3])


def test_graph_default_scoping_and_names():
    outer = ts.get_default_graph()
    with ts.Graph().as_default() as g:
        assert ts.get_default_graph() is g
        a = ts.placeholder(name="a")
        m1, m2, m3 = ts.matmul(a, a), ts.matmul(a, a), ts.matmul(a, a, name="mine")
        assert (m1.name, m2.name, m3.name) == ("matmul", "matmul_1", "mine")
        assert (
            g.get_node("matmul_1") is m2
            and m1.consumers == []
            and a.consumers == [m1, m1, m2, m2, m3, m3]
        )
        with pytest.raises(KeyError, match="no node named 'matmul_7'"):
            g.get_node("matmul_7")
    assert ts.get_default_graph() is outer
    with pytest.raises(ts.GraphError, match="another graph"):
        ts.add(a, ts.placeholder())


def test_node_contract_rebuild_with_from_attrs():
    x = ts.placeholder(ts.float64, (None, 3), name="x")
    s = ts.reduce_sum(ts.softmax(x, axis=0), axis=[0, 1], keepdims=True, name="total")
    assert s.op_type == "reduce_sum" and s.attrs == {"axis": [0, 1], "keepdims": True}
    assert ts.OP_TYPES["reduce_sum"] is type(s)
    with ts.Graph().as_default() as rebuilt:
        x2 = ts.placeholder(ts.float64, (None, 3), name="x")
        sm = ts.Operation.from_attrs("softmax", [x2], {"axis": 0})
        s2 = ts.Operation.from_attrs("reduce_sum", [sm], s.attrs, name="total")
        assert s2.name == "total" and rebuilt.operations == [sm, s2]
    value = np.arange(6.0).reshape(2, 3)
    with ts.Session() as a, ts.Session(rebuilt) as b:
        np.testing.assert_allclose(a.run(s, {x: value}), b.run(s2, {x2: value}))


def test_topological_order_is_pure_and_minimal():
    a = ts.placeholder(name="a")
    b = ts.Variable(1.0, name="b")
    unused = ts.Variable(2.0, name="unused")
    c = ts.add(a, b, name="c")
    d = ts.multiply(c, a, name="d")
    order = ts.topological_order([d])
    assert [n.name for n in order] == ["a", "b", "c", "d"]
    assert unused not in order and ts.topological_order([d]) == order


def test_rewiring_invalidates_compiled_plans():
    a = ts.constant(2.0)
    b = ts.constant(5.0)
    out = ts.negative(a)
    with ts.Session() as session:
        assert session.run(out) == -2.0
        out.set_input_nodes([b])
        assert session.run(out) == -5.0
        assert a.consumers == [] and b.consumers == [out]


def test_bad_fetches_feeds_and_closed_sessions_are_explained():
    w = ts.Variable(1.0)
    session = ts.Session()
    with pytest.raises(ts.FeedError, match="feed_dict key 'x' is not a graph node"):
        session.run(w, {"x": 1.0})
    with ts.Graph().as_default():
        stranger = ts.constant(1.0, name="stranger")
    with pytest.raises(ts.GraphError, match="'stranger' belongs to another graph"):
        session.run(stranger)
    with pytest.raises(ts.GraphError, match="fetch is None"):
        session.run([w, None])
    with pytest.raises(ts.GraphError, match="cannot fetch a str"):
        session.run("w")
    session.close()
    with pytest.raises(ts.GraphError, match="closed"):
        session.run(w)


def test_unknown_device_is_refused(monkeypatch):
    monkeypatch.setenv("PEPPERCORN_DEVICE", "tpu")
    with pytest.raises(ValueError, match="PEPPERCORN_DEVICE.*'tpu'"):
        ts.Session()


def test_ops_on_python_scalar_constants(device):
    # Weakly typed constants stay Python scalars; unary ops and reductions must still take them.
    with ts.Graph().as_default():
        c = ts.constant(0.5)
        fetches = {
            "reduce_sum": ts.reduce_sum(c),
            "reduce_mean": ts.reduce_mean(c),
            "reduce_max": ts.reduce_max(c),
            "l2_loss": ts.l2_loss(c),
            "sigmoid": ts.sigmoid(c),
            "tanh": ts.tanh(c),
            "exp": ts.exp(c),
        }
        with ts.Session(device=device) as session:
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
