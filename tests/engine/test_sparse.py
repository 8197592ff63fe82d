"""Row-sparse embedding gradients and sparse optimizer updates, against dense equivalents.

The dense twin of `embedding_lookup(table, ids)` is `one_hot(ids) @ table`: same values, a
dense gradient.  Each optimizer must give the same result either way on touched rows.
"""

from __future__ import annotations

import numpy as np
import pytest

import engine as tf

ROWS, DIM = 7, 3
IDS = np.array([4, 1, 4, 6, 1, 4])  # duplicates: row 4 three times, row 1 twice
TOUCHED = sorted(set(IDS.tolist()))
UNTOUCHED = [r for r in range(ROWS) if r not in TOUCHED]


def _one_hot(ids):
    out = np.zeros((len(ids), ROWS))
    out[np.arange(len(ids)), ids] = 1.0
    return out


def _model(table_value, sparse: bool):
    """(table variable, ids placeholder, loss): a loss with a nonlinear use of the rows."""
    table = tf.Variable(table_value.copy(), name="table")
    ids = tf.placeholder(tf.int64, (None,), name="ids")
    if sparse:
        rows = tf.embedding_lookup(table, ids)
    else:
        onehot = tf.placeholder(tf.float64, (None, ROWS), name="onehot")
        rows = onehot @ table
    target = tf.constant(np.linspace(-1, 1, len(IDS) * DIM).reshape(len(IDS), DIM))
    loss = tf.reduce_sum(tf.square(tf.tanh(rows) - target))
    feed_of = (lambda i: {ids: i}) if sparse else (lambda i: {ids: i, onehot: _one_hot(i)})
    return table, feed_of, loss


def test_sparse_gradient_equals_dense_gradient_with_duplicates_summed(device):
    start = np.random.default_rng(0).standard_normal((ROWS, DIM))
    table_s, feed_s, loss_s = _model(start, sparse=True)
    table_d, feed_d, loss_d = _model(start, sparse=False)
    (grad_s,) = tf.gradients(loss_s, [table_s])
    (grad_d,) = tf.gradients(loss_d, [table_d])
    with tf.Session(device=device) as session:
        session.initialize_variables()
        sparse, dense = session.run([grad_s, grad_d], {**feed_s(IDS), **feed_d(IDS)})
    assert isinstance(sparse, tf.IndexedSlices)
    assert len(sparse.indices) == len(IDS)  # one row per lookup: O(batch), not O(table)
    np.testing.assert_allclose(sparse.to_dense(), dense, rtol=1e-12)
    unique, summed = sparse.deduplicated()
    np.testing.assert_array_equal(unique, TOUCHED)
    np.testing.assert_allclose(summed, dense[TOUCHED], rtol=1e-12)


def test_segment_sum_against_a_python_loop():
    rng = np.random.default_rng(5)
    ids = rng.integers(0, 50, size=300)
    rows = rng.standard_normal((300, 4)).astype(np.float32)
    unique, summed = tf.IndexedSlices(ids, rows, (50, 4)).deduplicated()
    expected: dict[int, np.ndarray] = {}
    for i, row in zip(ids.tolist(), rows.astype(np.float64), strict=True):
        expected[i] = expected.get(i, 0.0) + row
    np.testing.assert_array_equal(unique, sorted(expected))
    np.testing.assert_allclose(summed, [expected[i] for i in sorted(expected)], rtol=1e-5)
    assert summed.dtype == np.float32


