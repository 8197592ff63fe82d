"""Finite-difference gradient checks for the tf.nn family (ops and compositions)."""

from __future__ import annotations

import numpy as np
import pytest

import engine as tf
from tests.engine.gradcheck import check_gradient

RNG = np.random.default_rng(2024)


def _r(*shape, low=-1.0, high=1.0):
    return RNG.uniform(low, high, size=shape)


def _away_from(points, *shape):
    # Keep kinks (0 for relu-like ops, 6 for relu6) outside the finite-difference step.
    x = _r(*shape, low=-8, high=8)
    for p in points:
        x = np.where(np.abs(x - p) < 0.2, p + 0.5, x)
    return x


def _sparse(ids_per_row):
    indices = [[row, k] for row, ids in enumerate(ids_per_row) for k in range(len(ids))]
    values = [i for ids in ids_per_row for i in ids]
    return np.array(indices, np.int64), np.array(values, np.int64)


SP_INDICES, SP_IDS = _sparse([[0, 3], [2], [], [1, 1, 4]])
DENSE_SHAPE = [4, 3]


def _lookup_sparse(combiner, weighted):
    def build(table, indices, ids, *weights):
        sp_ids = tf.SparseTensor(indices, ids, DENSE_SHAPE)
        sp_weights = tf.SparseTensor(indices, weights[0], DENSE_SHAPE) if weighted else None
        return tf.nn.embedding_lookup_sparse(table, sp_ids, sp_weights, combiner=combiner)

    inputs = [_r(5, 2), SP_INDICES, SP_IDS]
    if weighted:
        inputs.append(_r(len(SP_IDS), low=0.5, high=2.0))
    return build, inputs, [0, 3] if weighted else [0]


def _lookup_sparse_cases():
    cases = []
    for combiner in ("sum", "mean", "sqrtn"):
        for weighted in (False, True):
            build, inputs, diff = _lookup_sparse(combiner, weighted)
            kind = "weighted" if weighted else "plain"
            op = "segment_combine" if not weighted else "div_no_nan"
            if weighted and combiner == "sum":
                op = "segment_combine"
            cases.append((f"embedding_lookup_sparse-{combiner}-{kind}", op, build, inputs, diff))
    return cases


LABELS_INT = np.array([2, 0, 3])

