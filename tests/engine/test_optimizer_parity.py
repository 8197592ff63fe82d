"""Every optimizer against real TensorFlow 1 (compat.v1): float32, 25 steps, dense and sparse.

One program, written once in TF-1 spelling, runs on both `engine` and `tensorflow.compat.v1`:
an embedding table read through gather (a row-sparse gradient), a dense layer, repeated ids
in a batch.  The weights after 25 steps must agree within 1e-4 relative.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import engine

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

STEPS = 25
RTOL, ATOL = 1e-4, 2e-6
_RNG = np.random.default_rng(11)
E0 = (_RNG.standard_normal((12, 4)) * 0.5).astype(np.float32)
W0 = (_RNG.standard_normal((4, 3)) * 0.5).astype(np.float32)
B0 = (_RNG.standard_normal(3) * 0.1).astype(np.float32)
C0 = (_RNG.standard_normal((4, 3)) * 0.5).astype(np.float32)
# Each step's batch: ids with duplicates, touching a few of the 12 rows.
IDS = [_RNG.integers(0, 6 if s % 2 else 12, size=7).astype(np.int32) for s in range(STEPS)]
TARGETS = [_RNG.standard_normal((7, 3)).astype(np.float32) for _ in range(STEPS)]
LRS = [np.float32(0.05 * (1 + 0.5 * np.sin(s))) for s in range(STEPS)]


def real_tf():
    """`tensorflow.compat.v1`, or skip the test when TensorFlow is not installed."""
    return pytest.importorskip("tensorflow").compat.v1


def model(tf, make_optimizer, dense_table=False, lr=None, feed_lr=False, global_step=None):
    """The shared program; returns (train_op, weights, feed(step), extra)."""
    ids = tf.placeholder(tf.int32, [None], name="ids")
    y = tf.placeholder(tf.float32, [None, 3], name="y")
    table = tf.Variable(E0, name="E")
    w = tf.Variable(W0, name="W")
    b = tf.Variable(B0, name="b")
    h = tf.matmul(tf.gather(table, ids), w) + b
    loss = tf.reduce_mean(tf.square(h - y))
    if dense_table:  # the table also read off the gather path: its gradient is dense
        scores = tf.matmul(tf.gather(table, ids), tf.transpose(table))
        loss = loss + 0.01 * tf.reduce_mean(tf.square(scores))
    optimizer = make_optimizer(tf) if lr is None else make_optimizer(tf, lr)
    train_op = optimizer.minimize(loss, global_step=global_step)

    def feed(step):
        out = {ids: IDS[step], y: TARGETS[step]}
        if feed_lr:
            out[lr] = LRS[step]
        return out

    return train_op, {"E": table, "W": w, "b": b}, feed, optimizer


def train(tf, build, steps=STEPS):
    """Build in a fresh graph, initialise, run `steps` steps; the weights after them."""
    with tf.Graph().as_default():
        train_op, weights, feed, _ = build(tf)
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            for step in range(steps):
                session.run(train_op, feed(step))
            return session.run(weights)


def assert_weights_match(got, want):
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=RTOL, atol=ATOL, err_msg=name)


OPTIMIZERS = {
    "sgd": lambda tf: tf.train.GradientDescentOptimizer(0.1),
    "momentum": lambda tf: tf.train.MomentumOptimizer(0.05, 0.9),
    "nesterov": lambda tf: tf.train.MomentumOptimizer(0.05, 0.9, use_nesterov=True),
    "adagrad": lambda tf: tf.train.AdagradOptimizer(0.2),
    "adagrad_init": lambda tf: tf.train.AdagradOptimizer(0.2, initial_accumulator_value=0.5),
    "adam": lambda tf: tf.train.AdamOptimizer(0.05),
    "adam_eps": lambda tf: tf.train.AdamOptimizer(0.02, beta1=0.8, beta2=0.99, epsilon=1e-3),
    "rmsprop": lambda tf: tf.train.RMSPropOptimizer(0.01),
    "rmsprop_momentum": lambda tf: tf.train.RMSPropOptimizer(0.01, decay=0.8, momentum=0.5),
    "rmsprop_centered": lambda tf: tf.train.RMSPropOptimizer(
        0.01, momentum=0.3, epsilon=1e-6, centered=True
    ),
    "ftrl": lambda tf: tf.train.FtrlOptimizer(0.3),
    "ftrl_l1_l2": lambda tf: tf.train.FtrlOptimizer(
        0.3, l1_regularization_strength=0.01, l2_regularization_strength=0.2
    ),
    "ftrl_power": lambda tf: tf.train.FtrlOptimizer(
        0.3, learning_rate_power=-0.3, initial_accumulator_value=0.2
    ),
    "ftrl_beta": lambda tf: tf.train.FtrlOptimizer(0.3, l2_regularization_strength=0.1, beta=0.2),
    "ftrl_shrinkage": lambda tf: tf.train.FtrlOptimizer(
        0.3, l2_regularization_strength=0.1, l2_shrinkage_regularization_strength=0.05
    ),
}


@pytest.mark.parametrize("dense_table", [False, True], ids=["sparse_table", "dense_table"])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizer_matches_tensorflow(name, dense_table):
    tfv1 = real_tf()

    def build(tf):
        return model(tf, OPTIMIZERS[name], dense_table=dense_table)

    assert_weights_match(train(engine, build), train(tfv1, build))


def _shared_slots(tf, make_optimizer):
    # Two train ops of one optimizer share W: one set of slots for W, and Adam's beta powers
    # advance once per run of either.
    ids = tf.placeholder(tf.int32, [None])
    y = tf.placeholder(tf.float32, [None, 3])
    table = tf.Variable(E0, name="E")
    w = tf.Variable(W0, name="W")
    b = tf.Variable(B0, name="b")
    c = tf.Variable(C0, name="c")
    x = tf.gather(table, ids)
    loss_a = tf.reduce_mean(tf.square(tf.matmul(x, w) + b - y))
    loss_b = tf.reduce_mean(tf.square(tf.matmul(x, w) * tf.matmul(x, c) - y))
    optimizer = make_optimizer(tf)
    train_a = optimizer.minimize(loss_a, var_list=[w, b, table])
    train_b = optimizer.minimize(loss_b, var_list=[c, w])
    ops = [train_a, train_b]

    def feed(step):
        return {ids: IDS[step], y: TARGETS[step]}

    return ops, {"E": table, "W": w, "b": b, "c": c}, feed, optimizer


@pytest.mark.parametrize("name", ["momentum", "adagrad", "adam", "rmsprop_momentum", "ftrl"])
def test_two_train_ops_share_one_set_of_slots(name):
    tfv1 = real_tf()

    def run(tf):
        with tf.Graph().as_default():
            ops, weights, feed, _ = _shared_slots(tf, OPTIMIZERS[name])
            with tf.Session() as session:
                session.run(tf.global_variables_initializer())
                for step in range(STEPS):
                    session.run(ops[0] if step % 3 else ops[1], feed(step))
                return session.run(weights)

    assert_weights_match(run(engine), run(tfv1))


@pytest.mark.parametrize("name", ["sgd", "momentum", "adam", "rmsprop", "ftrl"])
def test_tensor_learning_rate_is_read_in_the_same_run(name):
    tfv1 = real_tf()
    make = OPTIMIZERS[name]

    def with_lr(tf, lr):
        # The same optimizer with a fed learning rate instead of its constant one.
        probe = make(tf)
        kind = type(probe).__name__
        if kind == "GradientDescentOptimizer":
            return tf.train.GradientDescentOptimizer(lr)
        if kind == "MomentumOptimizer":
            return tf.train.MomentumOptimizer(lr, 0.9)
        if kind == "AdamOptimizer":
            return tf.train.AdamOptimizer(lr)
        if kind == "RMSPropOptimizer":
            return tf.train.RMSPropOptimizer(lr)
        return tf.train.FtrlOptimizer(lr)

    def build(tf):
        lr = tf.placeholder(tf.float32, [], name="lr")
        return model(tf, with_lr, lr=lr, feed_lr=True)

    got, want = train(engine, build), train(tfv1, build)
    assert_weights_match(got, want)


def test_exponential_decay_schedule_and_global_step_match_tensorflow():
    tfv1 = real_tf()

    def run(tf):
        with tf.Graph().as_default():
            step = tf.train.get_or_create_global_step()
            lr = tf.train.exponential_decay(0.1, step, 4, 0.7, staircase=True)
            train_op, weights, feed, _ = model(
                tf, lambda tf, lr: tf.train.MomentumOptimizer(lr, 0.5), lr=lr, global_step=step
            )
            with tf.Session() as session:
                session.run(tf.global_variables_initializer())
                rates = []
                for s in range(STEPS):
                    rate, _ = session.run([lr, train_op], feed(s))
                    rates.append(rate)
                return session.run(weights), session.run(step), np.array(rates)

    (got, got_step, got_rates), (want, want_step, want_rates) = run(engine), run(tfv1)
    assert got_step == want_step == STEPS
    np.testing.assert_allclose(got_rates, want_rates, rtol=1e-6)
    assert_weights_match(got, want)
