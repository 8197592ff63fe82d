"""tf.train.Saver: variables and optimizer state saved, restored, resumed exactly; vs TF-1."""

from __future__ import annotations

import os

import numpy as np
import pytest

import engine
import engine as tf
from tests.engine.test_optimizer_parity import E0, IDS, TARGETS, W0, real_tf

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _program(tf, make=lambda tf: tf.train.AdamOptimizer(0.05)):
    ids = tf.placeholder(tf.int32, [None], name="ids")
    y = tf.placeholder(tf.float32, [None, 3], name="y")
    table = tf.Variable(E0, name="E")
    w = tf.Variable(W0, name="W")
    step = tf.train.get_or_create_global_step()
    loss = tf.reduce_mean(tf.square(tf.matmul(tf.gather(table, ids), w) - y))
    train_op = make(tf).minimize(loss, global_step=step)
    return train_op, {"E": table, "W": w}, step, lambda s: {ids: IDS[s], y: TARGETS[s]}


def _steps(session, train_op, feed, steps):
    for s in steps:
        session.run(train_op, feed(s))


MAKERS = {
    "adam": lambda tf: tf.train.AdamOptimizer(0.05),
    "momentum": lambda tf: tf.train.MomentumOptimizer(0.05, 0.9),
    "rmsprop": lambda tf: tf.train.RMSPropOptimizer(0.01, momentum=0.3),
    "ftrl": lambda tf: tf.train.FtrlOptimizer(0.2),
}


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_save_restore_resume_equals_an_uninterrupted_run(tmp_path, name):
    with tf.Graph().as_default():
        train_op, weights, step, feed = _program(tf, MAKERS[name])
        saver = tf.train.Saver()
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            _steps(session, train_op, feed, range(10))
            path = saver.save(session, str(tmp_path / "model"), global_step=step)
            _steps(session, train_op, feed, range(10, 25))
            uninterrupted = session.run(weights)
    assert path == str(tmp_path / "model-10")
    assert tf.train.latest_checkpoint(str(tmp_path)) == path
    with tf.Graph().as_default():
        train_op, weights, step, feed = _program(tf, MAKERS[name])
        saver = tf.train.Saver()
        with tf.Session() as session:
            saver.restore(session, tf.train.latest_checkpoint(str(tmp_path)))
            assert session.run(step) == 10
            _steps(session, train_op, feed, range(10, 25))
            resumed = session.run(weights)
            assert session.run(step) == 25
    for key in uninterrupted:
        np.testing.assert_array_equal(resumed[key], uninterrupted[key])


def test_restored_training_matches_tensorflows(tmp_path):
    tfv1 = real_tf()

    def run(tf, folder):
        with tf.Graph().as_default():
            train_op, weights, step, feed = _program(tf)
            saver = tf.train.Saver()
            with tf.Session() as session:
                session.run(tf.global_variables_initializer())
                _steps(session, train_op, feed, range(10))
                saver.save(session, os.path.join(folder, "ckpt"), global_step=step)
        with tf.Graph().as_default():
            train_op, weights, step, feed = _program(tf)
            saver = tf.train.Saver()
            with tf.Session() as session:
                saver.restore(session, tf.train.latest_checkpoint(folder))
                _steps(session, train_op, feed, range(10, 25))
                return session.run(weights), session.run(step)

    (tmp_path / "engine").mkdir()
    (tmp_path / "tf").mkdir()
    (got, got_step), (want, want_step) = (
        run(engine, str(tmp_path / "engine")),
        run(tfv1, str(tmp_path / "tf")),
    )
    assert got_step == want_step == 25
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-4, atol=2e-6, err_msg=key)


def test_max_to_keep_and_the_checkpoint_state_file(tmp_path):
    tf.Variable(np.arange(3.0), name="w")
    saver = tf.train.Saver(max_to_keep=2)
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        paths = [saver.save(session, str(tmp_path / "m"), global_step=s) for s in (1, 2, 3)]
    assert not os.path.exists(paths[0] + ".npz")
    assert all(os.path.exists(p + ".npz") for p in paths[1:])
    assert saver.last_checkpoints == paths[1:]
    state = tf.train.get_checkpoint_state(str(tmp_path))
    assert state.model_checkpoint_path == paths[2]
    assert state.all_model_checkpoint_paths == paths[1:]
    text = (tmp_path / "checkpoint").read_text()
    assert text.startswith(f'model_checkpoint_path: "{paths[2]}"\n')
    assert tf.train.latest_checkpoint(str(tmp_path / "nowhere")) is None
    assert tf.train.checkpoint_exists(paths[2])


def test_var_list_as_dict_saves_under_the_given_names(tmp_path):
    with tf.Graph().as_default():
        a = tf.Variable(np.ones(2), name="a")
        saver = tf.train.Saver({"renamed": a})
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            session.set_value(a, [5.0, 6.0])
            path = saver.save(session, str(tmp_path / "x"))
    assert path == str(tmp_path / "x")
    with np.load(path + ".npz", allow_pickle=False) as npz:
        assert "variables/renamed" in npz.files
    with tf.Graph().as_default():
        b = tf.Variable(np.zeros(2), name="b")
        other = tf.Variable(np.zeros(1), name="other")
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            tf.train.Saver({"renamed": b}).restore(session, path)
            np.testing.assert_array_equal(session.get_value(b), [5.0, 6.0])
            with pytest.raises(tf.errors.NotFoundError, match="Key other not found"):
                tf.train.Saver([other]).restore(session, path)


def test_saver_errors_are_tf1s(tmp_path):
    with pytest.raises(ValueError, match="No variables to save"):
        tf.train.Saver()
    w = tf.Variable(np.ones(1), name="w")
    saver = tf.train.Saver([w])
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        # As TF 2.21's compat.v1: the checkpoint's own folder is created, not its parents.
        assert saver.save(session, str(tmp_path / "new" / "m")) == str(tmp_path / "new" / "m")
        with pytest.raises(tf.errors.NotFoundError, match="No such file or directory"):
            saver.save(session, str(tmp_path / "missing" / "twice" / "m"))
        with pytest.raises(ValueError, match="not a valid checkpoint"):
            saver.restore(session, str(tmp_path / "none"))
        with pytest.raises(ValueError, match="save_path when it is None"):
            saver.restore(session, None)
