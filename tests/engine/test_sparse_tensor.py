"""SparseTensor, sparse_placeholder, sparse_tensor_to_dense, and the lookups fed by them
(embedding_lookup over shards, embedding_lookup_sparse) against TensorFlow compat.v1."""

from __future__ import annotations

import numpy as np
import pytest

import engine as tf
from engine.sparse_tensor import expand_sparse_feeds

RNG = np.random.default_rng(11)
TABLE = RNG.normal(size=(10, 3)).astype(np.float32)


def run_both(tfv1, program):
    """program(module) -> fetches, built and run on the engine and on TF: (engine, tf)."""
    out = []
    for module, graph in ((tf, tf.Graph()), (tfv1, tfv1.Graph())):
        with graph.as_default():
            fetches = program(module)
            with module.Session(graph=graph) as session:
                session.run(module.global_variables_initializer())
                out.append(session.run(fetches))
    return out


def test_sparse_tensor_holds_three_nodes_and_a_static_shape():
    sp = tf.SparseTensor(indices=[[0, 1], [2, 0]], values=[1.5, 2.5], dense_shape=[3, 4])
    assert isinstance(sp.indices, tf.Node) and sp.indices.dtype == np.int64
    assert sp.shape == tf.TensorShape([3, 4]) and sp.get_shape() == sp.shape
    with tf.Session() as session:
        value = sp.eval(session)
    assert isinstance(value, tf.SparseTensorValue)
    np.testing.assert_array_equal(value.indices, [[0, 1], [2, 0]])
    np.testing.assert_array_equal(value.values, [1.5, 2.5])
    np.testing.assert_array_equal(value.dense_shape, [3, 4])


def test_sparse_tensor_to_dense_matches_tensorflow(tfv1):
    def program(t):
        sp = t.SparseTensor(
            indices=[[0, 1], [1, 3], [2, 0]], values=[1.0, -2.0, 3.0], dense_shape=[3, 4]
        )
        return [t.sparse_tensor_to_dense(sp), t.sparse_tensor_to_dense(sp, default_value=-1.0)]

    ours, theirs = run_both(tfv1, program)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(a, b)


def test_sparse_placeholder_is_fed_through_its_components():
    sp = tf.sparse_placeholder(tf.float32, name="sp")
    assert sp.shape.rank is None
    dense = tf.sparse_tensor_to_dense(sp)
    value = tf.SparseTensorValue(np.array([[0, 0], [1, 2]]), np.array([5.0, 6.0]), np.array([2, 3]))
    with tf.Session() as session:
        direct = session.run(
            dense,
            {sp.indices: value.indices, sp.values: value.values, sp.dense_shape: value.dense_shape},
        )
        expanded = session.run(dense, expand_sparse_feeds({sp: value}))
    np.testing.assert_array_equal(direct, [[5, 0, 0], [0, 0, 6]])
    np.testing.assert_array_equal(expanded, direct)
    assert direct.dtype == np.float32


def test_sparse_placeholder_with_a_shape_defaults_its_dense_shape():
    sp = tf.sparse_placeholder(tf.float64, shape=[2, None], name="ids")
    assert sp.shape == tf.TensorShape([2, None])
    assert [sp.indices.name, sp.values.name] == ["ids/indices", "ids/values"]
    dense = tf.sparse_tensor_to_dense(sp)
    with tf.Session() as session:
        fed = {sp.indices: [[1, 1]], sp.values: [4.0], sp.dense_shape: [2, 2]}
        np.testing.assert_array_equal(session.run(dense, fed), [[0, 0], [0, 4]])


def test_sparse_tensor_feed_when_the_session_expands_it():
    # Session.run expands SparseTensor keys itself once the lead wires expand_sparse_feeds in.
    sp = tf.sparse_placeholder(tf.float32)
    dense = tf.sparse_tensor_to_dense(sp)
    value = tf.SparseTensorValue([[0]], [1.0], [2])
    with tf.Session() as session:
        try:
            got = session.run(dense, {sp: value})
        except tf.GraphError:
            pytest.skip("Session.run does not expand SparseTensor feeds yet")
    np.testing.assert_array_equal(got, [1.0, 0.0])


@pytest.mark.parametrize("strategy", ["mod", "div"])
@pytest.mark.parametrize("max_norm", [None, 1.0])
def test_embedding_lookup_over_shards_matches_tensorflow(tfv1, strategy, max_norm):
    # 10 rows in 3 shards: "div" gives blocks of 4, 3, 3 rows; "mod" rows 0,3,6,9 / 1,4,7 / 2,5,8.
    if strategy == "div":
        blocks = [TABLE[:4], TABLE[4:7], TABLE[7:]]
    else:
        blocks = [TABLE[0::3], TABLE[1::3], TABLE[2::3]]
    ids = np.array([[0, 9], [4, 4], [7, 2]])

    def program(t):
        shards = [t.Variable(b) for b in blocks]
        return [
            t.nn.embedding_lookup(shards, ids, partition_strategy=strategy, max_norm=max_norm),
            t.nn.embedding_lookup(t.Variable(TABLE), ids, max_norm=max_norm),
        ]

    ours, theirs = run_both(tfv1, program)
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-6)
    np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-6)
    if max_norm is None:
        np.testing.assert_array_equal(ours[0], TABLE[ids])


SP_INDICES = [[0, 0], [0, 1], [0, 2], [1, 0], [3, 0], [3, 1]]  # row 2 has no ids
SP_IDS = [1, 5, 1, 0, 9, 3]
SP_WEIGHTS = [0.5, 2.0, 1.0, 3.0, -1.0, 1.0]


