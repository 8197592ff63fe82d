"""Plan-time fusion of matmul + bias + activation chains (engine.plan_fusion).

The oracle for fused plans is the same graph run unfused (`session.fuse_dense_chains =
False`), and real TensorFlow (compat.v1 graph mode, where Grappler fuses the same chains).
"""

from __future__ import annotations

import numpy as np
import pytest

import engine as tf
from engine.plan_fusion import FUSABLE_ACTIVATIONS, find_dense_chains, fusion_enabled
from tests.engine.gradcheck import check_gradient

RNG = np.random.default_rng(18)


def _array(*shape, dtype=np.float64):
    return RNG.standard_normal(shape).astype(dtype)


def _dense(x, w, b, activation, bias_first=False):
    pre = tf.add(b, tf.matmul(x, w)) if bias_first else tf.matmul(x, w) + b
    return pre if activation == "linear" else getattr(tf, activation)(pre)


# Finite-difference checks on fused chains (each plan below fuses: its intermediates are
# used only inside the chain).  The last case feeds a [1, units] bias through a placeholder
# of unknown rank: the chain fuses and takes the one-op-at-a-time path at run time.
CASES = [
    (
        f"fused_{act}{'_bias_first' if first else ''}",
        act if act != "linear" else "add",
        lambda x, w, b, act=act, first=first: _dense(x, w, b, act, first),
        [_array(5, 4), _array(4, 3), _array(3)],
        [0, 1, 2],
    )
    for act in ("linear", *FUSABLE_ACTIVATIONS)
    for first in (False, True)
] + [
    (
        "fused_relu_into_unfused_scalar_bias",  # a scalar bias is not fused (as in TF)
        "relu",
        lambda x, w, b: tf.relu(tf.matmul(tf.relu(tf.matmul(x, w) + b), tf.transpose(w)) + 1.0),
        [_array(6, 4), _array(4, 4), _array(4)],
        [0, 1, 2],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_gradient_matches_finite_differences(device, case):
    check_gradient(device, case)


def test_unknown_rank_bias_takes_the_slow_path_with_right_gradients(device):
    x, w, b = _array(5, 4), _array(4, 3), _array(1, 3)
    with tf.Graph().as_default() as graph:
        xs = tf.placeholder(tf.float64, [None, 4])
        ws = tf.placeholder(tf.float64, [4, 3])
        bs = tf.placeholder(tf.float64, None)  # rank unknown until run time
        out = tf.relu(tf.matmul(xs, ws) + bs)
        loss = tf.reduce_sum(out * out)
        grads = tf.gradients(loss, [xs, ws, bs])
    feed = {xs: x, ws: w, bs: b}
    fused, _ = _run_both(graph, [out, *grads], feed, device)
    assert "matmul" not in _step_types(fused)
    pre = x @ w + b
    g_pre = 2 * np.maximum(pre, 0) * (pre > 0)
    expected = [np.maximum(pre, 0), g_pre @ w.T, x.T @ g_pre, g_pre.sum(0, keepdims=True)]
    values = fused.run([out, *grads], feed)
    for got, want in zip(values, expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12)


def _step_types(session) -> list[str]:
    """Op types of the steps of the session's most recently compiled plan."""
    plan = list(session._plans.values())[-1]
    return [node.op_type for node in plan.step_nodes]


def _session(graph, device="cpu", fuse=None):
    """A session of `graph` with its variables initialised (fusion as `fuse` says)."""
    with graph.as_default():
        init = tf.global_variables_initializer()
    session = tf.Session(graph=graph, device=device)
    if fuse is not None:
        session.fuse_dense_chains = fuse
    session.run(init)
    return session


def _run_both(graph, fetches, feed, device="cpu", steps=1):
    """(fused session, unfused session) after running `fetches` `steps` times in each."""
    sessions = []
    for fuse in (True, False):
        session = _session(graph, device, fuse)
        for _ in range(steps):
            session.run(fetches, feed)
        sessions.append(session)
    return sessions


def _mlp(activations, bias_first=False, dtype=np.float32):
    """A plain TF-1 MLP (matmul + add + activation per layer) and its training fetches."""
    widths = [6, 5, 4, 3, 1][: len(activations) + 1]
    x = tf.placeholder(dtype, [None, widths[0]], name="x")
    y = tf.placeholder(dtype, [None, widths[-1]], name="y")
    hidden, params = x, []
    for i, act in enumerate(activations):
        w = tf.Variable(_array(widths[i], widths[i + 1], dtype=dtype), name=f"w{i}")
        b = tf.Variable(_array(widths[i + 1], dtype=dtype), name=f"b{i}")
        hidden = _dense(hidden, w, b, act, bias_first)
        params += [w, b]
    loss = tf.reduce_mean(tf.square(hidden - y))
    return x, y, hidden, loss, params


@pytest.mark.parametrize("bias_first", [False, True])
def test_fused_training_matches_unfused(device, bias_first):
    with tf.Graph().as_default() as graph:
        x, y, _, loss, params = _mlp(["relu", "tanh", "sigmoid", "linear"], bias_first)
        train = tf.train.AdamOptimizer(0.01).minimize(loss)
        grads = tf.gradients(loss, params)
    feed = {x: _array(32, 6, dtype=np.float32), y: _array(32, 1, dtype=np.float32)}
    fused, unfused = _run_both(graph, [loss, train], feed, device, steps=5)
    assert _step_types(fused).count("matmul") == 0
    assert _step_types(unfused).count("matmul") == 4
    for var in params:
        np.testing.assert_allclose(fused.get_value(var), unfused.get_value(var), rtol=1e-6)
    got = fused.run([loss, *grads], feed)
    want = unfused.run([loss, *grads], feed)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-7)


def test_fetching_an_intermediate_disables_fusion_for_that_plan_only():
    with tf.Graph().as_default() as graph:
        x = tf.placeholder(tf.float32, [None, 3])
        w = tf.Variable(_array(3, 2, dtype=np.float32))
        b = tf.Variable(_array(2, dtype=np.float32))
        product = tf.matmul(x, w)
        pre = product + b
        out = tf.relu(pre)
    feed = {x: _array(4, 3, dtype=np.float32)}
    session = _session(graph)
    fused_out = session.run(out, feed)
    assert _step_types(session) == ["relu"]
    got_product, got_pre, got_out = session.run([product, pre, out], feed)
    assert _step_types(session) == ["matmul", "add", "relu"]
    np.testing.assert_array_equal(got_out, fused_out)
    np.testing.assert_allclose(got_pre, feed[x] @ session.get_value(w) + session.get_value(b))
    np.testing.assert_array_equal(got_out, np.maximum(got_pre, 0))
    np.testing.assert_array_equal(got_product + session.get_value(b), got_pre)
    session.run(pre, feed)  # the add is the fetched end of a linear chain: that fuses
    assert _step_types(session) == ["add"]


def test_intermediates_used_elsewhere_are_not_fused():
    with tf.Graph().as_default() as graph:
        x = tf.placeholder(tf.float32, [None, 3])
        w = tf.Variable(_array(3, 2, dtype=np.float32))
        b = tf.Variable(_array(2, dtype=np.float32))
        pre = tf.matmul(x, w) + b
        both = tf.relu(pre) + tf.sigmoid(pre)  # pre feeds two activations
    session = _session(graph)
    feed = {x: _array(4, 3, dtype=np.float32)}
    value = session.run(both, feed)
    # matmul + add still fuse as a linear chain (the add's value is kept for both users).
    assert sorted(_step_types(session)) == ["add", "add", "relu", "sigmoid"]
    pre_value = feed[x] @ session.get_value(w) + session.get_value(b)
    expected = np.maximum(pre_value, 0) + 1 / (1 + np.exp(-pre_value))
    np.testing.assert_allclose(value, expected, rtol=1e-6)


def test_gradient_with_respect_to_an_intermediate_keeps_it():
    with tf.Graph().as_default() as graph:
        x = tf.placeholder(tf.float64, [None, 3])
        w = tf.Variable(_array(3, 2))
        b = tf.Variable(_array(2))
        pre = tf.matmul(x, w) + b
        loss = tf.reduce_sum(tf.relu(pre) * 3.0)
        (g_pre,) = tf.gradients(loss, [pre])
    feed = {x: _array(4, 3)}
    session = _session(graph)
    got = session.run(g_pre, feed)
    assert "add" in _step_types(session)
    pre_value = feed[x] @ session.get_value(w) + session.get_value(b)
    np.testing.assert_allclose(got, 3.0 * (pre_value > 0))


def test_feeding_an_intermediate_uses_the_fed_value():
    with tf.Graph().as_default() as graph:
        x = tf.placeholder(tf.float32, [None, 3])
        w = tf.Variable(_array(3, 2, dtype=np.float32))
        b = tf.Variable(_array(2, dtype=np.float32))
        product = tf.matmul(x, w)
        out = tf.relu(product + b)
    session = _session(graph)
    fed = np.full((4, 2), -1.0, np.float32)
    got = session.run(out, {x: _array(4, 3, dtype=np.float32), product: fed})
    np.testing.assert_array_equal(got, np.maximum(fed + session.get_value(b), 0))


@pytest.mark.parametrize("fed_link", ["bias_add", "activation"])
def test_feeding_a_chain_end_runs_nothing_behind_it(fed_link):
    with tf.Graph().as_default() as graph:
        x = tf.placeholder(tf.float32, [None, 3])
        w = tf.Variable(_array(3, 2, dtype=np.float32))
        b = tf.Variable(_array(2, dtype=np.float32))
        pre = tf.matmul(x, w) + b
        out = tf.relu(pre)
        total = tf.reduce_sum(pre if fed_link == "bias_add" else out)
    session = _session(graph)
    fed = np.full((4, 2), 2.0, np.float32)
    got = session.run(total, {(pre if fed_link == "bias_add" else out): fed})
    assert got == 16.0
    assert _step_types(session) == ["reduce_sum"]


def test_environment_switch_and_session_attribute(monkeypatch):
    class Bare:
        pass

    monkeypatch.delenv("PEPPERCORN_FUSION", raising=False)
    assert fusion_enabled(Bare())
    monkeypatch.setenv("PEPPERCORN_FUSION", "0")
    assert not fusion_enabled(Bare())
    chosen = Bare()
    chosen.fuse_dense_chains = True
    assert fusion_enabled(chosen)
    with tf.Graph().as_default() as graph:
        x = tf.placeholder(tf.float32, [None, 3])
        out = tf.relu(tf.matmul(x, _array(3, 2, dtype=np.float32)) + _array(2, dtype=np.float32))
    session = _session(graph)
    session.run(out, {x: _array(4, 3, dtype=np.float32)})
    assert _step_types(session) == ["matmul", "add", "relu"]


def test_mixed_dtypes_are_left_unfused_and_keep_numpy_promotion():
    with tf.Graph().as_default() as graph:
        x = tf.placeholder(tf.float32, [None, 3])
        w = tf.Variable(_array(3, 2, dtype=np.float32))
        b = tf.constant(_array(2, dtype=np.float64))
        out = tf.relu(tf.matmul(x, w) + b)
    session = _session(graph)
    value = session.run(out, {x: _array(4, 3, dtype=np.float32)})
    assert "matmul" in _step_types(session)
    assert value.dtype == np.float64


def test_find_dense_chains_reports_each_chain_once():
    with tf.Graph().as_default():
        x = tf.placeholder(tf.float32, [None, 3])
        w = tf.Variable(_array(3, 3, dtype=np.float32))
        b = tf.Variable(_array(3, dtype=np.float32))
        first = tf.matmul(x, w) + b  # linear chain feeding the next one
        out = tf.tanh(tf.matmul(first, w) + b)
        order = tf.topological_order([out])
    chains = find_dense_chains(order, [out], frozenset())
    assert [c.activation for c in chains.by_output.values()] == ["linear", "tanh"]
    assert len(chains.absorbed) == 3  # two matmuls and the tanh chain's add


def test_bias_add_chains_fuse_when_the_op_exists():
    bias_add = getattr(tf.nn, "bias_add", None)
    if bias_add is None:
        pytest.skip("tf.nn.bias_add is not in this engine yet")
    with tf.Graph().as_default() as graph:
        x = tf.placeholder(tf.float32, [None, 3])
        w = tf.Variable(_array(3, 2, dtype=np.float32))
        b = tf.Variable(_array(2, dtype=np.float32))
        out = tf.nn.relu(bias_add(tf.matmul(x, w), b))
    feed = {x: _array(4, 3, dtype=np.float32)}
    fused, unfused = _run_both(graph, out, feed)
    assert "matmul" not in _step_types(fused)
    np.testing.assert_array_equal(fused.run(out, feed), unfused.run(out, feed))


def test_fused_plain_mlp_matches_tensorflow():
    """Forward values and gradients of a fused plain TF-1 MLP against TF's own."""
    tf_real = pytest.importorskip("tensorflow")
    tfv1 = tf_real.compat.v1
    x_value = _array(16, 6, dtype=np.float32)
    y_value = _array(16, 1, dtype=np.float32)
    with tf.Graph().as_default() as graph:
        x, y, hidden, loss, params = _mlp(["relu", "sigmoid", "tanh", "linear"])
        grads = tf.gradients(loss, params)
    session = _session(graph)
    got = session.run([hidden, loss, *grads], {x: x_value, y: y_value})
    assert "matmul" not in _step_types(session)
    weights = [session.get_value(p) for p in params]
    with tfv1.Graph().as_default():
        tx = tfv1.placeholder(tf_real.float32, [None, 6])
        ty = tfv1.placeholder(tf_real.float32, [None, 1])
        variables = [tfv1.Variable(w) for w in weights]
        h = tx
        for i, act in enumerate(["relu", "sigmoid", "tanh", "linear"]):
            h = tfv1.matmul(h, variables[2 * i]) + variables[2 * i + 1]
            h = h if act == "linear" else getattr(tfv1.nn, act)(h)
        t_loss = tfv1.reduce_mean(tfv1.square(h - ty))
        t_grads = tfv1.gradients(t_loss, variables)
        with tfv1.Session() as tf_session:
            tf_session.run(tfv1.global_variables_initializer())
            want = tf_session.run([h, t_loss, *t_grads], {tx: x_value, ty: y_value})
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
