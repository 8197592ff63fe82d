"""The optimizer owns its state: one set of slots per variable, state_dict / load_state_dict.

Resuming from `state_dict` continues training exactly, whether a table was updated sparsely,
densely (also read off the gather path, `matmul(u, transpose(E))`), or by two train ops.
"""

from __future__ import annotations

import numpy as np
import pytest

import engine as tf
from engine.optimizer_state import optimizer_state_arrays, restore_optimizer_state

_RNG = np.random.default_rng(5)
E0 = _RNG.standard_normal((10, 3))
W0 = _RNG.standard_normal((3, 2))
IDS = [_RNG.integers(0, 10, size=6) for _ in range(12)]
Y = [_RNG.standard_normal((6, 2)) for _ in range(12)]

MAKERS = {
    "sgd": lambda: tf.train.GradientDescentOptimizer(0.1),
    "momentum": lambda: tf.train.MomentumOptimizer(0.05, 0.9, use_nesterov=True),
    "adagrad": lambda: tf.train.AdagradOptimizer(0.1),
    "adam": lambda: tf.train.AdamOptimizer(0.05),
    "lazy_adam": lambda: tf.train.LazyAdamOptimizer(0.05),
    "rmsprop": lambda: tf.train.RMSPropOptimizer(0.01, momentum=0.5, centered=True),
    "ftrl": lambda: tf.train.FtrlOptimizer(0.2, l1_regularization_strength=0.01),
}
SLOT_NAMES = {
    "sgd": [],
    "momentum": ["momentum"],
    "adagrad": ["accumulator"],
    "adam": ["m", "v"],
    "lazy_adam": ["m", "v"],
    "rmsprop": ["mg", "momentum", "rms"],
    "ftrl": ["accum", "linear"],
}


def _build(make, table_use="gather"):
    """An embedding model.  table_use "off_path": the table is also read by a scoring op that
    is not on the loss path (its gradient stays row-sparse); "dense": that read is in the loss
    (its gradient is dense)."""
    ids = tf.placeholder(tf.int32, (None,), name="ids")
    y = tf.placeholder(tf.float64, (None, 2), name="y")
    table = tf.Variable(E0, name="E")
    w = tf.Variable(W0, name="W")
    u = tf.gather(table, ids)
    loss = tf.reduce_mean(tf.square(u @ w - y))
    if table_use != "gather":
        scores = tf.matmul(u, tf.transpose(table))
        if table_use == "dense":
            loss = loss + 0.1 * tf.reduce_mean(tf.square(scores))
    optimizer = make()
    train_op = optimizer.minimize(loss)
    return optimizer, train_op, (table, w), lambda s: {ids: IDS[s], y: Y[s]}


def _train(session, train_op, feed, steps):
    for s in steps:
        session.run(train_op, feed(s))


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_get_slot_names_are_tf1s(name):
    assert MAKERS[name]().get_slot_names() == SLOT_NAMES[name]


