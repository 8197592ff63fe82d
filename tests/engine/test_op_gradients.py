"""Every registered op's gradient against central finite differences (float64, broadcasting)."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest

import engine as tf
from engine.graph import OP_TYPES
from tests.engine.gradcheck import check_gradient

RNG = np.random.default_rng(1234)


def _r(*shape, low=-1.0, high=1.0):
    return RNG.uniform(low, high, size=shape)


def _away_from_zero(*shape):
    # Kinks (relu, clip, max) must not sit within the finite-difference step.
    return _r(*shape, low=0.2, high=1.0) * RNG.choice([-1.0, 1.0], size=shape)


def _distinct(*shape):
    return RNG.permutation(np.arange(np.prod(shape), dtype=np.float64)).reshape(shape) / 7.0


# (case id, op type, build(*input nodes) -> node, input arrays, indices of differentiable inputs)
CASES = [
    ("add-broadcast", "add", tf.add, [_r(2, 1, 3), _r(4, 3)], [0, 1]),
    ("subtract-broadcast", "subtract", tf.subtract, [_r(2, 1, 3), _r(4, 1)], [0, 1]),
    ("multiply-broadcast", "multiply", tf.multiply, [_r(3, 1), _r(1, 4)], [0, 1]),
    ("divide-broadcast", "divide", tf.divide, [_r(2, 3), _r(3, low=1.0, high=2.0)], [0, 1]),
    ("negative", "negative", tf.negative, [_r(2, 3)], [0]),
    ("matmul-2d", "matmul", tf.matmul, [_r(3, 4), _r(4, 2)], [0, 1]),
    ("matmul-vector-right", "matmul", tf.matmul, [_r(2, 3), _r(3)], [0, 1]),
    ("matmul-vector-left", "matmul", tf.matmul, [_r(3), _r(3, 2)], [0, 1]),
    ("matmul-batched-broadcast", "matmul", tf.matmul, [_r(2, 3, 4), _r(4, 2)], [0, 1]),
    ("sigmoid", "sigmoid", tf.sigmoid, [_r(2, 3, low=-4, high=4)], [0]),
    ("tanh", "tanh", tf.tanh, [_r(2, 3)], [0]),
    ("relu", "relu", tf.relu, [_away_from_zero(3, 4)], [0]),
    ("exp", "exp", tf.exp, [_r(2, 3)], [0]),
    ("log", "log", tf.log, [_r(2, 3, low=0.5, high=2.0)], [0]),
    ("square", "square", tf.square, [_r(2, 3)], [0]),
    ("sqrt", "sqrt", tf.sqrt, [_r(2, 3, low=0.5, high=2.0)], [0]),
    ("reduce_sum-all", "reduce_sum", tf.reduce_sum, [_r(2, 3)], [0]),
    (
        "reduce_sum-axes-keepdims",
        "reduce_sum",
        lambda x: tf.reduce_sum(x, axis=[0, 2], keepdims=True),
        [_r(2, 3, 4)],
        [0],
    ),
    ("reduce_mean-axis", "reduce_mean", lambda x: tf.reduce_mean(x, axis=1), [_r(2, 3, 2)], [0]),
    ("reduce_mean-all", "reduce_mean", tf.reduce_mean, [_r(3, 2)], [0]),
    ("reduce_max-axis", "reduce_max", lambda x: tf.reduce_max(x, axis=-1), [_distinct(3, 4)], [0]),
    (
        "reduce_max-keepdims",
        "reduce_max",
        lambda x: tf.reduce_max(x, axis=0, keepdims=True),
        [_distinct(3, 4)],
        [0],
    ),
    (
        "concat",
        "concat",
        lambda a, b, c: tf.concat([a, b, c], axis=1),
        [_r(2, 1), _r(2, 3), _r(2, 2)],
        [0, 1, 2],
    ),
    ("reshape", "reshape", lambda x: tf.reshape(x, [3, -1]), [_r(2, 6)], [0]),
    ("transpose-perm", "transpose", lambda x: tf.transpose(x, [2, 0, 1]), [_r(2, 3, 4)], [0]),
    ("transpose-default", "transpose", tf.transpose, [_r(2, 3)], [0]),
    ("gather-duplicates", "gather", tf.gather, [_r(5, 3), np.array([[0, 2], [2, 4]])], [0]),
    (
        "clip_by_value",
        "clip_by_value",
        lambda x: tf.clip_by_value(x, -0.5, 0.5),
        [np.array([[-0.9, -0.3, 0.1], [0.4, 0.7, -0.6]])],
        [0],
    ),
    ("identity", "identity", tf.identity, [_r(2, 3)], [0]),
    ("cast", "cast", lambda x: tf.cast(x, np.float64), [_r(2, 3)], [0]),
    ("softmax-last", "softmax", tf.softmax, [_r(3, 4, low=-3, high=3)], [0]),
    ("softmax-axis0", "softmax", lambda x: tf.softmax(x, axis=0), [_r(3, 4)], [0]),
    ("log_softmax", "log_softmax", tf.log_softmax, [_r(3, 4, low=-3, high=3)], [0]),
    (
        "sigmoid_ce",
        "sigmoid_cross_entropy_with_logits",
        lambda x, z: tf.sigmoid_cross_entropy_with_logits(labels=z, logits=x),
        [_r(4, 3, low=-5, high=5), _r(4, 3, low=0, high=1)],
        [0, 1],
    ),
    (
        "softmax_ce-unnormalised-labels",
        "softmax_cross_entropy_with_logits",
        # v2: v1 stops the labels' gradient, as TF-1's does
        lambda x, z: tf.nn.softmax_cross_entropy_with_logits_v2(labels=z, logits=x),
        [_r(4, 5, low=-3, high=3), _r(4, 5, low=0, high=1)],
        [0, 1],
    ),
    ("dropout-training", "dropout", lambda x: tf.dropout(x, 0.4), [_r(4, 5)], [0]),
    ("dropout-inference", "dropout", lambda x: tf.dropout(x, 0.4, training=False), [_r(3, 2)], [0]),
    ("l2_loss", "l2_loss", tf.l2_loss, [_r(2, 3)], [0]),
] + [
    (
        f"fused_dense-{act}-{'bias' if bias else 'nobias'}",
        "fused_dense",
        (lambda a, bias: lambda x, w, *b: tf.fused_dense(x, w, b[0] if b else None, a))(act, bias),
        [_away_from_zero(4, 3), _r(3, 2), _r(2)] if bias else [_away_from_zero(4, 3), _r(3, 2)],
        [0, 1, 2] if bias else [0, 1],
    )
    for act in tf.FUSED_ACTIVATIONS
    for bias in (True, False)
]

# Built-in op types deliberately without a finite-difference case, each tested elsewhere.
NOT_DIFFERENTIABLE = {"stop_gradient"}


def _builtin_op_types() -> set[str]:
    return {t for t, cls in OP_TYPES.items() if cls.__module__.startswith("engine")}


def test_every_builtin_op_type_has_a_gradient_check():
    # Op families keep their cases in tests/engine/test_grad_<family>.py (a CASES list each).
    covered = {case[1] for case in CASES} | NOT_DIFFERENTIABLE
    for path in sorted(Path(__file__).parent.glob("test_grad_*.py")):
        module = importlib.import_module(f"tests.engine.{path.stem}")
        covered |= {case[1] for case in module.CASES}
        covered |= set(getattr(module, "NOT_DIFFERENTIABLE", ()))
    missing = _builtin_op_types() - covered
    assert not missing, f"ops registered without a finite-difference gradient test: {missing}"


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_gradient_matches_finite_differences(device, case):
    check_gradient(device, case)


def test_stop_gradient_passes_no_gradient(device):
    x = tf.placeholder(tf.float64, (3,))
    loss = tf.reduce_sum(tf.stop_gradient(x) * x)
    (grad,) = tf.gradients(loss, [x])
    value = np.array([1.0, -2.0, 3.0])
    with tf.Session(device=device) as session:
        np.testing.assert_allclose(session.run(grad, {x: value}), value)
