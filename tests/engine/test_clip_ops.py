"""clip_by_norm, clip_by_global_norm and global_norm against real TensorFlow (compat.v1),
dense and on IndexedSlices gradients (which stay IndexedSlices, as in TF-1)."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import engine as tf
from tests.engine.tf_oracle import assert_matches_tf, run_engine, run_tf

RNG = np.random.default_rng(11)
A = RNG.standard_normal((3, 4)).astype(np.float32)
B = RNG.standard_normal((5,)).astype(np.float32)
TABLE = RNG.standard_normal((6, 2)).astype(np.float32)
IDS = np.array([1, 4, 1, 0], np.int32)


def test_clip_by_norm_matches_tf(tfv1):
    def program(t):
        a = t.constant(A)
        return [
            t.clip_by_norm(a, 1.0),
            t.clip_by_norm(a, 100.0),
            t.clip_by_norm(a, 0.5, axes=[1]),
            t.clip_by_norm(a, t.constant(0.7), axes=0),
            t.clip_by_norm(t.zeros([3]), 1.0),
        ]

    assert_matches_tf(tfv1, program, rtol=1e-5)


def test_global_norm_and_clip_by_global_norm_match_tf(tfv1):
    def program(t):
        a, b = t.constant(A), t.constant(B)
        clipped, norm = t.clip_by_global_norm([a, None, b], 1.5)
        unclipped, _ = t.clip_by_global_norm([a, b], 100.0)
        used, used_norm = t.clip_by_global_norm([a], 1.0, use_norm=t.constant(np.float32(4.0)))
        return [t.global_norm([a, b]), norm, clipped[0], clipped[2], *unclipped, used[0], used_norm]

    assert_matches_tf(tfv1, program, rtol=1e-5)


def test_infinite_norm_gives_nan_as_tf(tfv1):
    def program(t):
        bad = t.constant(np.array([np.inf, 1.0], np.float32))
        clipped, norm = t.clip_by_global_norm([bad, t.constant(B)], 1.0)
        return [clipped[1], norm]

    assert_matches_tf(tfv1, program)


def _embedding_gradient(t):
    table = t.Variable(TABLE)
    loss = t.reduce_sum(t.square(t.gather(table, IDS) * 3.0))
    return table, loss, t.gradients(loss, [table])[0]


def test_indexed_slices_stay_sparse_with_tf1_values(tfv1):
    def program(t):
        _, _, grad = _embedding_gradient(t)
        clipped, norm = t.clip_by_global_norm([grad], 1.0)
        slices = [clipped[0], t.clip_by_norm(grad, 0.5), t.clip_by_value(grad, -1.0, 1.0)]
        if t is not tf:  # TF fetches an IndexedSlices' parts, the engine the whole
            slices = [s.values for s in slices]
        return [t.global_norm([grad]), norm, *slices]

    got = run_engine(program)
    expected = run_tf(tfv1, program)
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-5)
    np.testing.assert_allclose(got[1], expected[1], rtol=1e-5)
    for slices, values in zip(got[2:], expected[2:], strict=True):
        assert isinstance(slices, tf.IndexedSlices)
        assert slices.indices.tolist() == IDS.tolist()
        np.testing.assert_allclose(slices.values, values, rtol=1e-5)


def test_training_with_clipped_sparse_gradients_matches_tf(tfv1):
    def program(t):
        table, loss, _ = _embedding_gradient(t)
        optimizer = t.train.GradientDescentOptimizer(0.05)
        grads, variables = zip(*optimizer.compute_gradients(loss, [table]), strict=True)
        clipped, _ = t.clip_by_global_norm(list(grads), 2.0)
        step = optimizer.apply_gradients(list(zip(clipped, variables, strict=True)))
        return table, step

    def train(t):
        with t.Graph().as_default():
            table, step = program(t)
            with t.Session() as session:
                session.run(t.global_variables_initializer())
                for _ in range(5):
                    session.run(step)
                return session.run(table)

    np.testing.assert_allclose(train(tf), train(tfv1), rtol=1e-5, atol=1e-6)


def test_gradient_through_clip_by_norm_matches_tf(tfv1):
    def program(t):
        a = t.constant(A)
        loss = t.reduce_sum(t.clip_by_norm(a, 1.0, axes=[1]) * t.constant(A[::-1].copy()))
        return t.gradients(loss, [a])[0]

    assert_matches_tf(tfv1, program, rtol=1e-5, atol=1e-6)


def test_bad_t_list_raises():
    with pytest.raises(TypeError):
        tf.clip_by_global_norm(tf.constant(A), 1.0)
    with pytest.raises(TypeError):
        tf.global_norm(tf.constant(A))


@pytest.mark.parametrize("name", ["clip_by_norm", "clip_by_global_norm", "global_norm"])
def test_signature_matches_tf1(tfv1, name):
    ours = list(inspect.signature(getattr(tf, name)).parameters)
    theirs = list(inspect.signature(getattr(tfv1, name)).parameters)
    assert ours[: len(theirs)] == theirs
