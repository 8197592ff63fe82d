"""tf.train.Saver: train 10 steps, save, restore into a fresh graph and session, train 15 more.

The resumed run must equal 25 uninterrupted steps (optimizer slots and step counters are
saved with the weights) and TensorFlow's 25 steps.
"""

from __future__ import annotations

import functools

import numpy as np

from tests.parity.harness import STEPS, Model, Trace, assert_traces_match, run_steps, train
from tests.parity.programs import OPTIMIZERS, build_ncf, weights

FIRST_LEG = 10


def train_resumed(tf, build, directory, first_leg: int = FIRST_LEG) -> Trace:
    """`first_leg` steps, `Saver.save`, then a new graph and session restored from it (no
    initialiser run) train the remaining steps; one Trace over both legs."""
    trace = Trace([], [], {})
    directory.mkdir(parents=True)
    graph = tf.Graph()
    with graph.as_default():
        model = build(tf)
        saver = tf.train.Saver()
        init = tf.global_variables_initializer()
    with tf.Session(graph=graph) as session:
        session.run(init)
        run_steps(session, model, range(first_leg), trace)
        save_path = saver.save(session, str(directory / "model.ckpt"))
    graph = tf.Graph()
    with graph.as_default():
        model = build(tf)
        saver = tf.train.Saver()
    with tf.Session(graph=graph) as session:
        saver.restore(session, save_path)
        run_steps(session, model, range(first_leg, STEPS), trace)
        trace.weights = {name: np.asarray(w) for name, w in session.run(model.weights).items()}
    return trace


def _assert_resume_matches(eng, tfv1, build, tmp_path) -> None:
    tf_uninterrupted = train(tfv1, build)
    # The program itself resumes exactly on TF; otherwise the comparison below means nothing.
    assert_traces_match(train_resumed(tfv1, build, tmp_path / "tf"), tf_uninterrupted)
    engine_resumed = train_resumed(eng, build, tmp_path / "engine")
    assert_traces_match(engine_resumed, train(eng, build))
    assert_traces_match(engine_resumed, tf_uninterrupted)


def test_saver_resume_equals_uninterrupted_training(eng, tfv1, tmp_path):
    """NCF with Adam: save after 10 steps, restore, 15 more == 25 steps, on the engine and TF."""
    build = functools.partial(build_ncf, make_optimizer=OPTIMIZERS["Adam"])
    _assert_resume_matches(eng, tfv1, build, tmp_path)


ITEMS = 30
_RNG = np.random.default_rng(2)
OFF_PATH_DATA = {
    "users": _RNG.integers(0, 20, (STEPS, 12)).astype(np.int32),
    "items": _RNG.integers(0, ITEMS, (STEPS, 12)).astype(np.int32),
    "labels": _RNG.integers(0, 2, (STEPS, 12, 1)).astype(np.float32),
}


def build_table_also_off_loss_path(tf) -> Model:
    """An item table in the loss through embedding_lookup and, off the loss path, in a
    full-catalogue score `matmul(u, transpose(E))` (what a retrieval export fetches)."""
    users = tf.placeholder(tf.int32, [None], name="users")
    items = tf.placeholder(tf.int32, [None], name="items")
    labels = tf.placeholder(tf.float32, [None, 1], name="labels")
    init = weights(11, user_table=(20, 6), item_table=(ITEMS, 6))
    user_table = tf.Variable(init["user_table"], name="user_table")
    item_table = tf.Variable(init["item_table"], name="item_table")
    u = tf.nn.embedding_lookup(user_table, users)
    e = tf.nn.embedding_lookup(item_table, items)
    logits = tf.reduce_sum(u * e, axis=1, keepdims=True)
    loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))
    tf.matmul(u, tf.transpose(item_table), name="all_item_scores")
    train_op = tf.train.AdamOptimizer(0.05).minimize(loss)

    def feed(step):
        return {
            users: OFF_PATH_DATA["users"][step],
            items: OFF_PATH_DATA["items"][step],
            labels: OFF_PATH_DATA["labels"][step],
        }

    grads = {"item_table": tf.gradients(loss, item_table)[0]}
    return Model(loss, train_op, {"user": user_table, "item": item_table}, feed, grads)


def test_bug2_resume_with_table_also_used_off_the_loss_path_keeps_adam_moments(eng, tfv1, tmp_path):
    """Issue #18 bug 2: restoring such a table's Adam moments (not zeros): resumed == TF."""
    _assert_resume_matches(eng, tfv1, build_table_also_off_loss_path, tmp_path)


def test_saver_save_creates_a_missing_parent_directory(tf, tmp_path):
    """TF 2.21's Saver.save creates the checkpoint's own directory when its parent exists
    (checked: two missing levels are a NotFoundError there); the engine's must too, and
    restore reads it back."""
    value = np.arange(6, dtype=np.float32).reshape(2, 3)
    with tf.Graph().as_default() as graph:
        variable = tf.Variable(value, name="v")
        saver = tf.train.Saver()
        init = tf.global_variables_initializer()
    with tf.Session(graph=graph) as session:
        session.run(init)
        save_path = saver.save(session, str(tmp_path / "new" / "model.ckpt"))
    with tf.Graph().as_default() as graph:
        variable = tf.Variable(np.zeros((2, 3), np.float32), name="v")
        saver = tf.train.Saver()
    with tf.Session(graph=graph) as session:
        saver.restore(session, save_path)
        np.testing.assert_array_equal(session.run(variable), value)
