"""Each optimizer against a hand-written numpy implementation of TF-1's update rule."""

from __future__ import annotations

import numpy as np
import pytest

import engine as tf

RNG = np.random.default_rng(3)
X = RNG.standard_normal((8, 3))
Y = RNG.standard_normal((8, 2))
W0 = RNG.standard_normal((3, 2))
B0 = RNG.standard_normal(2)
STEPS = 4


def _grads(w, b):
    """d/dw, d/db of mean((X @ w + b - Y) ** 2), worked out by hand."""
    r = X @ w + b - Y
    return 2 * X.T @ r / r.size, 2 * r.sum(axis=0) / r.size


def _sgd(lr):
    def step(p, g, s, t):
        return p - lr * g

    return step


def _momentum(lr, mu, nesterov=False):
    def step(p, g, s, t):
        s["a"] = mu * s.get("a", 0.0) + g
        return p - lr * (g + mu * s["a"] if nesterov else s["a"])

    return step


def _adagrad(lr, init=0.1):
    def step(p, g, s, t):
        s["acc"] = s.get("acc", init) + g**2
        return p - lr * g / np.sqrt(s["acc"])

    return step


def _adam(lr, b1=0.9, b2=0.999, eps=1e-8):
    def step(p, g, s, t):
        s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
        s["v"] = b2 * s.get("v", 0.0) + (1 - b2) * g**2
        lr_t = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
        return p - lr_t * s["m"] / (np.sqrt(s["v"]) + eps)

    return step


def _ftrl(lr, l1, l2, init=0.1):
    def step(p, g, s, t):
        n = s.get("n", np.full_like(p, init))
        z = s.get("z", np.zeros_like(p))
        n_new = n + g**2
        z = z + g - (np.sqrt(n_new) - np.sqrt(n)) / lr * p
        s["n"], s["z"] = n_new, z
        w = -(z - np.sign(z) * l1) / (np.sqrt(n_new) / lr + 2 * l2)
        return np.where(np.abs(z) <= l1, 0.0, w)

    return step


