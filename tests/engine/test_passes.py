"""Graph optimisation passes: each keeps outputs equal and shrinks a graph built to contain its
pattern; stateful ops are left alone; the input graph is never changed.

Oracles: numpy computations written out here, and the unoptimised graph's own Session run.
"""

from __future__ import annotations

import numpy as np
import pytest

import engine as tf
from engine.passes import (
    eliminate_common_subexpressions,
    fold_constants,
    fuse_dense,
    optimize_for_inference,
    prune,
)

USERS, ITEMS, DIM, UNITS = 7, 9, 4, (8, 4, 1)


def build_ncf(dtype=np.float32, seed: int = 0) -> dict:
    """An NCF-MLP-like graph: embeddings, concat, matmul + bias + relu layers, sigmoid score,
    plus a training loss and an Adam train op (which inference must not need)."""
    rng = np.random.default_rng(seed)
    nodes = {
        "user": tf.placeholder(tf.int32, [None], name="user_idx"),
        "item": tf.placeholder(tf.int32, [None], name="item_idx"),
        "label": tf.placeholder(dtype, [None], name="label"),
        "user_table": tf.Variable(rng.normal(size=(USERS, DIM)).astype(dtype), name="user_emb"),
        "item_table": tf.Variable(rng.normal(size=(ITEMS, DIM)).astype(dtype), name="item_emb"),
    }
    hidden = tf.concat(
        [
            tf.embedding_lookup(nodes["user_table"], nodes["user"]),
            tf.embedding_lookup(nodes["item_table"], nodes["item"]),
        ],
        axis=1,
    )
    fan_in, layers = 2 * DIM, []
    for k, units in enumerate(UNITS):
        w = tf.Variable(rng.normal(size=(fan_in, units)).astype(dtype), name=f"dense{k}/W")
        b = tf.Variable(rng.normal(size=units).astype(dtype), name=f"dense{k}/b")
        layers.append((w, b))
        hidden = tf.matmul(hidden, w) + b
        if k < len(UNITS) - 1:
            hidden = tf.relu(hidden)
        fan_in = units
    logits = tf.reshape(hidden, [-1])
    nodes["score"] = tf.sigmoid(logits, name="score")
    nodes["loss"] = tf.reduce_mean(
        tf.sigmoid_cross_entropy_with_logits(labels=nodes["label"], logits=logits)
    )
    nodes["train"] = tf.train.AdamOptimizer(0.05).minimize(nodes["loss"])
    nodes["layers"] = layers
    return nodes


def ncf_numpy(users, items, values: dict, layers) -> np.ndarray:
    """The NCF score written directly in numpy from the variable values (the oracle)."""
    h = np.concatenate([values["user_emb"][users], values["item_emb"][items]], axis=1)
    for k, (w, b) in enumerate(layers):
        h = h @ values[w.name] + values[b.name]
        if k < len(layers) - 1:
            h = np.maximum(h, 0)
    return 1 / (1 + np.exp(-h.reshape(-1)))


def snapshot(graph: tf.Graph) -> list:
    """Everything a pass could change about a graph's structure."""
    nodes = graph.placeholders + graph.variables + graph.constants + graph.operations
    return [
        (n.name, n.op_type, [i.name for i in n.input_nodes], len(n.consumers), id(n)) for n in nodes
    ]


def feed_batch():
    return np.array([0, 3, 6, 2], np.int32), np.array([8, 0, 4, 4], np.int32)


def _initialized_session(graph):
    session = tf.Session(graph)
    session.initialize_variables()
    return session


def test_prune_keeps_only_what_outputs_need(fresh_default_graph):
    x = tf.placeholder(tf.float64, [None, 2], name="x")
    w = tf.Variable(np.array([[1.0], [2.0]]), name="w")
    y = tf.matmul(x, w, name="y")
    unused = tf.exp(x, name="unused") + tf.constant(1.0)
    tf.reduce_sum(unused, name="also_unused")
    before = snapshot(fresh_default_graph)

    result = prune(fresh_default_graph, [y])

    assert snapshot(fresh_default_graph) == before
    assert sorted(n.name for n in result.graph.operations) == ["y"]
    assert result.node_count == 3  # x, w, y
    assert result.stats[0] == {"pass": "prune", "nodes_before": 7, "nodes_after": 3}
    xv = np.array([[1.0, 1.0], [3.0, -1.0]])
    out = _initialized_session(result.graph).run(
        result.outputs["y"], {result.graph.get_node("x"): xv}
    )
    np.testing.assert_array_equal(out, xv @ np.array([[1.0], [2.0]]))


