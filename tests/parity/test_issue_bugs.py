"""One test per bug listed in issue #18 (bug 2 is in test_saver.py), each against TensorFlow.

Behaviour checks run on both implementations through the `tf` fixture (the TF run checks the
test itself); numeric programs compare the engine's numbers with TF's.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.parity.harness import STEPS, assert_same
from tests.parity.programs import weights

_RNG = np.random.default_rng(918)
X = _RNG.standard_normal((STEPS, 16, 4)).astype(np.float32)
Y_A = _RNG.standard_normal((STEPS, 16, 1)).astype(np.float32)
Y_B = _RNG.standard_normal((STEPS, 16, 1)).astype(np.float32)


def _two_minimize_calls(tf, optimizer_name: str):
    """One optimizer, two minimize() calls sharing `w`; the train ops alternate step by step."""
    graph = tf.Graph()
    with graph.as_default():
        x = tf.placeholder(tf.float32, [None, 4], name="x")
        y = tf.placeholder(tf.float32, [None, 1], name="y")
        init = weights(21, w=(4, 1), v=(4, 1))
        w, v = tf.Variable(init["w"], name="w"), tf.Variable(init["v"], name="v")
        loss_a = tf.reduce_mean(tf.square(tf.matmul(x, w) - y))
        loss_b = tf.reduce_mean(tf.square(tf.matmul(x, w) + tf.matmul(x, v) - y))
        optimizer = {
            "Momentum": lambda: tf.train.MomentumOptimizer(0.05, 0.9),
            "Adagrad": lambda: tf.train.AdagradOptimizer(0.2),
            "Adam": lambda: tf.train.AdamOptimizer(0.05),
        }[optimizer_name]()
        train_a, train_b = optimizer.minimize(loss_a), optimizer.minimize(loss_b)
        init_op = tf.global_variables_initializer()
    losses = []
    with tf.Session(graph=graph) as session:
        session.run(init_op)
        for step in range(STEPS):
            loss, train_op, labels = (
                (loss_a, train_a, Y_A) if step % 2 == 0 else (loss_b, train_b, Y_B)
            )
            losses.append(session.run([loss, train_op], {x: X[step], y: labels[step]})[0])
        return losses, session.run(w), session.run(v)


@pytest.mark.parametrize("optimizer", ["Momentum", "Adagrad", "Adam"])
def test_bug1_one_optimizer_two_minimize_calls_sharing_a_variable(eng, tfv1, optimizer):
    """The shared variable has one set of slots (and Adam one step count) across both ops."""
    mine, theirs = _two_minimize_calls(eng, optimizer), _two_minimize_calls(tfv1, optimizer)
    for what, a, b in zip(["losses", "shared w", "v"], mine, theirs, strict=True):
        assert_same(a, b, f"{optimizer}: {what}")


def test_bug3_variable_from_a_tensor_initial_value(tf):
    """tf.Variable(tf.zeros([3])) and tf.Variable(tf.random_normal([2, 3], seed=1)): static
    shape and float32 dtype at build time; values after the initialiser."""
    with tf.Graph().as_default() as graph:
        zeros = tf.Variable(tf.zeros([3]))
        normal = tf.Variable(tf.random_normal([2, 3], seed=1))
        assert zeros.get_shape().as_list() == [3]
        assert normal.get_shape().as_list() == [2, 3]
        assert zeros.dtype == tf.float32 and normal.dtype == tf.float32
        init = tf.global_variables_initializer()
    with tf.Session(graph=graph) as session:
        session.run(init)
        zeros_value, first = session.run([zeros, normal])
        second = session.run(normal)
    assert zeros_value.dtype == np.float32 and first.dtype == np.float32
    np.testing.assert_array_equal(zeros_value, np.zeros(3, np.float32))
    assert first.shape == (2, 3) and np.all(np.isfinite(first)) and np.std(first) > 0
    np.testing.assert_array_equal(first, second)  # drawn once, by the initialiser


def test_bug4_fetched_constant_is_not_aliased(tf):
    """`out = sess.run(c); out += 100` changes neither later runs nor the constant's source."""
    source = np.array([1.0, 2.0, 3.0], np.float32)
    with tf.Graph().as_default() as graph:
        c = tf.constant([1.0, 2.0, 3.0])
        from_array = tf.constant(source)
    with tf.Session(graph=graph) as session:
        for node in (c, from_array):
            out = session.run(node)
            out += 100
            np.testing.assert_array_equal(session.run(node), [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(source, [1.0, 2.0, 3.0])


def test_bug4_fetched_placeholder_does_not_alias_the_fed_array(eng):
    """Engine only, stricter than TF: TF 2.21 hands back the caller's own buffer when a fed
    placeholder (or identity of it) is fetched, so `out += 100` changes the caller's array
    there (checked by hand); the issue asks the engine not to."""
    tf = eng
    with tf.Graph().as_default() as graph:
        p = tf.placeholder(tf.float32, [3])
        same = tf.identity(p)
    fed = np.array([1.0, 2.0, 3.0], np.float32)
    with tf.Session(graph=graph) as session:
        for node in (p, same):
            out = session.run(node, {p: fed})
            out += 100
            np.testing.assert_array_equal(fed, [1.0, 2.0, 3.0])
            np.testing.assert_array_equal(session.run(node, {p: fed}), [1.0, 2.0, 3.0])


def _clipped_embedding_training(tf, transform: str):
    graph = tf.Graph()
    with graph.as_default():
        ids = tf.placeholder(tf.int32, [None], name="ids")
        init = weights(31, table=(12, 4), w=(4, 1))
        table, w = tf.Variable(init["table"], name="table"), tf.Variable(init["w"], name="w")
        loss = tf.reduce_mean(tf.square(tf.matmul(tf.nn.embedding_lookup(table, ids), w) - 1.0))
        optimizer = tf.train.MomentumOptimizer(0.1, 0.9)
        (g_table, v_table), (g_w, v_w) = optimizer.compute_gradients(loss, [table, w])
        if transform == "clip_by_value":
            g_table = tf.clip_by_value(g_table, -0.01, 0.01)
        else:  # TF has no IndexedSlices * float: tf.multiply makes the table's gradient dense
            g_table = tf.multiply(g_table, 0.5)
        train_op = optimizer.apply_gradients([(g_table, v_table), (g_w * 0.5, v_w)])
        init_op = tf.global_variables_initializer()
    with tf.Session(graph=graph) as session:
        session.run(init_op)
        for step in range(STEPS):
            session.run(train_op, {ids: [step % 5, (step * 3) % 5, 1]})
        return session.run([table, w])


@pytest.mark.parametrize("transform", ["clip_by_value", "multiply_by_half"])
def test_bug5_clip_or_scale_embedding_gradient_between_compute_and_apply(eng, tfv1, transform):
    """clip_by_value(g, ...) (rows stay sparse) and g * 0.5 (dense) on a table's gradient ==
    TF, rows 5..11 (never looked up) included."""
    mine, theirs = (
        _clipped_embedding_training(eng, transform),
        _clipped_embedding_training(tfv1, transform),
    )
    for what, a, b in zip(["table", "w"], mine, theirs, strict=True):
        assert_same(a, b, f"{transform}: {what}")


def _gradient_at_fed_intermediate(tf, emb_value):
    with tf.Graph().as_default() as graph:
        ids = tf.placeholder(tf.int32, [None], name="ids")
        init = weights(41, table=(10, 3), w=(3, 2))
        emb = tf.nn.embedding_lookup(tf.Variable(init["table"]), ids)
        loss = tf.reduce_sum(tf.square(tf.matmul(emb, tf.Variable(init["w"]))))
        grad = tf.gradients(loss, emb)
        init_op = tf.global_variables_initializer()
    with tf.Session(graph=graph) as session:
        session.run(init_op)
        return session.run(grad, {emb: emb_value}), init["w"]


def test_bug6_gradient_with_respect_to_a_fed_intermediate(eng, tfv1):
    """sess.run(tf.gradients(loss, emb), {emb: x}) for emb = embedding_lookup(...) (ids not
    fed): the gradient at x == TF's == 2 x W W^T."""
    x = _RNG.standard_normal((5, 3)).astype(np.float32)
    (mine,), w = _gradient_at_fed_intermediate(eng, x)
    (theirs,), _ = _gradient_at_fed_intermediate(tfv1, x)
    assert_same(theirs, 2 * x @ w @ w.T, "TF against the closed form", rtol=1e-5)
    assert_same(mine, theirs, "gradient at the fed value")


def test_bug7_softmax_xent_rank1_labels_with_rank2_logits(eng, tfv1):
    """softmax_cross_entropy_with_logits(labels=[N], logits=[N, C]) with N == C is refused when
    the graph is built, as the issue asks (TF 1.x's shape check).

    A deliberate difference from TF 2.21's compat.v1, recorded here: it broadcasts a [C] label
    vector over the rows (every row scored against the same labels), the silent garbage the
    issue reports.  A length other than C is a ValueError on both.
    """
    for tf in (eng, tfv1):
        with tf.Graph().as_default(), pytest.raises(ValueError):
            tf.nn.softmax_cross_entropy_with_logits(
                labels=tf.placeholder(tf.float32, [3]), logits=tf.placeholder(tf.float32, [4, 4])
            )
    with eng.Graph().as_default(), pytest.raises(ValueError, match="same shape"):
        eng.nn.softmax_cross_entropy_with_logits(
            labels=eng.placeholder(eng.float32, [4]), logits=eng.placeholder(eng.float32, [4, 4])
        )
    with eng.Graph().as_default(), pytest.raises(ValueError, match="same shape"):
        eng.nn.softmax_cross_entropy_with_logits_v2(
            labels=eng.placeholder(eng.float32, [4]), logits=eng.placeholder(eng.float32, [4, 4])
        )
    with tfv1.Graph().as_default():  # TF 2.21 builds it: the difference above
        tfv1.nn.softmax_cross_entropy_with_logits(
            labels=tfv1.placeholder(tfv1.float32, [4]),
            logits=tfv1.placeholder(tfv1.float32, [4, 4]),
        )


def test_bug8_dropout_keep_prob_positional_rate_keyword_and_placeholder(tf):
    """dropout(x, 0.9) keeps ~90 % (keep_prob is the second positional), rate=0.1 the same, a
    placeholder keep_prob is read at run time; kept values are scaled by 1 / keep_prob."""
    n = 100_000
    with tf.Graph().as_default() as graph:
        ones = tf.ones([n])
        keep_prob = tf.placeholder(tf.float32)
        positional = tf.nn.dropout(ones, 0.9)
        by_rate = tf.nn.dropout(ones, rate=0.1)
        fed = tf.nn.dropout(ones, keep_prob)
    with tf.Session(graph=graph) as session:
        runs = {
            "dropout(x, 0.9)": (session.run(positional), 0.9),
            "dropout(x, rate=0.1)": (session.run(by_rate), 0.9),
            "dropout(x, keep_prob) fed 0.5": (session.run(fed, {keep_prob: 0.5}), 0.5),
            "dropout(x, keep_prob) fed 1.0": (session.run(fed, {keep_prob: 1.0}), 1.0),
        }
    for what, (value, keep) in runs.items():
        kept = value != 0
        # 10 standard deviations of a binomial fraction at n = 100,000: never flaky.
        assert abs(kept.mean() - keep) < 0.01, f"{what}: kept {kept.mean():.4f}"
        np.testing.assert_allclose(value[kept], 1 / keep, rtol=1e-6, err_msg=what)


EMBEDDING_IDS = [[0, 2, 2], [1, 2, 4], [0, 0, 3], [4, 2, 1], [3, 3, 0]]  # rows 5..9: never


def _adam_on_a_table(tf, optimizer_class: str, steps: int = 5):
    with tf.Graph().as_default() as graph:
        ids = tf.placeholder(tf.int32, [None])
        init = weights(51, table=(10, 4))
        table = tf.Variable(init["table"])
        loss = tf.reduce_sum(tf.square(tf.nn.embedding_lookup(table, ids) - 0.5))
        optimizer = getattr(tf.train, optimizer_class)(0.1)
        train_op = optimizer.minimize(loss)
        init_op = tf.global_variables_initializer()
    with tf.Session(graph=graph) as session:
        session.run(init_op)
        for step in range(steps):
            session.run(train_op, {ids: EMBEDDING_IDS[step]})
        return session.run(table), init["table"]


def _lazy_adam_reference(table, steps, lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8):
    # tf.contrib.opt.LazyAdamOptimizer: only the rows of the batch (duplicates summed) change.
    p, m, v = table.astype(np.float64), np.zeros(table.shape), np.zeros(table.shape)
    for t in range(1, steps + 1):
        ids = np.array(EMBEDDING_IDS[t - 1])
        grad = np.zeros_like(p)
        np.add.at(grad, ids, 2 * (p[ids] - 0.5))
        rows = np.unique(ids)
        m[rows] = beta1 * m[rows] + (1 - beta1) * grad[rows]
        v[rows] = beta2 * v[rows] + (1 - beta2) * grad[rows] ** 2
        lr_t = lr * np.sqrt(1 - beta2**t) / (1 - beta1**t)
        p[rows] -= lr_t * m[rows] / (np.sqrt(v[rows]) + eps)
    return p


def test_bug9_adam_on_an_embedding_table_moves_rows_not_in_the_batch(eng, tfv1):
    """TF-1's AdamOptimizer updates every row each step, so a row keeps moving on its
    momentum in steps whose batch lacks it; the engine == TF on every row."""
    mine, initial = _adam_on_a_table(eng, "AdamOptimizer")
    theirs, _ = _adam_on_a_table(tfv1, "AdamOptimizer")
    assert_same(mine, theirs, "table after 5 Adam steps")
    # The case discriminates: lazy Adam (touched rows only) ends elsewhere.
    assert not np.allclose(theirs, _lazy_adam_reference(initial, 5), rtol=1e-3)


def test_bug9_lazy_adam_leaves_rows_not_in_the_batch_still(eng):
    """tf.train.LazyAdamOptimizer (TF-1's tf.contrib.opt one; not in TF 2.21): rows never in a
    batch keep their values, the others follow lazy Adam (numpy reference)."""
    mine, initial = _adam_on_a_table(eng, "LazyAdamOptimizer")
    np.testing.assert_array_equal(mine[5:], initial[5:])
    assert_same(mine, _lazy_adam_reference(initial, 5), "lazy Adam rows")