CASES = {
    "sgd": (lambda: tf.train.GradientDescentOptimizer(0.1), _sgd(0.1)),
    "momentum": (lambda: tf.train.MomentumOptimizer(0.05, 0.9), _momentum(0.05, 0.9)),
    "nesterov": (
        lambda: tf.train.MomentumOptimizer(0.05, 0.9, use_nesterov=True),
        _momentum(0.05, 0.9, nesterov=True),
    ),
    "adagrad": (lambda: tf.train.AdagradOptimizer(0.2), _adagrad(0.2)),
    "adam": (lambda: tf.train.AdamOptimizer(0.1), _adam(0.1)),
    "ftrl": (
        lambda: tf.train.FtrlOptimizer(
            0.3, l1_regularization_strength=0.05, l2_regularization_strength=0.2
        ),
        _ftrl(0.3, 0.05, 0.2),
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_optimizer_matches_reference(device, name):
    make, reference = CASES[name]
    x = tf.placeholder(tf.float64, (None, 3))
    y = tf.placeholder(tf.float64, (None, 2))
    w = tf.Variable(W0)
    b = tf.Variable(B0)
    loss = tf.reduce_mean(tf.square(x @ w + b - y))
    train_op = make().minimize(loss)
    ref_w, ref_b, state_w, state_b = W0.copy(), B0.copy(), {}, {}
    with tf.Session(device=device) as session:
        session.run(tf.global_variables_initializer())
        for t in range(1, STEPS + 1):
            loss_value, _ = session.run([loss, train_op], {x: X, y: Y})
            # The fetched loss is the pre-update one, from the same forward pass.
            np.testing.assert_allclose(loss_value, np.mean((X @ ref_w + ref_b - Y) ** 2))
            gw, gb = _grads(ref_w, ref_b)
            ref_w, ref_b = reference(ref_w, gw, state_w, t), reference(ref_b, gb, state_b, t)
            np.testing.assert_allclose(session.get_value(w), ref_w, rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(session.get_value(b), ref_b, rtol=1e-10, atol=1e-12)


def test_float32_stays_float32_through_training():
    x = tf.placeholder(tf.float32, (None, 3))
    y = tf.placeholder(tf.float32, (None, 2))
    w = tf.Variable(W0.astype(np.float32))
    b = tf.Variable(B0.astype(np.float32))
    logits = tf.fused_dense(x, w, b, "relu") * 0.5 + 1.0
    loss = tf.reduce_mean(tf.sigmoid_cross_entropy_with_logits(labels=y, logits=logits))
    grads = tf.gradients(loss, [w, b])
    train_op = tf.train.AdamOptimizer(0.01).minimize(loss)
    feed = {x: X.astype(np.float32), y: (Y > 0).astype(np.float32)}
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        loss_value, gw, gb, _ = session.run([loss, grads[0], grads[1], train_op], feed)
        assert loss_value.dtype == np.float32
        assert gw.dtype == np.float32 and gb.dtype == np.float32
        assert session.get_value(w).dtype == np.float32


def test_training_integer_variables_is_refused():
    w = tf.Variable([[1, 2]])
    loss = tf.reduce_sum(w * w)
    with pytest.raises(tf.GraphError, match=r"'variable'.*int64.*floating-point"):
        tf.train.GradientDescentOptimizer(0.1).minimize(loss)


def test_bad_hyperparameters_are_named():
    with pytest.raises(ValueError, match="learning_rate must be > 0"):
        tf.train.AdamOptimizer(0.0)


def _lazy_adam_reference(table, steps, lr=0.05, b1=0.9, b2=0.999, eps=1e-8):
    """contrib's LazyAdam in numpy: only the looked-up rows' moments and values change."""
    table, m, v = table.copy(), np.zeros_like(table), np.zeros_like(table)
    for t, (ids, grad_of) in enumerate(steps, start=1):
        rows = np.unique(ids)
        g = np.zeros_like(table)
        np.add.at(g, ids, grad_of(table[ids]))
        g = g[rows]
        m[rows] = b1 * m[rows] + (1 - b1) * g
        v[rows] = b2 * v[rows] + (1 - b2) * g * g
        lr_t = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
        table[rows] -= lr_t * m[rows] / (np.sqrt(v[rows]) + eps)
    return table


def test_lazy_adam_matches_a_numpy_reference_and_leaves_other_rows_alone(device):
    table0 = RNG.standard_normal((9, 2))
    batches = [np.array([1, 1, 4]), np.array([2, 7]), np.array([4, 0, 0, 8])]
    ids = tf.placeholder(tf.int32, (None,))
    table = tf.Variable(table0)
    loss = tf.reduce_sum(tf.square(tf.gather(table, ids)) * 0.5)
    train_op = tf.train.LazyAdamOptimizer(0.05).minimize(loss)
    with tf.Session(device=device) as session:
        session.run(tf.global_variables_initializer())
        for batch in batches:
            session.run(train_op, {ids: batch})
        got = session.get_value(table)
    want = _lazy_adam_reference(table0, [(b, lambda rows: rows) for b in batches])
    np.testing.assert_allclose(got, want, rtol=1e-12)
    untouched = [3, 5, 6]
    np.testing.assert_array_equal(got[untouched], table0[untouched])


def test_adam_moves_every_row_of_a_table_like_tf1():
    # Exact TF-1 Adam: rows not looked up this step still move on their decayed moments.
    table0 = RNG.standard_normal((5, 2))
    ids = tf.placeholder(tf.int32, (None,))
    table = tf.Variable(table0)
    loss = tf.reduce_sum(tf.gather(table, ids))
    train_op = tf.train.AdamOptimizer(0.1).minimize(loss)
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        session.run(train_op, {ids: [0]})
        first = session.get_value(table)
        session.run(train_op, {ids: [1]})
        second = session.get_value(table)
    assert np.all(first[0] != table0[0]) and np.all(first[1:] == table0[1:])
    assert np.all(second[0] != first[0])  # not looked up at step 2, moved by its momentum


def test_apply_gradients_takes_dense_gradients_for_a_table_and_numbers():
    table0 = RNG.standard_normal((4, 2))
    table = tf.Variable(table0)
    dense_grad = tf.placeholder(tf.float64, (4, 2))
    optimizer = tf.train.AdagradOptimizer(0.1)
    train_op = optimizer.apply_gradients([(dense_grad, table)])
    const_op = tf.train.GradientDescentOptimizer(1.0).apply_gradients([(np.ones((4, 2)), table)])
    g = RNG.standard_normal((4, 2))
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        session.run(train_op, {dense_grad: g})
        want = table0 - 0.1 * g / np.sqrt(0.1 + g * g)
        np.testing.assert_allclose(session.get_value(table), want)
        session.run(const_op)
        np.testing.assert_allclose(session.get_value(table), want - 1.0)


def test_compute_gradients_accepts_tf1_arguments_and_grad_loss():
    w = tf.Variable(np.array([1.0, -2.0]))
    unused = tf.Variable(np.array([3.0]))
    loss = tf.square(w)  # a vector loss weighted by grad_loss
    optimizer = tf.train.GradientDescentOptimizer(0.1)
    pairs = optimizer.compute_gradients(
        loss,
        var_list=[w, unused],
        gate_gradients=optimizer.GATE_GRAPH,
        aggregation_method=None,
        colocate_gradients_with_ops=True,
        grad_loss=tf.constant(np.array([1.0, 10.0])),
    )
    assert pairs[1] == (None, unused)
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        np.testing.assert_allclose(session.run(pairs[0][0]), [2.0, -40.0])
    with pytest.raises(ValueError, match="gate_gradients"):
        optimizer.compute_gradients(loss, gate_gradients=7)


def test_constructors_take_tf1_positional_order():
    # TF-1: MomentumOptimizer(lr, momentum, use_locking, name, use_nesterov);
    # FtrlOptimizer(lr, learning_rate_power, initial_accumulator_value, l1, l2, ...).
    momentum = tf.train.MomentumOptimizer(0.1, 0.9, False, "M", True)
    assert momentum.get_name() == "M" and momentum.use_nesterov
    ftrl = tf.train.FtrlOptimizer(0.1, -0.25, 0.3, 0.01, 0.02)
    assert ftrl.learning_rate_power == -0.25 and ftrl.initial_accumulator_value == 0.3
    assert (ftrl.l1, ftrl.l2) == (0.01, 0.02)
    rms = tf.train.RMSPropOptimizer(0.1, 0.8, 0.5, 1e-6, False, True, "R")
    assert rms.centered and rms.get_name() == "R"
    assert tf.train.AdamOptimizer(0.1, 0.8, 0.9, 1e-3, False, "A").get_name() == "A"
    assert tf.train.AdagradOptimizer(0.1, 0.2, False, "G").get_name() == "G"
    assert tf.train.GradientDescentOptimizer(0.1, False, "S").get_name() == "S"
    with pytest.raises(ValueError, match="learning_rate_power must be <= 0"):
        tf.train.FtrlOptimizer(0.1, learning_rate_power=0.5)
    with pytest.raises(ValueError, match="initial_accumulator_value must be > 0"):
        tf.train.AdagradOptimizer(0.1, initial_accumulator_value=0.0)


def test_signatures_match_tensorflows():
    import inspect

    tfv1 = pytest.importorskip("tensorflow").compat.v1
    names = [
        "GradientDescentOptimizer",
        "MomentumOptimizer",
        "AdagradOptimizer",
        "AdamOptimizer",
        "RMSPropOptimizer",
        "FtrlOptimizer",
    ]
    # Arguments TF 2's compat.v1 added after TF 1.15.
    tf2_only = {"use_own_namescope_for_non_slot_vars", "skip_gradients_aggregation"}
    for name in names:
        ours = inspect.signature(getattr(tf.train, name))
        theirs = inspect.signature(getattr(tfv1.train, name)).parameters
        theirs = {k: p for k, p in theirs.items() if k not in tf2_only}
        assert list(ours.parameters) == list(theirs), name
        for key, param in theirs.items():
            assert ours.parameters[key].default == param.default, (name, key)
    for method in ["minimize", "compute_gradients", "apply_gradients", "get_slot", "get_name"]:
        ours = inspect.signature(getattr(tf.train.Optimizer, method))
        theirs = inspect.signature(getattr(tfv1.train.Optimizer, method)).parameters
        assert list(ours.parameters) == [k for k in theirs if k not in tf2_only], method
    assert list(inspect.signature(tf.train.Saver.save).parameters) == list(
        inspect.signature(tfv1.train.Saver.save).parameters
    )
    schedules = ["exponential_decay", "natural_exp_decay", "inverse_time_decay"]
    schedules += ["polynomial_decay", "cosine_decay", "piecewise_constant"]
    for fn in [*schedules, "get_or_create_global_step", "get_global_step"]:
        ours = inspect.signature(getattr(tf.train, fn))
        theirs = inspect.signature(getattr(tfv1.train, fn))
        assert list(ours.parameters) == list(theirs.parameters), fn