def test_prune_from_session_uses_current_values_and_can_freeze(fresh_default_graph):
    x = tf.placeholder(tf.float32, [None, 2], name="x")
    w = tf.Variable(np.zeros((2, 1), np.float32), name="w")
    y = tf.matmul(x, w, name="y")
    session = tf.Session(fresh_default_graph)
    session.initialize_variables()
    trained = np.array([[0.5], [-2.0]], np.float32)
    session.set_value(w, trained)

    kept = prune(session, [y])
    frozen = prune(session, ["y"], freeze=True)

    new_w = kept.graph.get_node("w")
    assert isinstance(new_w, tf.Variable)
    np.testing.assert_array_equal(new_w.initial_value, trained)
    assert frozen.graph.variables == []
    assert isinstance(frozen.graph.get_node("w"), tf.Constant)
    xv = np.array([[2.0, 1.0]], np.float32)
    for result in (kept, frozen):
        out = _initialized_session(result.graph).run(
            result.outputs["y"], {result.graph.get_node("x"): xv}
        )
        np.testing.assert_array_equal(out, [[-1.0]])
        assert out.dtype == np.float32


def test_fold_constants_replaces_constant_subtrees(fresh_default_graph):
    x = tf.placeholder(tf.float32, [None], name="x")
    scale = tf.add(tf.constant(2.0), tf.constant(3.0), name="scale")  # Python scalars: weak
    shift = tf.exp(tf.constant(np.array([0.5, 1.0], np.float32)), name="shift")
    y = tf.multiply(x, scale) + shift
    before = snapshot(fresh_default_graph)

    result = fold_constants(fresh_default_graph, [y])

    assert snapshot(fresh_default_graph) == before
    # x, 2, 3, add, array, exp, multiply, add -> x, scale, shift, multiply, add
    assert result.stats[0]["nodes_before"] == 8 and result.node_count == 5
    assert sorted(op.op_type for op in result.graph.operations) == ["add", "multiply"]
    folded = result.graph.get_node("scale")
    assert isinstance(folded, tf.Constant) and folded.value == 5.0
    xv = np.array([1.0, -2.0], np.float32)
    out = _initialized_session(result.graph).run(
        result.outputs[y.name], {result.graph.get_node("x"): xv}
    )
    np.testing.assert_allclose(out, xv * 5.0 + np.exp(np.array([0.5, 1.0])), rtol=1e-6)
    assert out.dtype == np.float32  # the folded weak scalar did not upcast float32


def test_fold_constants_leaves_dropout_alone(fresh_default_graph):
    c = tf.constant(np.ones(1000, np.float32))
    dropped = tf.dropout(c, rate=0.5, training=True, name="drop")
    y = tf.reduce_sum(dropped, name="y")

    result = fold_constants(fresh_default_graph, [y])

    assert [op.op_type for op in result.graph.operations] == ["dropout", "reduce_sum"]
    session = tf.Session(result.graph, seed=1)
    session.initialize_variables()
    first, second = session.run(result.outputs["y"]), session.run(result.outputs["y"])
    assert first != second  # still random per run, not a folded constant
    assert 700 < first < 1300  # about half the ones kept, each scaled by 2


def test_cse_merges_duplicate_ops_and_constants(fresh_default_graph):
    x = tf.placeholder(tf.float64, [None], name="x")
    a = tf.exp(x) * 2.0
    b = tf.exp(x) * 2.0  # the same expression built again, with its own constant node
    y = tf.add(a, b, name="y")
    before = snapshot(fresh_default_graph)

    result = eliminate_common_subexpressions(fresh_default_graph, [y])

    assert snapshot(fresh_default_graph) == before
    # x, exp, 2.0, multiply, exp, 2.0, multiply, y -> x, exp, 2.0, multiply, y
    assert result.stats[0]["nodes_before"] == 8 and result.node_count == 5
    assert sorted(op.op_type for op in result.graph.operations) == ["add", "exp", "multiply"]
    xv = np.array([0.0, 1.0, -3.0])
    out = _initialized_session(result.graph).run(
        result.outputs["y"], {result.graph.get_node("x"): xv}
    )
    np.testing.assert_allclose(out, 4.0 * np.exp(xv), rtol=1e-12)


def test_cse_does_not_merge_random_ops(fresh_default_graph):
    x = tf.placeholder(tf.float32, [None], name="x")
    d1 = tf.dropout(x, rate=0.5, name="d1")
    d2 = tf.dropout(x, rate=0.5, name="d2")
    y = tf.subtract(d1, d2, name="y")

    result = eliminate_common_subexpressions(fresh_default_graph, [y])

    assert sorted(op.name for op in result.graph.operations) == ["d1", "d2", "y"]
    out = tf.Session(result.graph, seed=3).run(
        result.outputs["y"], {result.graph.get_node("x"): np.ones(500, np.float32)}
    )
    assert np.any(out != 0)  # two independent masks: merged ones would cancel exactly


