"""Learning-rate schedules and the global step, against TensorFlow 1 (compat.v1)."""

from __future__ import annotations

import numpy as np
import pytest

import engine
import engine as tf
from tests.engine.test_optimizer_parity import real_tf

STEPS = [0, 1, 3, 4, 5, 9, 10, 11, 25, 100]


def _schedule_values(tf, make):
    with tf.Graph().as_default():
        step = tf.placeholder(tf.int64, [], name="step")
        rate = make(tf, step)
        with tf.Session() as session:
            return np.array([session.run(rate, {step: s}) for s in STEPS])


SCHEDULES = {
    "exponential": lambda tf, s: tf.train.exponential_decay(0.1, s, 4, 0.5),
    "exponential_staircase": lambda tf, s: tf.train.exponential_decay(
        0.3, s, 5, 0.9, staircase=True
    ),
    "natural_exp": lambda tf, s: tf.train.natural_exp_decay(0.1, s, 4, 0.5),
    "natural_exp_staircase": lambda tf, s: tf.train.natural_exp_decay(0.1, s, 4, 0.5, True),
    "inverse_time": lambda tf, s: tf.train.inverse_time_decay(0.2, s, 3, 0.4),
    "inverse_time_staircase": lambda tf, s: tf.train.inverse_time_decay(0.2, s, 3, 0.4, True),
    "polynomial": lambda tf, s: tf.train.polynomial_decay(0.1, s, 10, 0.01, power=0.5),
    "polynomial_cycle": lambda tf, s: tf.train.polynomial_decay(0.1, s, 4, 0.01, 2.0, True),
    "cosine": lambda tf, s: tf.train.cosine_decay(0.1, s, 20),
    "cosine_alpha": lambda tf, s: tf.train.cosine_decay(0.1, s, 20, alpha=0.2),
    "piecewise_float": lambda tf, s: tf.train.piecewise_constant(s, [4, 10], [1.0, 0.5, 0.1]),
    "piecewise_int": lambda tf, s: tf.train.piecewise_constant(s, [3, 5, 25], [7, 5, 3, 1]),
}


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_schedule_matches_tensorflow(name):
    tfv1 = real_tf()
    got = _schedule_values(engine, SCHEDULES[name])
    want = _schedule_values(tfv1, SCHEDULES[name])
    assert got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_schedule_dtypes_and_shapes_are_static():
    step = tf.train.get_or_create_global_step()
    decayed = tf.train.exponential_decay(0.1, step, 10, 0.9)
    assert decayed.dtype == np.float32 and tuple(decayed.shape) == ()
    lr64 = tf.train.exponential_decay(np.float64(0.1), step, 10, 0.9)
    assert lr64.dtype == np.float64
    piecewise = tf.train.piecewise_constant(step, [10], [0.1, 0.01])
    assert piecewise.dtype == np.float32 and tuple(piecewise.shape) == ()


def test_schedule_arguments_are_checked():
    with pytest.raises(ValueError, match="global_step is required"):
        tf.train.exponential_decay(0.1, None, 10, 0.9)
    step = tf.train.get_or_create_global_step()
    with pytest.raises(ValueError, match="1 less than the length of values"):
        tf.train.piecewise_constant(step, [1, 2], [0.1, 0.2])


def test_global_step_is_an_int64_scalar_non_trainable_variable():
    assert tf.train.get_global_step() is None
    step = tf.train.create_global_step()
    assert isinstance(step, tf.Variable) and step.name == "global_step"
    assert step.dtype == np.int64 and tuple(step.shape) == () and not step.trainable
    assert tf.train.get_global_step() is step
    assert tf.train.get_or_create_global_step() is step
    with pytest.raises(ValueError, match="already exists"):
        tf.train.create_global_step()
    other = tf.Graph()
    made = tf.train.get_or_create_global_step(other)
    assert made.graph is other and made is not step
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        assert tf.train.global_step(session, step) == 0


def test_minimize_and_apply_gradients_increment_the_global_step_after_the_update():
    w = tf.Variable(np.array([1.0, 2.0]), name="w")
    step = tf.train.get_or_create_global_step()
    rate = tf.train.piecewise_constant(step, [0], [1.0, 0.5])
    loss = tf.reduce_sum(w)
    optimizer = tf.train.GradientDescentOptimizer(rate)
    train_op = optimizer.minimize(loss, global_step=step)
    apply_op = optimizer.apply_gradients(optimizer.compute_gradients(loss), global_step=step)
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        fetched_step, _ = session.run([step, train_op])  # the step read before the increment
        assert fetched_step == 0 and session.run(step) == 1
        np.testing.assert_allclose(session.get_value(w), [0.0, 1.0])  # rate 1.0 at step 0
        session.run(apply_op)
        np.testing.assert_allclose(session.get_value(w), [-0.5, 0.5])  # rate 0.5 at step 1
        assert session.run(step) == 2
