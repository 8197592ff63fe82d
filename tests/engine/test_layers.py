"""tf.layers: dense (variables, names, reuse, initializers, regularizers, values against
numpy; TF 2.21's compat.v1 no longer ships tf.layers), Dense, dropout and flatten."""

from __future__ import annotations

import numpy as np
import pytest

import engine as tf

RNG = np.random.default_rng(3)
X = RNG.normal(size=(5, 3)).astype(np.float32)


def test_dense_creates_tf1_named_variables_and_computes_relu_affine():
    x = tf.placeholder(tf.float32, (None, 3))
    out = tf.layers.dense(x, 4, activation=tf.nn.relu)
    second = tf.layers.dense(out, 2)
    graph = tf.get_default_graph()
    names = [v.name for v in graph.variables]
    assert names == ["dense/kernel", "dense/bias", "dense_1/kernel", "dense_1/bias"]
    assert out.shape == tf.TensorShape([None, 4]) and second.shape == tf.TensorShape([None, 2])
    kernel, bias = graph.variables[:2]
    assert kernel.shape == (3, 4) and bias.shape == (4,) and kernel.dtype == np.float32
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        got, k, b = session.run([out, kernel, bias], {x: X})
    np.testing.assert_allclose(got, np.maximum(X @ k + b, 0), rtol=1e-6)
    limit = np.sqrt(6 / (3 + 4))  # glorot_uniform by default
    assert np.all(np.abs(k) <= limit) and np.std(k) > 0
    np.testing.assert_array_equal(b, 0)  # zeros by default


def test_dense_initializers_and_no_bias():
    x = tf.placeholder(tf.float32, (None, 3))
    kernel = np.arange(6, dtype=np.float32).reshape(3, 2)
    out = tf.layers.dense(
        x,
        2,
        kernel_initializer=tf.constant_initializer(kernel),
        bias_initializer=tf.ones_initializer(),
        name="fc",
    )
    plain = tf.layers.dense(x, 2, use_bias=False, kernel_initializer=tf.zeros_initializer())
    assert [v.name for v in tf.get_default_graph().variables] == [
        "fc/kernel",
        "fc/bias",
        "dense/kernel",
    ]
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        got, zeros = session.run([out, plain], {x: X})
    np.testing.assert_allclose(got, X @ kernel + 1, rtol=1e-6)
    np.testing.assert_array_equal(zeros, 0)


def test_dense_reuse_shares_variables_and_refuses_duplicates():
    x = tf.placeholder(tf.float32, (None, 3))
    first = tf.layers.dense(x, 2, name="shared")
    again = tf.layers.dense(x, 2, name="shared", reuse=True)
    auto = tf.layers.dense(x, 2, name="shared", reuse=tf.AUTO_REUSE)
    assert len(tf.get_default_graph().variables) == 2
    with pytest.raises(ValueError, match="already exists"):
        tf.layers.dense(x, 2, name="shared")
    with pytest.raises(ValueError, match="does not exist"):
        tf.layers.dense(x, 2, name="missing", reuse=True)
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        a, b, c = session.run([first, again, auto], {x: X})
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)


def test_dense_inside_a_variable_scope_and_the_dense_class():
    x = tf.placeholder(tf.float32, (None, 3))
    with tf.variable_scope("tower"):
        tf.layers.dense(x, 2)
    layer = tf.layers.Dense(4, activation=tf.nn.tanh, name="proj")
    a, b = layer(x), layer.apply(x)
    names = [v.name for v in tf.get_default_graph().variables]
    assert names == ["tower/dense/kernel", "tower/dense/bias", "proj/kernel", "proj/bias"]
    assert layer.kernel.name == "proj/kernel" and layer.bias.name == "proj/bias"
    assert layer.trainable_variables == [layer.kernel, layer.bias] == layer.variables
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        got_a, got_b, k, bias = session.run([a, b, layer.kernel, layer.bias], {x: X})
    np.testing.assert_array_equal(got_a, got_b)
    np.testing.assert_allclose(got_a, np.tanh(X @ k + bias), rtol=1e-5)


def test_dense_not_trainable_and_regularized():
    x = tf.placeholder(tf.float32, (None, 3))
    tf.layers.dense(x, 2, trainable=False, name="frozen")
    tf.layers.dense(x, 2, kernel_regularizer=lambda w: tf.nn.l2_loss(w) * 0.1, name="reg")
    graph = tf.get_default_graph()
    assert [v.trainable for v in graph.variables] == [False, False, True, True]
    penalties = tf.losses.get_regularization_losses()
    assert len(penalties) == 1
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        total, kernel = session.run([tf.losses.get_regularization_loss(), graph.variables[2]])
    assert total == pytest.approx(0.1 * 0.5 * np.sum(kernel**2), rel=1e-5)


