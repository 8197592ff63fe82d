"""tf.nn's embedding lookups: embedding_lookup over one table or a list of shards (with
max_norm), and embedding_lookup_sparse (combiner sum / mean / sqrtn) composed as gather +
segment reduction, so a table's gradient stays row-sparse (IndexedSlices)."""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_matrix

from engine import ops_array, ops_math
from engine.autodiff import NotDifferentiable, RegisterGradient
from engine.backend import scatter_add
from engine.graph import Node, Operation
from engine.ops_nn_common import static_shape
from engine.ops_nn_xent import div_no_nan
from engine.shapes import TensorShape
from engine.sparse import IndexedSlices
from engine.sparse_tensor import SparseTensor, SparseTensorValue

__all__ = [
    "as_sparse",
    "embedding_lookup",
    "embedding_lookup_sparse",
    "segment_combine",
    "sparse_row_ids",
]

COMBINERS = ("sum", "mean", "sqrtn")


def _shard_assignment(xp, ids, sizes, strategy):
    """(shard index, row within the shard) of each id, by TF-1's "mod" or "div" rule."""
    n = len(sizes)
    if strategy == "mod":
        return ids % n, ids // n
    total = sum(sizes)
    per, extras = divmod(total, n)  # the first `extras` shards hold one row more
    cut = extras * (per + 1)
    low = ids < cut
    beyond = ids - cut
    per_safe = max(per, 1)
    shard = xp.where(low, ids // (per + 1), extras + beyond // per_safe)
    row = xp.where(low, ids % (per + 1), beyond % per_safe)
    return shard, row


class ShardedEmbeddingLookup(Operation):
    """Rows for `ids` from a table split into shards; inputs (ids, *shards)."""

    op_type = "sharded_embedding_lookup"
    has_aux = True

    def forward(self, xp, ids, *shards):
        ids = xp.asarray(ids)
        flat = ids.reshape(-1).astype(np.int64)
        sizes = [s.shape[0] for s in shards]
        shard_of, row_of = _shard_assignment(xp, flat, sizes, self.partition_strategy)
        row_shape = shards[0].shape[1:]
        out = xp.empty((flat.size,) + row_shape, dtype=xp.result_type(*shards))
        picks = []
        for k, shard in enumerate(shards):
            where = xp.nonzero(shard_of == k)[0]
            out[where] = shard.take(row_of[where], axis=0)
            picks.append((where, row_of[where]))
        return out.reshape(ids.shape + row_shape), picks

    def infer_shape(self, ids, *shards):
        return ids.concatenate(shards[0][1:])

    def infer_dtype(self, ids_dtype, *shard_dtypes):
        return shard_dtypes[0]


class SparseRowIds(Operation):
    """A SparseTensor's row of each value: indices[:, 0] (the segment of each id)."""

    op_type = "sparse_row_ids"

    def forward(self, xp, indices):
        return xp.asarray(indices)[:, 0].astype(np.int64)

    def infer_shape(self, indices):
        return TensorShape(None) if indices.rank is None else TensorShape(indices[:1])

    def infer_dtype(self, dtype):
        return np.dtype(np.int64)


def _segment_sums(xp, data, segments, count):
    if xp is np and data.ndim >= 1 and data.shape[0]:
        # One sparse 0/1 product sums every segment's rows in C (np.add.at is ~10x slower).
        flat = data.reshape(data.shape[0], -1)
        ones = np.ones(segments.size, dtype=flat.dtype)
        merge = csr_matrix(
            (ones, (segments, np.arange(segments.size))), shape=(count, flat.shape[0])
        )
        return np.asarray(merge @ flat).reshape((count,) + data.shape[1:])
    out = xp.zeros((count,) + data.shape[1:], dtype=data.dtype)
    scatter_add(xp, out, segments, data)
    return out


class SegmentCombine(Operation):
    """Rows of `data` summed per segment id (sum), divided by the segment's size (mean) or its
    square root (sqrtn); max(segment_ids) + 1 rows, empty segments zero (TF's sparse_segment_*).
    """

    op_type = "segment_combine"
    has_aux = True

    def forward(self, xp, data, segment_ids, num_segments=None):
        segments = xp.asarray(segment_ids).reshape(-1).astype(np.int64)
        if num_segments is not None:
            count = int(num_segments)
        else:
            count = int(segments.max()) + 1 if segments.size else 0
        out = _segment_sums(xp, data, segments, count)
        if self.combiner == "sum":
            return out, None
        sizes = xp.bincount(segments, minlength=count).astype(data.dtype)
        if self.combiner == "sqrtn":
            sizes = xp.sqrt(sizes)
        scale = xp.where(sizes > 0, 1 / xp.where(sizes > 0, sizes, 1), 0).astype(data.dtype)
        out *= scale.reshape((-1,) + (1,) * (data.ndim - 1))
        return out, scale

    def infer_shape(self, data, segment_ids, *num_segments):
        return TensorShape(None) if data.rank is None else TensorShape([None, *data[1:]])

    def infer_dtype(self, data_dtype, ids_dtype, *num_segments_dtype):
        return data_dtype


def segment_combine(data, segment_ids, combiner="sum", name=None, num_segments=None):
    """Rows of `data` combined per segment id: "sum", "mean" or "sqrtn" (sum / sqrt(size));
    `num_segments` rows (a number or a scalar node), default max(segment_ids) + 1."""
    if combiner not in COMBINERS:
        raise ValueError(f"combiner must be one of {COMBINERS}, got {combiner!r}")
    inputs = [data, segment_ids] + ([] if num_segments is None else [num_segments])
    return SegmentCombine(inputs, name=name, combiner=combiner)


def sparse_row_ids(indices, name=None):
    """indices[:, 0] of a SparseTensor's indices, int64."""
    return SparseRowIds([indices], name=name)


def _clip_rows(rows, max_norm, row_rank: int):
    # TF-1 clips each looked-up embedding to L2 norm max_norm: rows * c / max(|rows|, c).
    axes = list(range(-row_rank, 0)) if row_rank > 1 else -1
    square_sum = ops_array.reduce_sum(ops_math.square(rows), axis=axes, keepdims=True)
    norm = float(max_norm)
    scale = ops_math.multiply(ops_math.rsqrt(ops_math.maximum(square_sum, norm * norm)), norm)
    return ops_math.multiply(rows, scale)


def embedding_lookup(
    params, ids, partition_strategy="mod", name=None, validate_indices=True, max_norm=None
):
    """Rows of `params` for `ids` (result shape ids.shape + row shape).

    `params` is one table or a list of shards of one table, split by `partition_strategy`:
    "mod" (id i in shard i % n) or "div" (contiguous blocks, the first shards one row larger
    when the size does not divide).  `max_norm` clips each row to that L2 norm.  The gradient
    of each table or shard is row-sparse (IndexedSlices).
    """
    if partition_strategy not in ("mod", "div"):
        raise ValueError(f"partition_strategy must be 'mod' or 'div', got {partition_strategy!r}")
    shards = list(params) if isinstance(params, (list, tuple)) else [params]
    if not shards:
        raise ValueError("embedding_lookup: params must not be empty")
    clip = max_norm is not None
    if len(shards) == 1:
        rows = ops_array.gather(shards[0], ids, name=None if clip else name or "embedding_lookup")
    else:
        rows = ShardedEmbeddingLookup(
            [ids, *shards], name=None if clip else name, partition_strategy=partition_strategy
        )
    if not clip:
        return rows
    row_rank = max(1, (static_shape(shards[0]).rank or 2) - 1)
    return ops_array.identity(_clip_rows(rows, max_norm, row_rank), name=name)


def embedding_lookup_sparse(
    params,
    sp_ids,
    sp_weights,
    partition_strategy="mod",
    name=None,
    combiner=None,
    max_norm=None,
    allow_fast_lookup=False,
):
    """One combined embedding per row of the SparseTensor `sp_ids` (ids of each row's values):
    "sum", "mean" (default) or "sqrtn" of the rows' embeddings, weighted by `sp_weights`'s
    values when given (mean / sqrtn then divide by the weights' sum / root sum of squares,
    0 where that is 0).  max(row with an id) + 1 result rows; rows without ids are zeros.
    """
    combiner = "mean" if combiner is None else combiner
    if combiner not in COMBINERS:
        raise ValueError(f"combiner must be one of {COMBINERS}, got {combiner!r}")
    sp_ids = as_sparse(sp_ids)
    segments = sparse_row_ids(sp_ids.indices)
    rows = embedding_lookup(
        params, sp_ids.values, partition_strategy=partition_strategy, max_norm=max_norm
    )
    if sp_weights is None:
        return segment_combine(rows, segments, combiner, name=name)
    sp_weights = as_sparse(sp_weights)
    shards = params if isinstance(params, (list, tuple)) else [params]
    row_rank = max(1, (static_shape(shards[0]).rank or 2) - 1)
    weights = ops_array.reshape(sp_weights.values, [-1] + [1] * row_rank)
    summed = segment_combine(ops_math.multiply(rows, weights), segments, "sum")
    if combiner == "sum":
        return ops_array.identity(summed, name=name) if name else summed
    if combiner == "mean":
        total = segment_combine(weights, segments, "sum")
    else:
        total = ops_math.sqrt(segment_combine(ops_math.square(weights), segments, "sum"))
    return div_no_nan(summed, total, name=name)


def as_sparse(value) -> SparseTensor:
    """`value` as a SparseTensor (a SparseTensorValue becomes constants); TypeError else."""
    if isinstance(value, SparseTensor):
        return value
    if isinstance(value, SparseTensorValue):
        return SparseTensor.from_value(value)
    if isinstance(value, Node):
        raise TypeError(f"expected a SparseTensor, got the dense node {value.name!r}")
    raise TypeError(f"expected a SparseTensor, got {type(value).__name__}")


NotDifferentiable("sparse_row_ids")


@RegisterGradient("sharded_embedding_lookup")
def _sharded_lookup_grad(op, g):
    shards = op.inputs[1:]
    row_shape = shards[0].shape[1:]
    flat = g.reshape((-1,) + row_shape)
    grads = [None]
    for k, (where, rows) in enumerate(op.aux):
        need = op.need[k + 1]
        grads.append(IndexedSlices(rows, flat[where], shards[k].shape) if need else None)
    return tuple(grads)


@RegisterGradient("segment_combine")
def _segment_combine_grad(op, g):
    segments = op.xp.asarray(op.inputs[1]).reshape(-1).astype(np.int64)
    rows = g.take(segments, axis=0)
    if op.aux is not None:
        rows = rows * op.aux.take(segments).reshape((-1,) + (1,) * (g.ndim - 1))
    return (rows,) + (None,) * (len(op.inputs) - 1)
