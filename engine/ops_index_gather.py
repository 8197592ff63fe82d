"""Gathers by index tuple, mask or rank: gather_nd, boolean_mask and top_k, with gradients."""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from engine.autodiff import NotDifferentiable, RegisterGradient
from engine.backend import scatter_add
from engine.graph import Operation
from engine.ops_sort import TakeAlongAxis
from engine.shape_helpers import (
    constant_value,
    format_shape,
    known_dtype,
    normalize_axis,
    static_shape_of,
)
from engine.shapes import TensorShape

__all__ = ["boolean_mask", "gather_nd", "top_k"]


def _nd_key(xp, indices) -> tuple:
    indices = xp.asarray(indices)
    return tuple(indices[..., i] for i in range(indices.shape[-1]))


class GatherNd(Operation):
    """params[indices[..., 0], indices[..., 1], ...]: slices of params at index tuples."""

    op_type = "gather_nd"

    def forward(self, xp, params, indices):
        return params[_nd_key(xp, indices)]

    def infer_shape(self, params, indices):
        if indices.rank is None or params.rank is None or indices[-1] is None:
            return None
        return [*indices[:-1], *params[indices[-1] :]]

    def infer_dtype(self, params, indices):
        return known_dtype(params)


@RegisterGradient("gather_nd")
def _gather_nd_grad(op, g):
    params, indices = op.inputs
    xp = op.xp
    full = xp.zeros(params.shape, dtype=g.dtype)
    scatter_add(xp, full, _nd_key(xp, indices), g)  # index tuples may repeat: sum them
    return full, None


def gather_nd(params, indices, name=None, batch_dims=0):
    """Slices of `params` at the index tuples in the last dimension of `indices`: result shape
    indices.shape[:-1] + params.shape[indices.shape[-1]:]."""
    if int(batch_dims) != 0:
        raise NotImplementedError("gather_nd: only batch_dims=0 is supported")
    params_shape, indices_shape = static_shape_of(params), static_shape_of(indices)
    if indices_shape.rank == 0:
        raise ValueError("gather_nd: indices must have rank at least 1")
    depth = None if indices_shape.rank is None else indices_shape[-1]
    if depth is not None and params_shape.rank is not None and depth > params_shape.rank:
        raise ValueError(
            f"gather_nd: index tuples of length {depth} for params of rank {params_shape.rank} "
            f"(input shapes: {format_shape(params_shape)}, {format_shape(indices_shape)})"
        )
    return GatherNd([params, indices], name=name or "GatherNd")


class BooleanMask(Operation):
    """The entries (or sub-tensors) of `tensor` where `mask` is true, over the dimensions
    axis .. axis + mask.ndim - 1, flattened into one."""

    op_type = "boolean_mask"

    def _flat(self, tensor_shape, mask_ndim) -> tuple:
        axis = self.attrs["axis"]
        masked = int(np.prod(tensor_shape[axis : axis + mask_ndim], dtype=np.int64))
        return (*tensor_shape[:axis], masked, *tensor_shape[axis + mask_ndim :])

    def forward(self, xp, tensor, mask):
        mask = xp.asarray(mask)
        axis = self.attrs["axis"]
        if tensor.shape[axis : axis + mask.ndim] != mask.shape:
            raise ValueError(
                f"boolean_mask: mask of shape {mask.shape} does not match dimensions {axis}.. "
                f"of a tensor of shape {tensor.shape}"
            )
        flat = tensor.reshape(self._flat(tensor.shape, mask.ndim))
        return flat.take(xp.flatnonzero(mask), axis=self.attrs["axis"])

    def infer_shape(self, tensor, mask):
        if tensor.rank is None or mask.rank is None:
            return None
        axis = self.attrs["axis"]
        return [*tensor[:axis], None, *tensor[axis + mask.rank :]]

    def infer_dtype(self, tensor, mask):
        return known_dtype(tensor)


@RegisterGradient("boolean_mask")
def _boolean_mask_grad(op, g):
    tensor, mask = op.inputs
    xp = op.xp
    mask = xp.asarray(mask)
    axis = op.op.attrs["axis"]
    full = xp.zeros(op.op._flat(tensor.shape, mask.ndim), dtype=g.dtype)
    full[(slice(None),) * axis + (xp.flatnonzero(mask),)] = g
    return full.reshape(tensor.shape), None