# (case id, op type, build(*input nodes) -> node, input arrays, indices of differentiable inputs)
CASES = [
    ("softmax", "softmax", tf.nn.softmax, [_r(3, 4, low=-3, high=3)], [0]),
    ("softmax-dim0", "softmax", lambda x: tf.nn.softmax(x, dim=0), [_r(3, 4)], [0]),
    ("log_softmax", "log_softmax", tf.nn.log_softmax, [_r(3, 4, low=-3, high=3)], [0]),
    ("relu6", "relu6", tf.nn.relu6, [_away_from([0, 6], 4, 5)], [0]),
    ("elu", "elu", tf.nn.elu, [_away_from([0], 3, 4)], [0]),
    ("selu", "selu", tf.nn.selu, [_away_from([0], 3, 4)], [0]),
    ("leaky_relu", "leaky_relu", lambda x: tf.nn.leaky_relu(x, 0.1), [_away_from([0], 3, 4)], [0]),
    ("softsign", "softsign", tf.nn.softsign, [_r(3, 4, low=-3, high=3)], [0]),
    ("swish", "multiply", tf.nn.swish, [_r(3, 4, low=-3, high=3)], [0]),
    ("crelu", "concat", tf.nn.crelu, [_away_from([0], 3, 4)], [0]),
    (
        "log_poisson_loss-full",
        "add",
        lambda t, x: tf.nn.log_poisson_loss(t, x, compute_full_loss=True),
        [np.array([[0.3, 0.5, 2.0], [3.0, 0.8, 4.5]]), _r(2, 3)],
        [0, 1],
    ),
    (
        "weighted_moments",
        "squeeze",
        lambda x, w: tf.nn.weighted_moments(x, [0], w)[1],
        [_r(4, 3), _r(4, 1, low=0.5, high=2)],
        [0, 1],
    ),
    (
        "normalize_moments",
        "subtract",
        lambda x, shift: tf.nn.normalize_moments(*tf.nn.sufficient_statistics(x, [0], shift))[1],
        [_r(4, 3), _r(3)],
        [0, 1],
    ),
    ("bias_add", "bias_add", tf.nn.bias_add, [_r(3, 4), _r(4)], [0, 1]),
    ("bias_add-3d", "bias_add", tf.nn.bias_add, [_r(2, 3, 4), _r(4)], [0, 1]),
    (
        "bias_add-nchw",
        "bias_add",
        lambda v, b: tf.nn.bias_add(v, b, data_format="NCHW"),
        [_r(2, 3, 4, 2), _r(3)],
        [0, 1],
    ),
    ("xw_plus_b", "bias_add", tf.nn.xw_plus_b, [_r(3, 4), _r(4, 2), _r(2)], [0, 1, 2]),
    (
        "sigmoid_xent",
        "sigmoid_cross_entropy_with_logits",
        lambda x, z: tf.nn.sigmoid_cross_entropy_with_logits(labels=z, logits=x),
        [_r(4, 3, low=-5, high=5), _r(4, 3, low=0, high=1)],
        [0, 1],
    ),
    (
        "weighted_xent",
        "weighted_cross_entropy_with_logits",
        lambda x, z, q: tf.nn.weighted_cross_entropy_with_logits(labels=z, logits=x, pos_weight=q),
        [_r(4, 3, low=-5, high=5), _r(4, 3, low=0, high=1), _r(3, low=0.5, high=3)],
        [0, 1, 2],
    ),
    (
        "softmax_xent_v2",
        "softmax_cross_entropy_with_logits",
        lambda x, z: tf.nn.softmax_cross_entropy_with_logits_v2(labels=z, logits=x),
        [_r(4, 5, low=-3, high=3), _r(4, 5, low=0, high=1)],
        [0, 1],
    ),
    (
        "softmax_xent_v1-logits",
        "softmax_cross_entropy_with_logits",
        lambda x, z: tf.nn.softmax_cross_entropy_with_logits(labels=z, logits=x, dim=0),
        [_r(4, 5, low=-3, high=3), _r(4, 5, low=0, high=1)],
        [0],
    ),
    (
        "sparse_softmax_xent",
        "sparse_softmax_cross_entropy_with_logits",
        lambda x, y: tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=x),
        [_r(3, 4, low=-3, high=3), LABELS_INT],
        [0],
    ),
    (
        "sparse_softmax_xent-3d",
        "sparse_softmax_cross_entropy_with_logits",
        lambda x, y: tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=x),
        [_r(2, 3, 4), np.array([[0, 3, 1], [2, 2, 0]])],
        [0],
    ),
    ("dropout-keep_prob", "dropout", lambda x: tf.nn.dropout(x, 0.6), [_r(4, 5)], [0]),
    (
        "dropout-rate-node",
        "dropout",
        lambda x, rate: tf.nn.dropout(x, rate=rate),
        [_r(4, 5), np.array(0.3)],
        [0],
    ),
    (
        "dropout-noise_shape",
        "dropout",
        lambda x: tf.nn.dropout(x, 0.5, noise_shape=[4, 1]),
        [_r(4, 5)],
        [0],
    ),
    ("l2_loss", "l2_loss", tf.nn.l2_loss, [_r(2, 3)], [0]),
    ("l2_normalize", "multiply", lambda x: tf.nn.l2_normalize(x, axis=1), [_r(3, 4)], [0]),
    ("l2_normalize-all", "multiply", tf.nn.l2_normalize, [_r(3, 4)], [0]),
    ("moments-mean", "reduce_mean", lambda x: tf.nn.moments(x, [0])[0], [_r(4, 3)], [0]),
    ("moments-variance", "reduce_mean", lambda x: tf.nn.moments(x, [0, 1])[1], [_r(4, 3)], [0]),
    (
        "batch_normalization",
        "add",
        lambda x, m, v, o, s: tf.nn.batch_normalization(x, m, v, o, s, 1e-3),
        [_r(4, 3), _r(3), _r(3, low=0.5, high=2), _r(3), _r(3)],
        [0, 1, 2, 3, 4],
    ),
    (
        "batch_norm_with_global_normalization",
        "add",
        lambda x, m, v, o, s: tf.nn.batch_norm_with_global_normalization(x, m, v, o, s, 1e-3, True),
        [_r(4, 3), _r(3), _r(3, low=0.5, high=2), _r(3), _r(3)],
        [0, 1, 2, 3, 4],
    ),
    (
        "compute_average_loss",
        "div_no_nan",
        lambda x, w: tf.nn.compute_average_loss(x, sample_weight=w),
        [_r(4), _r(4)],
        [0, 1],
    ),
    (
        "embedding_lookup",
        "gather",
        lambda table, ids: tf.nn.embedding_lookup(table, ids),
        [_r(5, 3), np.array([[0, 4], [4, 2]])],
        [0],
    ),
    (
        "embedding_lookup-max_norm",
        "identity",
        lambda table, ids: tf.nn.embedding_lookup(table, ids, max_norm=0.7),
        [_r(5, 3), np.array([0, 4, 4, 2])],
        [0],
    ),
    *[
        (
            f"embedding_lookup-shards-{strategy}",
            "sharded_embedding_lookup",
            lambda ids, a, b, c, strategy=strategy: tf.nn.embedding_lookup(
                [a, b, c], ids, partition_strategy=strategy
            ),
            [np.array([[0, 6], [3, 3], [7, 1]]), _r(3, 2), _r(3, 2), _r(2, 2)],
            [1, 2, 3],
        )
        for strategy in ("mod", "div")
    ],
    *_lookup_sparse_cases(),
    (
        "safe_embedding_lookup_sparse-sqrtn-default",
        "add",
        lambda table, indices, ids, weights: tf.nn.safe_embedding_lookup_sparse(
            table,
            tf.SparseTensor(indices, ids, [5, 3]),
            tf.SparseTensor(indices, weights, [5, 3]),
            combiner="sqrtn",
            default_id=2,
        ),
        [
            _r(5, 2),
            np.array([[0, 0], [0, 1], [1, 0], [3, 0], [3, 1]]),
            np.array([1, -1, 4, 0, 3]),
            np.array([0.5, 2.0, -1.0, 1.5, 0.7]),
        ],
        [0, 3],
    ),
    *[
        (
            f"segment_combine-{combiner}",
            "segment_combine",
            lambda data, seg, combiner=combiner: tf.nn.segment_combine(data, seg, combiner)
            if hasattr(tf.nn, "segment_combine")
            else __import__("engine.ops_nn_embedding").ops_nn_embedding.segment_combine(
                data, seg, combiner
            ),
            [_r(5, 2), np.array([0, 0, 2, 3, 3])],
            [0],
        )
        for combiner in ("sum", "mean", "sqrtn")
    ],
    (
        "div_no_nan",
        "div_no_nan",
        lambda x, y: __import__("engine.ops_nn_xent").ops_nn_xent.div_no_nan(x, y),
        [_r(3, 2), np.array([[0.5], [2.0], [-1.5]])],
        [0, 1],
    ),
    (
        "div_no_nan-zero",  # 0 where y == 0, value and gradient (y itself not perturbed)
        "div_no_nan",
        lambda x, y: __import__("engine.ops_nn_xent").ops_nn_xent.div_no_nan(x, y),
        [_r(3, 2), np.array([[0.5], [0.0], [-1.5]])],
        [0],
    ),
    (
        "broadcast_sum",
        "broadcast_sum",
        lambda losses, w: __import__("engine.ops_nn_xent").ops_nn_xent.broadcast_sum(losses, w),
        [_r(3, 2), _r(3, 1)],
        [1],
    ),
    (
        "sparse_tensor_to_dense",
        "sparse_tensor_to_dense",
        lambda indices, values, default: tf.sparse_tensor_to_dense(
            tf.SparseTensor(indices, values, [3, 4]), default_value=default
        ),
        [np.array([[0, 1], [2, 3], [1, 0]]), _r(3), np.array(0.25)],
        [1, 2],
    ),
]

