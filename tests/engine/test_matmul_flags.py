"""matmul's TF-1 flags (forward vs TF compat.v1, gradients by finite differences), its static
shapes and build-time errors, fused_dense's static shape, and tensordot."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import engine as tf
from tests.engine.gradcheck import check_gradient
from tests.engine.tf_forward_oracle import assert_matches_tf

RNG = np.random.default_rng(99)


def _r(*shape, dtype=np.float64):
    return RNG.uniform(-1.0, 1.0, size=shape).astype(dtype)


def _operands(transpose_a, transpose_b, batch=(), b_batch=None, dtype=np.float64):
    a_shape = (4, 3) if transpose_a else (3, 4)
    b_shape = (5, 4) if transpose_b else (4, 5)
    b_batch = batch if b_batch is None else b_batch
    return [_r(*batch, *a_shape, dtype=dtype), _r(*b_batch, *b_shape, dtype=dtype)]


FLAGS = list(itertools.product([False, True], repeat=2))
LAYOUTS = {"2d": ((), None), "batched": ((2,), None), "batched-a-only": ((2,), ())}


def _flagged(transpose_a, transpose_b, adjoint=False):
    if adjoint:
        return lambda t, a, b: t.matmul(a, b, adjoint_a=transpose_a, adjoint_b=transpose_b)
    return lambda t, a, b: t.matmul(a, b, transpose_a=transpose_a, transpose_b=transpose_b)


FORWARD_CASES = [
    (f"{layout}-ta{int(ta)}-tb{int(tb)}", _flagged(ta, tb), _operands(ta, tb, *LAYOUTS[layout]))
    for layout in ("2d", "batched")
    for ta, tb in FLAGS
] + [
    ("adjoint-flags", _flagged(True, True, adjoint=True), _operands(True, True)),
    ("sparse-hints", lambda t, a, b: t.matmul(a, b, a_is_sparse=True), _operands(False, False)),
    ("float32", _flagged(False, True), _operands(False, True, dtype=np.float32)),
    ("tensordot-int", lambda t, a, b: t.tensordot(a, b, 1), [_r(2, 3), _r(3, 4)]),
    (
        "tensordot-pairs",
        lambda t, a, b: t.tensordot(a, b, [[2, 0], [0, 1]]),
        [_r(2, 3, 4), _r(4, 2, 5)],
    ),
    ("tensordot-outer", lambda t, a, b: t.tensordot(a, b, 0), [_r(2), _r(3)]),
]


@pytest.mark.parametrize("case", FORWARD_CASES, ids=[c[0] for c in FORWARD_CASES])
def test_forward_matches_tensorflow(device, case):
    _, build, arrays = case
    assert_matches_tf(lambda t, a, b: build(t, a, b), arrays, device, rtol=1e-5)


# Gradient cases: every flag combination, 2-D, batched, and a batched a against a shared b.
CASES = [
    (
        f"matmul-{layout}-ta{int(ta)}-tb{int(tb)}",
        "matmul",
        (lambda ta, tb: lambda a, b: tf.matmul(a, b, transpose_a=ta, transpose_b=tb))(ta, tb),
        _operands(ta, tb, *LAYOUTS[layout]),
        [0, 1],
    )
    for layout in LAYOUTS
    for ta, tb in FLAGS
] + [
    (
        "matmul-adjoint",
        "matmul",
        lambda a, b: tf.matmul(a, b, adjoint_a=True, adjoint_b=True),
        _operands(True, True),
        [0, 1],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_gradient_matches_finite_differences(device, case):
    check_gradient(device, case)


def test_matmul_signature_is_tf1s():
    a, b = tf.placeholder(tf.float32, (2, 3)), tf.placeholder(tf.float32, (2, 3))
    # Positional order: a, b, transpose_a, transpose_b, adjoint_a, adjoint_b, ...
    product = tf.matmul(a, b, False, True, False, False, False, False, "scores")
    assert product.name == "scores"
    assert product.shape.as_list() == [2, 2]
    assert product.attrs == {"transpose_a": False, "transpose_b": True}


def test_matmul_static_shapes():
    x = tf.placeholder(tf.float32, (None, 3))
    w = tf.placeholder(tf.float32, (3, 7))
    assert tf.matmul(x, w).shape.as_list() == [None, 7]
    assert (x @ w).shape.as_list() == [None, 7]
    assert tf.matmul(x, x, transpose_a=True).shape.as_list() == [3, 3]
    batch = tf.placeholder(tf.float32, (None, 5, 3))
    assert tf.matmul(batch, w).shape.as_list() == [None, 5, 7]
    assert tf.matmul(batch, batch, transpose_b=True).shape.as_list() == [None, 5, 5]
    assert tf.matmul(tf.placeholder(tf.float32), w).shape.rank is None


def test_unequal_inner_dimensions_are_a_build_time_error_naming_op_and_shapes():
    a = tf.placeholder(tf.float32, (2, 3))
    b = tf.placeholder(tf.float32, (4, 5))
    expected = (
        "matmul: Dimensions must be equal, but are 3 and 4 for 'matmul' (op: 'MatMul') "
        "with input shapes: [2,3], [4,5]."
    )
    with pytest.raises(ValueError) as info:
        tf.matmul(a, b)
    assert str(info.value) == expected
    with pytest.raises(ValueError, match="but are 2 and 5 for 'logits'.*\\[2,3\\], \\[4,5\\]"):
        tf.matmul(a, b, transpose_a=True, transpose_b=True, name="logits")
    with pytest.raises(ValueError, match="with input shapes: \\[\\?,3\\], \\[4,5\\]"):
        tf.matmul(tf.placeholder(tf.float32, (None, 3)), b)
    with pytest.raises(ValueError, match="Dimensions must be equal"):
        tf.fused_dense(a, b)


def test_flags_on_a_vector_are_refused():
    with pytest.raises(ValueError, match="needs rank >= 2"):
        tf.matmul(tf.placeholder(tf.float32, (3,)), tf.placeholder(tf.float32, (3, 2)), True)
    with pytest.raises(ValueError, match="only one of transpose_x and adjoint_x"):
        tf.matmul(_r(2, 2), _r(2, 2), transpose_a=True, adjoint_a=True)


def test_fused_dense_static_shape_and_value():
    x = tf.placeholder(tf.float32, (None, 3))
    w = tf.Variable(np.ones((3, 2), np.float32))
    out = tf.fused_dense(x, w, np.zeros(2, np.float32), "relu")
    assert out.shape.as_list() == [None, 2]
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        got = session.run(out, {x: np.array([[1, 2, 3], [-1, -2, -3]], np.float32)})
    np.testing.assert_array_equal(got, [[6, 6], [0, 0]])


def test_transposed_matmul_trains_an_embedding_table_like_tf():
    # Two-tower scoring: users @ items^T, the table read transposed without a copy.
    users = tf.Variable(_r(3, 4))
    items = tf.Variable(_r(5, 4))
    scores = tf.matmul(users, items, transpose_b=True)
    grad_users, grad_items = tf.gradients(tf.reduce_sum(scores * scores), [users, items])
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        u, v = session.run([users, items])
        got_u, got_v = session.run([grad_users, grad_items])
    s = u @ v.T
    np.testing.assert_allclose(got_u, 2 * s @ v, rtol=1e-12)
    np.testing.assert_allclose(got_v, 2 * s.T @ u, rtol=1e-12)


def test_tensordot_checks_contracted_dimensions():
    with pytest.raises(ValueError, match="Dimensions must be equal, but are 3 and 4"):
        tf.tensordot(tf.placeholder(tf.float32, (2, 3)), tf.placeholder(tf.float32, (4, 2)), 1)
    with pytest.raises(ValueError, match="differ in length"):
        tf.tensordot(_r(2, 3), _r(3, 2), [[1], [0, 1]])


def test_optimize_for_inference_keeps_a_transposed_square_matmul_right():
    # fuse_dense may only absorb matmul(x, W) with no flags: W^T has W's shape when square.
    from engine.passes import optimize_for_inference

    x = tf.placeholder(tf.float32, (None, 3), name="x")
    w = tf.Variable(np.arange(9, dtype=np.float32).reshape(3, 3))
    b = tf.Variable(np.ones(3, np.float32))
    y = tf.matmul(x, w, transpose_b=True) + b
    features = _r(2, 3, dtype=np.float32)
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        expected = session.run(y, {x: features})
        optimized = optimize_for_inference(session, [y])
    with tf.Session(optimized.graph) as session:
        got = session.run(optimized.outputs[y.name], {optimized.graph.get_node("x"): features})
    np.testing.assert_allclose(got, expected, rtol=1e-6)
