"""Forward values of the TF-1 ops the issue lists, spelled as TF-1 code calls them, == TF's.

Each case is `fn(tf, inputs) -> tensor or list of tensors` over constant numpy inputs; it
runs in a fresh graph on each implementation and the values (and dtypes) must agree.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.parity.harness import assert_same

_RNG = np.random.default_rng(7)
INPUTS = {
    "x": _RNG.standard_normal((4, 5)).astype(np.float32),
    "y": _RNG.standard_normal((4, 5)).astype(np.float32),
    "pos": _RNG.uniform(0.5, 2.0, (4, 5)).astype(np.float32),
    "w": _RNG.standard_normal((5, 3)).astype(np.float32),
    "wt": _RNG.standard_normal((3, 4)).astype(np.float32),
    "batch": _RNG.standard_normal((2, 4, 5)).astype(np.float32),
    "table": _RNG.standard_normal((6, 3)).astype(np.float32),
    "ids": np.array([[0, 5], [2, 2], [4, 1]], np.int32),
    "labels": np.array([0, 3, 1, 4], np.int32),
    "lengths": np.array([1, 3, 0, 2], np.int32),
}


def _sparse_ids(tf):
    # Three rows: ids {1, 3}, {}, {0, 0, 5} with weights, as a SparseTensor.
    indices = np.array([[0, 0], [0, 1], [2, 0], [2, 1], [2, 2]], np.int64)
    ids = tf.SparseTensor(indices, np.array([1, 3, 0, 0, 5], np.int64), [3, 3])
    weights = tf.SparseTensor(indices, np.array([1.0, 2.0, 0.5, 1.5, 3.0], np.float32), [3, 3])
    return ids, weights


def _embedding_lookup_sparse(combiner):
    def case(tf, c):
        ids, weights = _sparse_ids(tf)
        return [
            tf.nn.embedding_lookup_sparse(c["table"], ids, None, combiner=combiner),
            tf.nn.embedding_lookup_sparse(c["table"], ids, weights, combiner=combiner),
        ]

    return case


CASES = {
    "abs": lambda tf, c: tf.abs(c["x"]),
    "pow": lambda tf, c: tf.pow(c["pos"], 1.5),
    "operators": lambda tf, c: [
        tf.constant(c["pos"]) ** 2.0,
        2.0 ** tf.constant(c["x"]),
        tf.constant(c["pos"]) ** tf.constant(c["x"]),
        abs(tf.constant(c["x"])),
        -tf.constant(c["x"]),
        tf.constant(c["x"]) > 0.0,
        tf.constant(c["x"]) <= tf.constant(c["y"]),
        tf.constant(c["x"]) @ tf.constant(c["w"]),
        1.0 - tf.constant(c["x"]) / 2.0,
    ],
    "maximum_minimum": lambda tf, c: [tf.maximum(c["x"], c["y"]), tf.minimum(c["x"], 0.0)],
    "sin_cos": lambda tf, c: [tf.sin(c["x"]), tf.cos(c["x"])],
    "log1p_rsqrt_sign": lambda tf, c: [tf.log1p(c["pos"]), tf.rsqrt(c["pos"]), tf.sign(c["x"])],
    "softplus": lambda tf, c: tf.nn.softplus(c["x"]),
    "add_n": lambda tf, c: tf.add_n([c["x"], c["y"], c["pos"]]),
    "reduce_min_prod": lambda tf, c: [tf.reduce_min(c["x"], 1), tf.reduce_prod(c["pos"], 0)],
    "reduce_aliases": lambda tf, c: [
        tf.reduce_sum(c["x"], reduction_indices=[1], keep_dims=True),
        tf.reduce_mean(c["x"], axis=0, keepdims=True),
        tf.reduce_max(c["x"], reduction_indices=1),
    ],
    "cumsum": lambda tf, c: [
        tf.cumsum(c["x"], axis=1),
        tf.cumsum(c["x"], axis=0, exclusive=True, reverse=True),
    ],
    "einsum": lambda tf, c: [
        tf.einsum("ij,jk->ik", c["x"], c["w"]),
        tf.einsum("bi,bi->b", c["x"], c["y"]),
        tf.einsum("bij,jk->bik", c["batch"], c["w"]),
        tf.einsum("ij->ji", c["x"]),
        tf.einsum("bd,nd->bn", c["x"], c["y"]),
    ],
    "comparisons": lambda tf, c: [
        tf.equal(c["labels"], 3),
        tf.not_equal(c["labels"], 3),
        tf.greater(c["x"], c["y"]),
        tf.greater_equal(c["x"], 0.0),
        tf.less(c["x"], c["y"]),
        tf.less_equal(c["x"], 0.0),
    ],
    "indexing": lambda tf, c: [
        tf.constant(c["x"])[:, 0],
        tf.constant(c["x"])[1:3],
        tf.constant(c["x"])[..., -1],
        tf.constant(c["x"])[:, None, 2],
    ],
    "shape_cast": lambda tf, c: [tf.shape(c["batch"]), tf.cast(c["x"] * 3.0, tf.int32)],
    "argmax_argmin": lambda tf, c: [tf.argmax(c["x"], axis=1), tf.argmin(c["x"], 0)],
    "where": lambda tf, c: [tf.where(tf.greater(c["x"], 0.0), c["x"], c["y"])],
    "expand_squeeze": lambda tf, c: [
        tf.expand_dims(c["x"], 1),
        tf.squeeze(tf.expand_dims(c["x"], 0), [0]),
        tf.squeeze(tf.expand_dims(c["x"], -1)),
    ],
    "stack_unstack": lambda tf, c: [
        tf.stack([c["x"], c["y"]], axis=1),
        *tf.unstack(c["x"], axis=1),
    ],
    "tile_split": lambda tf, c: [
        tf.tile(c["x"], [2, 1]),
        *tf.split(c["x"], [2, 3], axis=1),
        *tf.split(c["batch"], 2, axis=0),
    ],
    "one_hot": lambda tf, c: [
        tf.one_hot(c["labels"], 5),
        tf.one_hot(c["labels"], 5, on_value=2.0, off_value=-1.0),
    ],
    "slice_gather": lambda tf, c: [
        tf.slice(c["x"], [1, 2], [2, -1]),
        tf.gather(c["x"], [3, 0, 0]),
        tf.gather(c["x"], [4, 1], axis=1),
        tf.gather_nd(c["x"], [[0, 1], [3, 4]]),
    ],
    "boolean_mask": lambda tf, c: tf.boolean_mask(c["x"], [True, False, True, True]),
    "pad": lambda tf, c: [
        tf.pad(c["x"], [[1, 0], [0, 2]]),
        tf.pad(c["x"], [[1, 1], [2, 2]], constant_values=-1.0),
    ],
    "sequence_mask": lambda tf, c: [
        tf.sequence_mask(c["lengths"], 4),
        tf.sequence_mask(c["lengths"], 4, dtype=tf.float32),
    ],
    "top_k": lambda tf, c: list(tf.nn.top_k(c["x"], k=3)),
    "matmul_transpose_flags": lambda tf, c: [
        tf.matmul(c["x"], c["x"], transpose_b=True),
        tf.matmul(c["x"], c["x"], transpose_a=True),
        tf.matmul(c["wt"], c["w"], transpose_a=True, transpose_b=True),
    ],
    "clip_by_value_tensor_bounds": lambda tf, c: [
        tf.clip_by_value(c["x"], tf.constant(-0.5), tf.reduce_max(c["y"]) * 0.2),
        tf.clip_by_value(c["x"], -0.1, 0.1),
    ],
    "clip_by_norm_and_global_norm": lambda tf, c: [
        tf.clip_by_norm(c["x"], 1.0),
        *tf.clip_by_global_norm([c["x"], c["y"]], 2.0)[0],
        tf.clip_by_global_norm([c["x"], c["y"]], 2.0)[1],
    ],
    "nn_sparse_softmax_xent": lambda tf, c: tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=c["labels"], logits=c["x"]
    ),
    "nn_softmax_xent_v2": lambda tf, c: tf.nn.softmax_cross_entropy_with_logits_v2(
        labels=tf.nn.softmax(c["y"]), logits=c["x"]
    ),
    "embedding_lookup_sparse_sum": _embedding_lookup_sparse("sum"),
    "embedding_lookup_sparse_mean": _embedding_lookup_sparse("mean"),
    "embedding_lookup_sparse_sqrtn": _embedding_lookup_sparse("sqrtn"),
    "bias_add_leaky_relu_elu": lambda tf, c: [
        tf.nn.bias_add(c["x"], c["y"][0]),
        tf.nn.leaky_relu(c["x"]),
        tf.nn.leaky_relu(c["x"], alpha=0.1),
        tf.nn.elu(c["x"]),
    ],
    "l2_normalize": lambda tf, c: [tf.nn.l2_normalize(c["x"], 1), tf.nn.l2_normalize(c["x"])],
    "moments_batch_normalization": lambda tf, c: [
        *tf.nn.moments(c["x"], axes=[0]),
        tf.nn.batch_normalization(
            c["x"], *tf.nn.moments(c["x"], [0]), c["y"][0], c["pos"][0], 1e-3
        ),
    ],
    "in_top_k": lambda tf, c: tf.nn.in_top_k(c["x"], c["labels"], 2),
    "creation": lambda tf, c: [
        tf.zeros([2, 3]),
        tf.ones([3], dtype=tf.int32),
        tf.zeros_like(c["x"]),
        tf.ones_like(c["labels"]),
        tf.fill([2, 2], 7.0),
        tf.range(5),
        tf.range(1, 10, 3),
        tf.range(0.0, 1.0, 0.25),
    ],
}


def _run(tf, case):
    with tf.Graph().as_default() as graph:
        out = case(tf, INPUTS)
    with tf.Session(graph=graph) as session:
        return session.run(out)


@pytest.mark.parametrize("case", list(CASES))
def test_forward_values_match_tensorflow(eng, tfv1, case):
    mine, theirs = _run(eng, CASES[case]), _run(tfv1, CASES[case])
    mine = mine if isinstance(mine, list) else [mine]
    theirs = theirs if isinstance(theirs, list) else [theirs]
    assert len(mine) == len(theirs), f"{case}: {len(mine)} outputs, TF {len(theirs)}"
    for i, (a, b) in enumerate(zip(mine, theirs, strict=True)):
        a, b = np.asarray(a), np.asarray(b)
        assert a.dtype == b.dtype, f"{case} output {i}: dtype {a.dtype}, TF {b.dtype}"
        assert_same(a, b, f"{case} output {i}", rtol=1e-5)
