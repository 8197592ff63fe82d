"""Reductions, shape ops, gather / embedding_lookup and clipping, with their gradients.

Axis attrs are stored JSON-able: None, an int, or a list of ints.
"""

from __future__ import annotations

import numpy as np

from engine.autodiff import NotDifferentiable, RegisterGradient
from engine.graph import Operation
from engine.sparse import IndexedSlices

__all__ = [
    "cast",
    "clip_by_value",
    "concat",
    "embedding_lookup",
    "gather",
    "identity",
    "reduce_max",
    "reduce_mean",
    "reduce_sum",
    "reshape",
    "stop_gradient",
    "transpose",
]


def _axis_attr(axis):
    if axis is None or isinstance(axis, int):
        return axis
    return [int(a) for a in axis]


def _axis_arg(axis):
    return tuple(axis) if isinstance(axis, list) else axis


def _kept_shape(shape, axis):
    """`shape` with the reduced axes set to 1 (the keepdims=True result shape)."""
    if axis is None:
        return (1,) * len(shape)
    axes = axis if isinstance(axis, list) else [axis]
    kept = list(shape)
    for a in axes:
        kept[a % len(shape)] = 1
    return tuple(kept)


class ReduceSum(Operation):
    op_type = "reduce_sum"

    def forward(self, xp, x):
        # asarray: a weakly typed Python-scalar constant has no .sum
        return xp.asarray(x).sum(axis=_axis_arg(self.axis), keepdims=self.keepdims)


class ReduceMean(Operation):
    op_type = "reduce_mean"

    def forward(self, xp, x):
        # asarray: a weakly typed Python-scalar constant has no .mean
        return xp.asarray(x).mean(axis=_axis_arg(self.axis), keepdims=self.keepdims)


class ReduceMax(Operation):
    op_type = "reduce_max"

    def forward(self, xp, x):
        # asarray: a weakly typed Python-scalar constant has no .max
        return xp.asarray(x).max(axis=_axis_arg(self.axis), keepdims=self.keepdims)


class Concat(Operation):
    op_type = "concat"

    def forward(self, xp, *values):
        return xp.concatenate(values, axis=self.axis)


class Reshape(Operation):
    op_type = "reshape"

    def forward(self, xp, x):
        return xp.reshape(x, self.shape)


class Transpose(Operation):
    op_type = "transpose"

    def forward(self, xp, x):
        return xp.transpose(x, self.perm)


class Gather(Operation):
    """params[indices] along axis 0; the gradient w.r.t. params is row-sparse."""

    op_type = "gather"

    def forward(self, xp, params, indices):
        return params.take(indices, axis=0)


class Cast(Operation):
    op_type = "cast"

    def forward(self, xp, x):
        # asarray: a weakly typed Python-scalar constant has no .astype
        return xp.asarray(x).astype(self.dtype, copy=False)


class ClipByValue(Operation):
    op_type = "clip_by_value"

    def forward(self, xp, x):
        return xp.clip(x, self.clip_value_min, self.clip_value_max)


class Identity(Operation):
    op_type = "identity"

    def forward(self, xp, x):
        return x


class StopGradient(Operation):
    op_type = "stop_gradient"

    def forward(self, xp, x):
        return x


def reduce_sum(x, axis=None, keepdims=False, name=None):
    """Sum over `axis` (None: all axes)."""
    return ReduceSum([x], name=name, axis=_axis_attr(axis), keepdims=bool(keepdims))


def reduce_mean(x, axis=None, keepdims=False, name=None):
    """Mean over `axis` (None: all axes)."""
    return ReduceMean([x], name=name, axis=_axis_attr(axis), keepdims=bool(keepdims))


def reduce_max(x, axis=None, keepdims=False, name=None):
    """Maximum over `axis`; the gradient is shared equally among tied maxima."""
    return ReduceMax([x], name=name, axis=_axis_attr(axis), keepdims=bool(keepdims))


def concat(values, axis, name=None):
    """Join `values` along `axis`."""
    values = list(values)
    if not values:
        raise ValueError("concat: needs at least one input")
    return Concat(values, name=name, axis=int(axis))