# Op types of this family that pass no gradient (tested in test_nn_ops.py / test_losses.py).
NOT_DIFFERENTIABLE = {"in_top_k", "zero_fraction", "num_present", "num_elements", "sparse_row_ids"}


# sqrtn over a row without ids takes sqrt(0)'s slope on a path that reaches no input (as TF).
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_gradient_matches_finite_differences(device, case):
    check_gradient(device, case)


def test_embedding_tables_get_row_sparse_gradients():
    table = tf.Variable(np.ones((6, 2)))
    shards = [tf.Variable(np.ones((2, 2))), tf.Variable(np.ones((2, 2)))]
    ids = tf.constant(np.array([1, 3, 3]))
    sp = tf.SparseTensor([[0, 0], [0, 1], [1, 0]], np.array([5, 0, 5]), [2, 2])
    losses = [
        tf.reduce_sum(tf.nn.embedding_lookup(shards, ids)),
        tf.reduce_sum(tf.nn.embedding_lookup_sparse(table, sp, None, combiner="sqrtn")),
    ]
    grads = tf.gradients(losses[0], shards) + tf.gradients(losses[1], table)
    with tf.Session() as session:
        session.run(tf.global_variables_initializer())
        values = session.run(grads)
    assert all(isinstance(g, tf.IndexedSlices) for g in values)
    # "mod": id 1 is row 0 and id 3 row 1 of shard 1; shard 0 is not touched.
    np.testing.assert_array_equal(values[1].to_dense(), [[1, 1], [2, 2]])
    assert values[0].indices.size == 0
    np.testing.assert_allclose(values[2].to_dense()[5], [2**-0.5 + 1, 2**-0.5 + 1])