def boolean_mask(tensor, mask, name="boolean_mask", axis=None):
    """The entries of `tensor` where the boolean `mask` (whose shape matches dimensions
    axis.. of tensor) is true, those dimensions flattened into one."""
    tensor_shape, mask_shape = static_shape_of(tensor), static_shape_of(mask)
    if mask_shape.rank is None:
        raise ValueError("boolean_mask: the rank of mask must be known when the graph is built")
    if mask_shape.rank == 0:
        raise ValueError("boolean_mask: mask cannot be a scalar")
    axis = 0 if axis is None else int(constant_value(axis, "boolean_mask: axis"))
    if tensor_shape.rank is not None:
        axis = normalize_axis(axis, tensor_shape.rank, "boolean_mask")
        covered = TensorShape(tensor_shape[axis : axis + mask_shape.rank])
        if len(covered) != mask_shape.rank or not covered.is_compatible_with(mask_shape):
            raise ValueError(
                f"boolean_mask: Shapes {format_shape(covered)} and {format_shape(mask_shape)} "
                f"are incompatible (tensor {format_shape(tensor_shape)}, axis {axis})"
            )
    elif axis < 0:
        raise ValueError("boolean_mask: a negative axis needs the tensor's rank")
    return BooleanMask([tensor, mask], name=name, axis=axis)


class TopKIndices(Operation):
    """The positions of the k largest entries along the last dimension, largest first;
    ties: the lower position first (TF-1's order)."""

    op_type = "top_k_indices"

    def forward(self, xp, x):
        x = xp.asarray(x)
        k = self.attrs["k"]
        # Sorting the negated values, stably, keeps tied entries in position order.
        keys = -x if x.dtype.kind in "fc" else -(x.astype(np.int64))
        n = keys.shape[-1]
        if xp is np and n >= 128 and 0 < k * 4 <= n:
            return _top_k_partitioned(keys, k).astype(np.int32)
        # numpy needs kind="stable"; CuPy's sort is always stable and takes no kind.
        stable = {"kind": "stable"} if xp is np else {}
        order = xp.argsort(keys, axis=-1, **stable)
        return order[..., :k].astype(np.int32)

    def infer_shape(self, shape):
        if shape.rank is None:
            return None
        return [*shape[:-1], self.attrs["k"]]

    def infer_dtype(self, dtype):
        return np.dtype(np.int32)


NotDifferentiable("top_k_indices")


def _top_k_partitioned(keys, k: int):
    """The first k positions of a stable ascending sort of each row of `keys` (numpy), in
    O(n) plus a sort of the candidates: those not above each row's k-th smallest key (all
    entries tied with it included, so ties resolve by position as a full sort would)."""
    n = keys.shape[-1]
    rows = keys.reshape(-1, n)
    kth = np.partition(rows, k - 1, axis=1)[:, k - 1]
    row, col = np.nonzero(rows <= kth[:, None])
    counts = np.bincount(row, minlength=rows.shape[0])
    if (counts < k).any():  # NaN keys (they sort last) left a row short: sort it all
        return np.argsort(keys, axis=-1, kind="stable")[..., :k]
    order = np.lexsort((col, rows[row, col], row))  # by row, then key, then position
    starts = np.cumsum(counts) - counts
    picked = order[(starts[:, None] + np.arange(k)).reshape(-1)]
    return col[picked].reshape(keys.shape[:-1] + (k,))


TopKV2 = namedtuple("TopKV2", ["values", "indices"])


def top_k(input, k=1, sorted=True, name=None):  # noqa: A002 - TF-1's keyword names
    """TopKV2(values, indices): the `k` largest entries along the last dimension, largest
    first (ties: lower index first), and their int32 positions; the gradient flows to
    `input` through values."""
    k = int(constant_value(k, "top_k: k"))
    shape = static_shape_of(input)
    if k < 0:
        raise ValueError(f"top_k: k must be non-negative, got {k}")
    if shape.rank == 0:
        raise ValueError("top_k: input must have rank at least 1")
    if shape.rank is not None and shape[-1] is not None and shape[-1] < k:
        raise ValueError(
            f"top_k: input must have at least k={k} columns, got shape {format_shape(shape)}"
        )
    base = name or "TopKV2"
    indices = TopKIndices([input], name=base + "_indices", k=k, sorted=bool(sorted))
    values = TakeAlongAxis([input, indices], name=base, axis=-1)
    return TopKV2(values, indices)