def reshape(x, shape, name=None):
    """`x` with a new shape (one dimension may be -1)."""
    return Reshape([x], name=name, shape=[int(d) for d in shape])


def transpose(x, perm=None, name=None):
    """Permute axes (default: reverse them)."""
    return Transpose([x], name=name, perm=None if perm is None else [int(p) for p in perm])


def gather(params, indices, name=None):
    """Rows of `params` at integer `indices` (any shape): result shape indices.shape + row shape."""
    return Gather([params, indices], name=name)


def embedding_lookup(params, ids, name=None):
    """Embedding rows for `ids` (a gather along axis 0, with a row-sparse gradient)."""
    return Gather([params, ids], name=name or "embedding_lookup")


def cast(x, dtype, name=None):
    """x converted to `dtype` (TF-1's tf.cast); the gradient flows back to a float input."""
    return Cast([x], name=name, dtype=np.dtype(dtype).name)


def clip_by_value(x, clip_value_min, clip_value_max, name=None):
    """x clipped to [min, max]; the gradient is zero where clipping happened."""
    lo, hi = float(clip_value_min), float(clip_value_max)
    if lo > hi:
        raise ValueError(f"clip_by_value: clip_value_min {lo} is greater than clip_value_max {hi}")
    return ClipByValue([x], name=name, clip_value_min=lo, clip_value_max=hi)


def identity(x, name=None):
    """x unchanged."""
    return Identity([x], name=name)


def stop_gradient(x, name=None):
    """x unchanged in the forward pass; no gradient flows through it."""
    return StopGradient([x], name=name)


NotDifferentiable("stop_gradient")


@RegisterGradient("reduce_sum")
def _reduce_sum_grad(op, g):
    x = op.inputs[0]
    return (op.xp.broadcast_to(g.reshape(_kept_shape(x.shape, op.op.axis)), x.shape),)


@RegisterGradient("reduce_mean")
def _reduce_mean_grad(op, g):
    x = op.inputs[0]
    kept = _kept_shape(x.shape, op.op.axis)
    count = x.size // max(1, _prod(kept))
    return (op.xp.broadcast_to(g.reshape(kept) / count, x.shape),)


def _prod(shape):
    out = 1
    for d in shape:
        out *= d
    return out


@RegisterGradient("reduce_max")
def _reduce_max_grad(op, g):
    x = op.inputs[0]
    axis = op.op.axis
    kept = _kept_shape(x.shape, axis)
    hit = x == op.output.reshape(kept)
    ties = hit.sum(axis=_axis_arg(axis), keepdims=True)
    return (hit * (g.reshape(kept) / ties),)


@RegisterGradient("concat")
def _concat_grad(op, g):
    axis = op.op.axis
    sizes = [v.shape[axis] for v in op.inputs]
    bounds = []
    total = 0
    for size in sizes[:-1]:
        total += size
        bounds.append(total)
    return tuple(op.xp.split(g, bounds, axis=axis))


@RegisterGradient("reshape")
def _reshape_grad(op, g):
    return (g.reshape(op.inputs[0].shape),)


@RegisterGradient("transpose")
def _transpose_grad(op, g):
    perm = op.op.perm
    if perm is None:
        return (op.xp.transpose(g),)
    inverse = [0] * len(perm)
    for i, p in enumerate(perm):
        inverse[p] = i
    return (op.xp.transpose(g, inverse),)


@RegisterGradient("gather")
def _gather_grad(op, g):
    params, indices = op.inputs
    rows = g.reshape((-1,) + params.shape[1:])
    return IndexedSlices(indices.reshape(-1), rows, params.shape), None


@RegisterGradient("cast")
def _cast_grad(op, g):
    x = op.inputs[0]
    if x.dtype.kind != "f":
        return (None,)  # integers and booleans have no gradient, as in TF
    return (g.astype(x.dtype, copy=False),)


@RegisterGradient("clip_by_value")
def _clip_grad(op, g):
    x = op.inputs[0]
    inside = (x >= op.op.clip_value_min) & (x <= op.op.clip_value_max)
    return (g * inside,)


@RegisterGradient("identity")
def _identity_grad(op, g):
    return (g,)
