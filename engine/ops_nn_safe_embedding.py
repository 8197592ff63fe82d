"""tf.nn.safe_embedding_lookup_sparse: embedding_lookup_sparse that skips invalid ids (< 0)
and non-positive weights, and gives every row of the SparseTensor an output row (zeros, or
the `default_id` embedding, where a row has no valid id)."""

from __future__ import annotations

import numpy as np

from engine import ops_array, ops_compare, ops_math
from engine.graph import constant
from engine.ops_nn_common import static_dtype, static_shape
from engine.ops_nn_embedding import (
    COMBINERS,
    as_sparse,
    embedding_lookup,
    segment_combine,
    sparse_row_ids,
)
from engine.ops_nn_xent import div_no_nan

__all__ = ["safe_embedding_lookup_sparse"]


def safe_embedding_lookup_sparse(
    embedding_weights,
    sparse_ids,
    sparse_weights=None,
    combiner="mean",
    default_id=None,
    name=None,
    partition_strategy="div",
    max_norm=None,
    allow_fast_lookup=False,
):
    """One combined embedding per row of the 2-D SparseTensor `sparse_ids` (dense_shape[0]
    rows): ids < 0 and, unless combiner is "sum", entries whose weight is <= 0 are left out
    (TF-1's pruning, done here by zero weights so no value is dropped from the graph); a row
    left with no id is zeros, or the embedding of `default_id` when given."""
    if combiner not in COMBINERS:
        raise ValueError(f"combiner must be one of {COMBINERS}, got {combiner!r}")
    sp_ids = as_sparse(sparse_ids)
    shape_of_shape = static_shape(sp_ids.dense_shape)
    if shape_of_shape.rank == 1 and shape_of_shape[0] not in (None, 2):
        raise ValueError("safe_embedding_lookup_sparse: sparse_ids must be 2-D here")
    shards = (
        embedding_weights if isinstance(embedding_weights, (list, tuple)) else [embedding_weights]
    )
    dtype = static_dtype(shards[0]) or np.dtype(np.float32)
    row_rank = max(1, (static_shape(shards[0]).rank or 2) - 1)
    column = [-1] + [1] * row_rank

    ids = sp_ids.values
    valid = ops_compare.greater_equal(ids, 0)
    weights = None
    if sparse_weights is not None:
        weights = as_sparse(sparse_weights).values
        if combiner != "sum":  # TF-1 keeps non-positive weights for "sum"
            valid = ops_compare.logical_and(valid, ops_compare.greater(weights, 0))
    keep = ops_array.cast(valid, dtype)
    safe_ids = ops_math.multiply(ids, ops_array.cast(valid, static_dtype(ids) or np.int64))
    w = keep if weights is None else ops_math.multiply(keep, ops_array.cast(weights, dtype))
    w = ops_array.reshape(w, column)

    segments = sparse_row_ids(sp_ids.indices)
    rows = ops_array.gather(sp_ids.dense_shape, 0)  # every row of the input gets an output
    embeddings = embedding_lookup(
        embedding_weights, safe_ids, partition_strategy=partition_strategy, max_norm=max_norm
    )
    summed = segment_combine(ops_math.multiply(embeddings, w), segments, num_segments=rows)
    if combiner == "sum":
        out = summed
    elif combiner == "mean":
        out = div_no_nan(summed, segment_combine(w, segments, num_segments=rows))
    else:
        squares = segment_combine(ops_math.square(w), segments, num_segments=rows)
        # A row left empty by pruning divides 0 by 1: sqrt(0)'s infinite slope would turn its
        # pruned weights' zero gradient into NaN (TF-1 drops them from the graph instead).
        empty = ops_array.cast(ops_compare.equal(squares, 0), dtype)
        out = ops_math.divide(summed, ops_math.sqrt(ops_math.add(squares, empty)))
    if default_id is not None:
        present = segment_combine(ops_array.reshape(keep, column), segments, num_segments=rows)
        empty = ops_array.cast(ops_compare.equal(present, 0), dtype)
        fallback = embedding_lookup(
            embedding_weights,
            constant(np.array([int(default_id)], dtype=np.int64)),
            partition_strategy=partition_strategy,
            max_norm=max_norm,
        )
        out = ops_math.add(out, ops_math.multiply(empty, fallback))
    return out if name is None else ops_array.identity(out, name=name)