def test_dense_over_a_rank_3_input():
    x = tf.placeholder(tf.float32, (None, 4, 3))
    out = tf.layers.dense(x, 2)
    assert out.shape == tf.TensorShape([None, 4, 2])
    values = RNG.normal(size=(2, 4, 3)).astype(np.float32)
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        got, k, b = session.run([out, *tf.get_default_graph().variables], {x: values})
    np.testing.assert_allclose(got, values @ k + b, rtol=1e-5)


def test_dense_needs_a_known_last_dimension():
    with pytest.raises(ValueError, match="last dimension"):
        tf.layers.dense(tf.placeholder(tf.float32, (None, None)), 2)


def test_dense_trains():
    x = tf.placeholder(tf.float32, (None, 3))
    y = tf.placeholder(tf.float32, (None, 1))
    hidden = tf.layers.dense(x, 8, activation=tf.nn.relu)
    loss = tf.losses.mean_squared_error(y, tf.layers.dense(hidden, 1))
    train = tf.train.GradientDescentOptimizer(0.1).minimize(loss)
    target = X @ np.array([[1.0], [-2.0], [0.5]], np.float32)
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        first = session.run(loss, {x: X, y: target})
        for _ in range(50):
            session.run(train, {x: X, y: target})
        last = session.run(loss, {x: X, y: target})
    assert last < first / 4


def test_layers_dropout_is_off_unless_training():
    x = tf.placeholder(tf.float64, (10000,))
    training = tf.placeholder(tf.bool_, ())
    off = tf.layers.dropout(x)
    on = tf.layers.dropout(x, rate=0.3, training=True)
    switched = tf.layers.Dropout(0.3)(x, training=training)
    ones = np.ones(10000)
    with tf.Session(seed=4) as session:
        got_off, got_on = session.run([off, on], {x: ones})
        fed_off = session.run(switched, {x: ones, training: False})
        fed_on = session.run(switched, {x: ones, training: True})
    np.testing.assert_array_equal(got_off, ones)
    np.testing.assert_array_equal(fed_off, ones)
    for got in (got_on, fed_on):
        assert abs(np.mean(got == 0) - 0.3) < 0.02
        np.testing.assert_allclose(np.unique(got), [0.0, 1 / 0.7])


def test_flatten():
    x = tf.placeholder(tf.float32, (None, 2, 3))
    flat = tf.layers.flatten(x)
    assert flat.shape == tf.TensorShape([None, 6])
    values = RNG.normal(size=(4, 2, 3)).astype(np.float32)
    with tf.Session() as session:
        np.testing.assert_array_equal(session.run(flat, {x: values}), values.reshape(4, 6))
    with pytest.raises(ValueError):
        tf.layers.flatten(tf.placeholder(tf.float32, (None, None)))


def test_a_model_of_nn_and_layers_ops_saves_and_loads(tmp_path):
    # Every attr of these ops is JSON-able, so a saved model rebuilds them op for op.
    from engine.saved import load, save

    x = tf.placeholder(tf.float32, (None, 3), name="x")
    ids = tf.placeholder(tf.int64, (None,), name="ids")
    table = tf.Variable(RNG.normal(size=(6, 3)).astype(np.float32), name="table")
    shards = [tf.Variable(RNG.normal(size=(3, 3)).astype(np.float32)) for _ in range(2)]
    hidden = tf.layers.dense(x + tf.nn.embedding_lookup(table, ids, max_norm=1.0), 4)
    hidden = tf.nn.leaky_relu(tf.nn.l2_normalize(hidden, axis=1), alpha=0.1)
    hidden = tf.nn.dropout(hidden, keep_prob=0.5, training=False)
    wide = tf.nn.embedding_lookup(shards, ids, partition_strategy="div")
    out = tf.nn.softmax(tf.concat([hidden, tf.nn.selu(wide)], axis=1), axis=-1)
    feed = {x: X, ids: np.array([0, 5, 2, 2, 4])}
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        expected = session.run(out, feed)
        signature = {"serving_default": {"inputs": {"x": x, "ids": ids}, "outputs": {"p": out}}}
        save(tmp_path / "model", session, signature)
    loaded = load(tmp_path / "model")
    got = loaded.predict("serving_default", {"x": X, "ids": feed[ids]})["p"]
    np.testing.assert_allclose(got, expected, rtol=1e-6)