def test_fuse_dense_rewrites_matmul_bias_activation(fresh_default_graph):
    rng = np.random.default_rng(4)
    x = tf.placeholder(tf.float32, [None, 3], name="x")
    w1 = tf.Variable(rng.normal(size=(3, 5)).astype(np.float32), name="w1")
    b1 = tf.Variable(rng.normal(size=5).astype(np.float32), name="b1")
    w2 = tf.Variable(rng.normal(size=(5, 2)).astype(np.float32), name="w2")
    b2 = tf.Variable(rng.normal(size=2).astype(np.float32), name="b2")
    h = tf.tanh(tf.matmul(x, w1) + b1, name="h")
    y = tf.add(b2, tf.matmul(h, w2), name="y")  # bias first, no activation: a linear layer
    before = snapshot(fresh_default_graph)

    result = fuse_dense(fresh_default_graph, [y])

    assert snapshot(fresh_default_graph) == before
    ops = {op.name: op for op in result.graph.operations}
    assert sorted(ops) == ["h", "y"]
    assert (ops["h"].op_type, ops["h"].attrs) == ("fused_dense", {"activation": "tanh"})
    assert (ops["y"].op_type, ops["y"].attrs) == ("fused_dense", {"activation": "linear"})
    assert result.node_count == 7  # x, w1, b1, h, w2, b2, y (was 11)
    xv = rng.normal(size=(6, 3)).astype(np.float32)
    values = {v.name: v.initial_value for v in fresh_default_graph.variables}
    expected = np.tanh(xv @ values["w1"] + values["b1"]) @ values["w2"] + values["b2"]
    out = _initialized_session(result.graph).run(
        result.outputs["y"], {result.graph.get_node("x"): xv}
    )
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_fuse_dense_skips_shared_matmul_and_broadcast_bias(fresh_default_graph):
    x = tf.placeholder(tf.float32, [None, 2], name="x")
    w = tf.Variable(np.eye(2, dtype=np.float32), name="w")
    b = tf.Variable(np.ones(2, np.float32), name="b")
    row_bias = tf.Variable(np.ones((1, 2), np.float32), name="row_bias")
    shared = tf.matmul(x, w, name="shared")
    y1 = tf.relu(shared + b, name="y1")
    y2 = tf.reduce_sum(shared, name="y2")  # a second reader of the matmul: cannot absorb it
    y3 = tf.relu(tf.matmul(x, w) + row_bias, name="y3")  # [1, units] bias: not fused

    result = fuse_dense(fresh_default_graph, [y1, y2, y3])

    assert "fused_dense" not in {op.op_type for op in result.graph.operations}
    assert result.node_count == result.stats[0]["nodes_before"]


def test_optimize_for_inference_on_ncf_mlp(fresh_default_graph):
    nodes = build_ncf(np.float32)
    session = tf.Session(fresh_default_graph)
    session.initialize_variables()
    users, items = feed_batch()
    for _ in range(3):
        session.run(
            nodes["train"],
            {nodes["user"]: users, nodes["item"]: items, nodes["label"]: np.ones(4, np.float32)},
        )
    expected = session.run(nodes["score"], {nodes["user"]: users, nodes["item"]: items})
    values = {v.name: session.get_value(v) for v in fresh_default_graph.variables}
    before = snapshot(fresh_default_graph)

    for freeze in (True, False):
        result = optimize_for_inference(session, [nodes["score"]], freeze=freeze)
        g = result.graph
        assert snapshot(fresh_default_graph) == before
        assert [s["pass"] for s in result.stats] == [
            "prune",
            "fold_constants",
            "eliminate_common_subexpressions",
            "fuse_dense",
        ]
        assert result.stats[-1]["nodes_after"] < result.stats[1]["nodes_before"]
        assert [op.op_type for op in g.operations].count("fused_dense") == 3
        assert (g.variables == []) is freeze
        out = _initialized_session(g).run(
            result.outputs["score"], {g.get_node("user_idx"): users, g.get_node("item_idx"): items}
        )
        np.testing.assert_allclose(out, expected, rtol=1e-6)
        np.testing.assert_allclose(out, ncf_numpy(users, items, values, nodes["layers"]), rtol=1e-5)


def test_passes_reject_nodes_of_another_graph(fresh_default_graph):
    other = tf.Graph()
    with other.as_default():
        foreign = tf.constant(1.0, name="foreign")
    with pytest.raises(tf.GraphError, match="foreign"):
        prune(fresh_default_graph, [foreign])