@pytest.mark.parametrize("table_use", ["gather", "off_path", "dense"])
@pytest.mark.parametrize("name", sorted(MAKERS))
def test_resume_from_state_dict_equals_an_uninterrupted_run(name, table_use):
    with tf.Graph().as_default():
        optimizer, train_op, variables, feed = _build(MAKERS[name], table_use)
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            _train(session, train_op, feed, range(12))
            uninterrupted = [session.get_value(v) for v in variables]
    with tf.Graph().as_default():
        optimizer, train_op, variables, feed = _build(MAKERS[name], table_use)
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            _train(session, train_op, feed, range(5))
            saved_values = [session.get_value(v) for v in variables]
            state = optimizer.state_dict(session)
    for var in variables:
        for slot in SLOT_NAMES[name]:
            value = state[f"{var.name}/{slot}"]
            assert value.shape == tuple(var.shape)
            if slot in ("m", "v", "momentum", "accumulator", "linear"):
                assert np.any(value != 0), f"{var.name}/{slot} is all zeros after 5 steps"
    if name in ("adam", "lazy_adam"):
        np.testing.assert_allclose(state["beta1_power"], 0.9**6)
        np.testing.assert_allclose(state["beta2_power"], 0.999**6)
    with tf.Graph().as_default():
        optimizer, train_op, variables, feed = _build(MAKERS[name], table_use)
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            for var, value in zip(variables, saved_values, strict=True):
                session.set_value(var, value)
            optimizer.load_state_dict(session, state)
            _train(session, train_op, feed, range(5, 12))
            resumed = [session.get_value(v) for v in variables]
    for got, want in zip(resumed, uninterrupted, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_two_train_ops_share_slots_and_adam_counts_every_run():
    w = tf.Variable(W0, name="W")
    b = tf.Variable(np.zeros(2), name="b")
    c = tf.Variable(np.ones(2), name="c")
    x = tf.constant(E0[:4])
    loss_a = tf.reduce_sum(tf.square(x @ w + b))
    loss_b = tf.reduce_sum(tf.square(x @ w - c))
    optimizer = tf.train.AdamOptimizer(0.01)
    train_a = optimizer.minimize(loss_a)
    train_b = optimizer.minimize(loss_b, var_list=[w, c])
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        session.run(train_a)
        after_a = optimizer.state_dict(session)
        w1 = session.get_value(w)
        session.run(train_b)
        state = optimizer.state_dict(session)
    assert sorted(state) == sorted(
        ["W/m", "W/v", "b/m", "b/v", "c/m", "c/v", "beta1_power", "beta2_power"]
    )
    # W's moments after train_b continue from train_a's, not from zero.
    g = 2 * E0[:4].T @ (E0[:4] @ w1 - np.ones(2))  # W's gradient of loss_b
    np.testing.assert_allclose(state["W/m"], 0.9 * after_a["W/m"] + 0.1 * g, rtol=1e-12)
    np.testing.assert_allclose(state["beta1_power"], 0.9**3)


def test_a_new_optimizer_state_is_empty_and_an_empty_dict_resets():
    w = tf.Variable(W0, name="W")
    optimizer = tf.train.MomentumOptimizer(0.1, 0.9)
    train_op = optimizer.minimize(tf.reduce_sum(tf.square(w)))
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        assert optimizer.state_dict(session) == {}
        session.run(train_op)
        assert np.any(optimizer.state_dict(session)["W/momentum"] != 0)
        np.testing.assert_allclose(session.run(optimizer.get_slot(w, "momentum")), 2 * W0)
        optimizer.load_state_dict(session, {})
        assert optimizer.state_dict(session) == {}


def test_load_state_dict_names_what_is_missing():
    w = tf.Variable(W0, name="W")
    optimizer = tf.train.AdamOptimizer(0.1)
    optimizer.minimize(tf.reduce_sum(tf.square(w)))
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        with pytest.raises(ValueError, match=r"no slot 'v' for variable 'W'"):
            optimizer.load_state_dict(session, {"W/m": W0, "beta1_power": 0.9})
        with pytest.raises(ValueError, match=r"slot W/m has shape \(2,\)"):
            optimizer.load_state_dict(session, {"W/m": np.zeros(2), "W/v": W0})
        with pytest.raises(ValueError, match="no counter 'beta1_power'"):
            optimizer.load_state_dict(session, {"W/m": W0, "W/v": W0})


def test_checkpoints_of_the_older_layout_are_read():
    # The old layout: "__step__", Momentum's slot called "accum"; old Adam counted steps.
    w = tf.Variable(W0, name="W")
    momentum = tf.train.MomentumOptimizer(0.1, 0.9)
    adam = tf.train.AdamOptimizer(0.1)
    momentum.minimize(tf.reduce_sum(tf.square(w)))
    train_adam = adam.minimize(tf.reduce_sum(w))
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        restore_optimizer_state(session, momentum, None, {"__step__": np.array([3]), "W/accum": W0})
        np.testing.assert_array_equal(momentum.state_dict(session)["W/momentum"], W0)
        old = {"__step__": np.array([2]), "W/m": W0, "W/v": W0 * W0}
        restore_optimizer_state(session, adam, train_adam, old)
        state = optimizer_state_arrays(session, adam)
        np.testing.assert_allclose(state["beta1_power"], 0.9**3)
        restore_optimizer_state(session, adam, train_adam, {"__step__": np.array([0])})
        assert adam.state_dict(session) == {}


def test_dense_groups_keep_slots_that_sparse_updates_made():
    # A table updated sparsely by one train op and densely (with another variable, packed
    # into one buffer) by another keeps one moment array, carried into the packed buffer.
    ids = tf.placeholder(tf.int32, (None,))
    table = tf.Variable(E0, name="E")
    w = tf.Variable(W0, name="W")
    sparse_loss = tf.reduce_sum(tf.square(tf.gather(table, ids)))
    dense_loss = tf.reduce_sum(tf.square(table @ w))
    optimizer = tf.train.LazyAdamOptimizer(0.01)
    train_sparse = optimizer.minimize(sparse_loss, var_list=[table])
    train_dense = optimizer.minimize(dense_loss, var_list=[table, w])
    m = np.zeros_like(E0)
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        session.run(train_sparse, {ids: [1, 1, 4]})
        e1 = session.get_value(table)
        m[[1, 4]] = 0.1 * np.array([4 * E0[1], 2 * E0[4]])
        np.testing.assert_allclose(session.run(optimizer.get_slot(table, "m")), m)
        session.run(train_dense)
        g = 2 * (e1 @ W0) @ W0.T
        m = 0.9 * m + 0.1 * g
        np.testing.assert_allclose(session.run(optimizer.get_slot(table, "m")), m, rtol=1e-12)
        before = session.get_value(table)
        session.run(train_sparse, {ids: [2]})
        m[2] = 0.9 * m[2] + 0.1 * 2 * before[2]
        np.testing.assert_allclose(session.run(optimizer.get_slot(table, "m")), m, rtol=1e-12)


def test_get_slot_is_a_node_reading_the_slot_in_the_run():
    w = tf.Variable(W0, name="W")
    other = tf.Variable(W0, name="other")
    optimizer = tf.train.RMSPropOptimizer(0.1)
    train_op = optimizer.minimize(tf.reduce_sum(tf.square(w)), var_list=[w])
    rms = optimizer.get_slot(w, "rms")
    assert optimizer.get_slot(other, "rms") is None and optimizer.get_slot(w, "m") is None
    assert tuple(rms.shape) == W0.shape and rms.dtype == W0.dtype
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        np.testing.assert_array_equal(session.run(rms), np.ones_like(W0))  # TF-1: rms = 1
        session.run(train_op)
        np.testing.assert_allclose(session.run(rms), 0.9 + 0.1 * (2 * W0) ** 2)


def test_state_read_before_training_round_trips():
    w = tf.Variable(W0, name="W")
    optimizer = tf.train.AdamOptimizer(0.1)
    train_op = optimizer.minimize(tf.reduce_sum(tf.square(w)))
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        np.testing.assert_array_equal(session.run(optimizer.get_slot(w, "m")), 0 * W0)
        state = optimizer.state_dict(session)
        assert state["beta1_power"] == 0.9 and state["beta2_power"] == 0.999
        optimizer.load_state_dict(session, state)
        session.run(train_op)
        after = session.get_value(w)
    np.testing.assert_allclose(after, W0 - 0.1 * np.sign(W0), atol=1e-6)  # first Adam step