@pytest.mark.parametrize("combiner", ["sum", "mean", "sqrtn", None])
@pytest.mark.parametrize("weighted", [False, True])
def test_embedding_lookup_sparse_matches_tensorflow(tfv1, combiner, weighted):
    def program(t):
        table = t.Variable(TABLE)
        sp_ids = t.SparseTensor(SP_INDICES, np.array(SP_IDS, np.int64), [4, 3])
        sp_weights = (
            t.SparseTensor(SP_INDICES, np.array(SP_WEIGHTS, np.float32), [4, 3])
            if weighted
            else None
        )
        out = t.nn.embedding_lookup_sparse(table, sp_ids, sp_weights, combiner=combiner)
        grad = t.gradients(t.reduce_sum(out * np.arange(3, dtype=np.float32)), table)[0]
        return [out, t.convert_to_tensor(grad) if t is tfv1 else grad]

    ours, theirs = run_both(tfv1, program)
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-5, atol=1e-6)
    assert isinstance(ours[1], tf.IndexedSlices)  # the table's gradient stays row-sparse
    np.testing.assert_allclose(ours[1].to_dense(), theirs[1], rtol=1e-5, atol=1e-6)


# Row 1 only has an invalid id, row 2 has none, row 4 (the last) is empty too; weights of 0
# and below are pruned.
SAFE_INDICES = [[0, 0], [0, 1], [0, 2], [1, 0], [3, 0], [3, 1], [3, 2]]
SAFE_IDS = [1, -1, 4, -1, 9, 3, 2]
SAFE_WEIGHTS = [0.5, 2.0, 1.5, 3.0, -1.0, 1.0, 0.0]


@pytest.mark.parametrize("combiner", ["sum", "mean", "sqrtn"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("default_id", [None, 7])
def test_safe_embedding_lookup_sparse_matches_tensorflow(tfv1, combiner, weighted, default_id):
    def program(t):
        shards = [t.Variable(TABLE[:5]), t.Variable(TABLE[5:])]
        sp_ids = t.SparseTensor(SAFE_INDICES, np.array(SAFE_IDS, np.int64), [5, 3])
        sp_weights = (
            t.SparseTensor(SAFE_INDICES, np.array(SAFE_WEIGHTS, np.float32), [5, 3])
            if weighted
            else None
        )
        out = t.nn.safe_embedding_lookup_sparse(
            shards, sp_ids, sp_weights, combiner=combiner, default_id=default_id
        )
        grads = t.gradients(t.reduce_sum(out * np.arange(3, dtype=np.float32)), shards)
        return [out, [t.convert_to_tensor(g) if t is tfv1 else g for g in grads]]

    ours, theirs = run_both(tfv1, program)
    assert ours[0].shape == (5, 3)
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-5, atol=1e-6)
    for a, b in zip(ours[1], theirs[1], strict=True):
        dense = a.to_dense() if isinstance(a, tf.IndexedSlices) else a
        np.testing.assert_allclose(dense, b, rtol=1e-5, atol=1e-6)


def test_embedding_lookup_sparse_over_shards_with_a_fed_sparse_placeholder(tfv1):
    sp = tf.sparse_placeholder(tf.int64)
    shards = [tf.Variable(TABLE[:5]), tf.Variable(TABLE[5:])]
    out = tf.nn.embedding_lookup_sparse(shards, sp, None, partition_strategy="div", combiner="sum")
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        got = session.run(
            out,
            {sp.indices: [[0, 0], [0, 1], [1, 0]], sp.values: [2, 8, 8], sp.dense_shape: [2, 2]},
        )
    np.testing.assert_allclose(got, [TABLE[2] + TABLE[8], TABLE[8]], rtol=1e-6)


def test_embedding_lookup_sparse_refuses_a_dense_input():
    with pytest.raises(TypeError, match="SparseTensor"):
        tf.nn.embedding_lookup_sparse(tf.Variable(TABLE), tf.constant([1, 2]), None)
    with pytest.raises(ValueError, match="combiner"):
        tf.nn.embedding_lookup_sparse(
            tf.Variable(TABLE), tf.SparseTensor([[0, 0]], [1], [1, 1]), None, combiner="max"
        )


def test_static_shapes_and_dtypes_of_the_lookups():
    sp = tf.sparse_placeholder(tf.int64)
    table = tf.Variable(TABLE)
    shards = [tf.Variable(TABLE[:5]), tf.Variable(TABLE[5:])]
    ids = tf.placeholder(tf.int32, (None, 2))
    combined = tf.nn.embedding_lookup_sparse(table, sp, None)
    sharded = tf.nn.embedding_lookup(shards, ids)
    safe = tf.nn.safe_embedding_lookup_sparse(shards, sp)
    dense = tf.sparse_tensor_to_dense(tf.SparseTensor([[0, 1]], np.array([2.0]), [2, 3]))
    assert combined.shape == tf.TensorShape([None, 3]) and combined.dtype == np.float32
    assert sharded.shape == tf.TensorShape([None, 2, 3]) and sharded.dtype == np.float32
    assert safe.shape == tf.TensorShape([None, 3]) and safe.dtype == np.float32
    assert dense.shape == tf.TensorShape([2, 3]) and dense.dtype == np.float64
    assert tf.sparse_tensor_to_dense(sp).shape.rank is None
