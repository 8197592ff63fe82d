"""gather (with `axis=`) and embedding_lookup (sharded tables, max_norm), with the gradient.

Along axis 0 the gradient w.r.t. params is row-sparse (`IndexedSlices`): optimizers update
only the touched rows.  Re-exported by `ops_array`, whose `__all__` reaches `tf.*`.
"""

from __future__ import annotations

import numpy as np

from engine.autodiff import RegisterGradient
from engine.backend import scatter_add
from engine.graph import Operation
from engine.shapes import TensorShape, as_shape
from engine.sparse import IndexedSlices

__all__ = ["embedding_lookup", "gather"]


class Gather(Operation):
    """params gathered at `indices` along `axis`; along axis 0 the params gradient is
    row-sparse (IndexedSlices), elsewhere dense."""

    op_type = "gather"

    def forward(self, xp, params, indices):
        return params.take(indices, axis=self.attrs.get("axis", 0))

    def infer_shape(self, params, indices):
        params, indices = as_shape(params), as_shape(indices)
        if params.rank is None or indices.rank is None:
            return TensorShape(None)
        axis = self.attrs.get("axis", 0) % max(len(params), 1)
        return TensorShape(tuple(params)[:axis] + tuple(indices) + tuple(params)[axis + 1 :])

    def infer_dtype(self, params, indices):
        return params


def gather(params, indices, validate_indices=None, name=None, axis=None, batch_dims=0):
    """Slices of `params` at integer `indices` along `axis` (default 0): the result's shape is
    params.shape[:axis] + indices.shape + params.shape[axis + 1:]."""
    if batch_dims:
        raise NotImplementedError("gather: batch_dims other than 0 is not supported")
    axis = 0 if axis is None else int(axis)
    if axis:
        return Gather([params, indices], name=name, axis=axis)
    return Gather([params, indices], name=name)  # no attr: graphs saved before axis= load too


def embedding_lookup(
    params, ids, partition_strategy="mod", name=None, validate_indices=True, max_norm=None
):
    """Embedding rows for `ids` (a gather along axis 0, with a row-sparse gradient).

    `params` may be a list of shards split by `partition_strategy`: "mod" (id p in shard
    p % n, row p // n) or "div" (contiguous blocks, the first shards one row larger).
    `max_norm` clips each looked-up embedding to that L2 norm.
    """
    if isinstance(params, (list, tuple)):
        shards = list(params)
        if len(shards) == 1:
            params = shards[0]
        else:
            params, ids = _sharded_table(shards, ids, partition_strategy)
    out = Gather([params, ids], name=name or "embedding_lookup")
    if max_norm is not None:
        from engine.clip_ops import clip_by_norm

        out = clip_by_norm(out, max_norm, axes=[-1])
    return out


def _sharded_table(shards, ids, strategy):
    # The shards concatenated into one table, and `ids` mapped to its rows.  With "div" the
    # shards are contiguous id blocks, so an id is its own row; with "mod" id p is row p // n
    # of shard p % n.  (The table's gradient is dense through the concat.)
    from engine import ops_math
    from engine.ops_array import concat

    if strategy not in ("mod", "div"):
        raise ValueError(f"embedding_lookup: unknown partition_strategy {strategy!r}")
    table = concat(shards, 0)
    if strategy == "div":
        return table, ids
    rows = [as_shape(s.shape)[0] if hasattr(s, "shape") else None for s in shards]
    if any(r is None for r in rows):
        raise ValueError("embedding_lookup: 'mod' sharding needs each shard's number of rows")
    n = len(shards)
    offsets = np.cumsum([0] + rows[:-1]).astype(np.int64)
    shard_offset = Gather([offsets, ops_math.floormod(ids, n)])
    return table, ops_math.add(shard_offset, ops_math.floordiv(ids, n))


@RegisterGradient("gather")
def _gather_grad(op, g):
    xp = op.xp
    params, indices = op.inputs
    axis = op.op.attrs.get("axis", 0) % params.ndim
    if axis == 0:
        rows = g.reshape((-1,) + params.shape[1:])
        return IndexedSlices(indices.reshape(-1), rows, params.shape), None
    # Dense along other axes: move `axis` first, scatter-add the gathered slices, move back.
    lead = params.shape[:axis]
    idx_ndim = indices.ndim
    moved = xp.moveaxis(g, list(range(axis, axis + idx_ndim)), list(range(idx_ndim)))
    rows = moved.reshape((-1,) + lead + params.shape[axis + 1 :])
    out = xp.zeros((params.shape[axis],) + lead + params.shape[axis + 1 :], dtype=g.dtype)
    scatter_add(xp, out, indices.reshape(-1), rows)
    return xp.moveaxis(out, 0, axis), None