OPTIMIZERS = {
    "sgd": lambda: tf.train.GradientDescentOptimizer(0.1),
    "momentum": lambda: tf.train.MomentumOptimizer(0.1, 0.9),
    "nesterov": lambda: tf.train.MomentumOptimizer(0.1, 0.9, use_nesterov=True),
    "adagrad": lambda: tf.train.AdagradOptimizer(0.1),
    "adam": lambda: tf.train.AdamOptimizer(0.05),
    "ftrl": lambda: tf.train.FtrlOptimizer(
        0.1, l1_regularization_strength=0.01, l2_regularization_strength=0.1
    ),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_sparse_update_equals_dense_update(device, name):
    start = np.random.default_rng(1).standard_normal((ROWS, DIM))
    results = {}
    for sparse in (True, False):
        with tf.Graph().as_default():
            table, feed_of, loss = _model(start, sparse)
            train_op = OPTIMIZERS[name]().minimize(loss)
            with tf.Session(device=device) as session:
                session.initialize_variables()
                for _ in range(3):  # the same rows each step, so the row states evolve alike
                    session.run(train_op, feed_of(IDS))
                results[sparse] = session.get_value(table)
    sparse, dense = results[True], results[False]
    np.testing.assert_allclose(sparse[TOUCHED], dense[TOUCHED], rtol=1e-10, atol=1e-12)
    # Sparse updates never touch other rows (dense FTRL re-solves every weight, so it may).
    np.testing.assert_array_equal(sparse[UNTOUCHED], start[UNTOUCHED])
    assert not np.allclose(results[True][TOUCHED], start[TOUCHED])


def test_lazy_adam_leaves_untouched_rows_alone(device):
    start = np.random.default_rng(2).standard_normal((ROWS, DIM))
    table, feed_of, loss = _model(start, sparse=True)
    train_op = tf.train.LazyAdamOptimizer(0.05).minimize(loss)
    with tf.Session(device=device) as session:
        session.initialize_variables()
        session.run(train_op, feed_of(IDS))
        after_first = session.get_value(table)
        # Second step touches other rows only: rows touched before keep their values, although
        # dense Adam would keep moving them with their first-step momentum.
        other = np.array([0, 2, 3, 5, 0, 2])
        session.run(train_op, feed_of(other))
        after_second = session.get_value(table)
    np.testing.assert_array_equal(after_first[UNTOUCHED], start[UNTOUCHED])
    np.testing.assert_array_equal(after_second[TOUCHED], after_first[TOUCHED])
    assert not np.allclose(after_second[[0, 2, 3, 5]], start[[0, 2, 3, 5]])


def test_table_used_sparsely_twice_and_densely_sums_every_use(device):
    start = np.random.default_rng(4).standard_normal((ROWS, DIM))
    other = np.array([0, 4, 4])

    def loss_of(rows_a, rows_b, table):
        return (
            tf.reduce_sum(tf.square(tf.tanh(rows_a)))
            + tf.reduce_sum(rows_b * 3.0)
            + tf.l2_loss(table) * 0.5
        )

    with tf.Graph().as_default():
        table = tf.Variable(start.copy())
        ids_a, ids_b = tf.placeholder(tf.int64, (None,)), tf.placeholder(tf.int64, (None,))
        both_sparse = loss_of(tf.gather(table, ids_a), tf.gather(table, ids_b), table)
        only_sparse = loss_of(tf.gather(table, ids_a), tf.gather(table, ids_b), tf.constant(0.0))
        (g_mixed,) = tf.gradients(both_sparse, [table])
        (g_sparse,) = tf.gradients(only_sparse, [table])
        with tf.Session(device=device) as session:
            session.initialize_variables()
            mixed, sparse = session.run([g_mixed, g_sparse], {ids_a: IDS, ids_b: other})
    with tf.Graph().as_default():
        table = tf.Variable(start.copy())
        hot_a, hot_b = tf.constant(_one_hot(IDS)), tf.constant(_one_hot(other))
        dense_loss = loss_of(hot_a @ table, hot_b @ table, table)
        (g_dense,) = tf.gradients(dense_loss, [table])
        with tf.Session(device=device) as session:
            session.initialize_variables()
            dense = session.run(g_dense)
    assert isinstance(sparse, tf.IndexedSlices) and len(sparse.indices) == len(IDS) + len(other)
    assert isinstance(mixed, np.ndarray)  # a dense use makes the sum dense
    np.testing.assert_allclose(mixed, dense, rtol=1e-12)
    np.testing.assert_allclose(sparse.to_dense() + 0.5 * start, dense, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_segment_sum_keeps_dtype_and_row_shape(dtype):
    from engine.backend import segment_sum

    ids = np.array([4, 1, 4, 4, 0, 1])
    rows = np.arange(6 * 2 * 3, dtype=dtype).reshape(6, 2, 3)
    unique, summed = segment_sum(np, ids, rows)
    np.testing.assert_array_equal(unique, [0, 1, 4])
    np.testing.assert_array_equal(summed, [rows[4], rows[1] + rows[5], rows[0] + rows[2] + rows[3]])
    assert summed.dtype == dtype and summed.shape == (3, 2, 3)
    unique, summed = segment_sum(np, ids[:0], rows[:0])
    assert unique.shape == (0,) and summed.shape == (0, 2, 3)
