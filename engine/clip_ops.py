"""clip_by_value, clip_by_norm, clip_by_global_norm and global_norm (TF-1 names and
semantics).

As in TF-1, an IndexedSlices value (the gradient of an embedding table) stays IndexedSlices
through them: norms are taken over its values as they are (duplicate rows not summed
first) and the values are scaled, so sparse optimizer rules still apply.  The ops doing
this set `accepts_indexed_slices` (the Session then hands them IndexedSlices unchanged) and
`produces_indexed_slices` (what they give may be IndexedSlices).
"""

from __future__ import annotations

import numpy as np

from engine.autodiff import RegisterGradient
from engine.graph import Node, Operation
from engine.ops_math import add, add_n, divide, minimum, multiply, sqrt, subtract
from engine.ops_reduce import _axis_attr
from engine.shape_rules import FirstInputDtype, SameShape
from engine.shapes import TensorShape
from engine.sparse import IndexedSlices

__all__ = ["clip_by_global_norm", "clip_by_norm", "clip_by_value", "global_norm"]


def _values(x):
    return x.values if type(x) is IndexedSlices else x


def _like(x, values):
    if type(x) is IndexedSlices:
        return IndexedSlices(x.indices, values, x.dense_shape)
    return values


def _axes(axis):
    return tuple(axis) if isinstance(axis, list) else axis


class ClipByValue(FirstInputDtype, SameShape, Operation):
    """t clipped to [lo, hi] (bounds are inputs 1 and 2, tensors or scalars).  As in TF, an
    IndexedSlices input stays IndexedSlices, its values clipped."""

    op_type = "clip_by_value"
    accepts_indexed_slices = True
    produces_indexed_slices = True

    def forward(self, xp, x, *bounds):
        if not bounds:  # graphs saved before the bounds became inputs
            bounds = (self.attrs["clip_value_min"], self.attrs["clip_value_max"])
        lo, hi = bounds
        if type(x) is IndexedSlices:
            return IndexedSlices(x.indices, _clip(xp, x.values, lo, hi), x.dense_shape)
        return _clip(xp, x, lo, hi)


def _clip(xp, x, lo, hi):
    x = xp.asarray(x)
    if type(lo) in (int, float) and type(hi) in (int, float):
        out = xp.clip(x, lo, hi)  # one pass for the common scalar bounds
    else:
        out = xp.minimum(xp.maximum(x, lo), hi)
    return out.astype(x.dtype, copy=False)  # bounds never promote t's dtype (TF: same dtype)


def clip_by_value(t, clip_value_min, clip_value_max, name=None):
    """t clipped to [min, max] (scalars or tensors broadcasting to t); the gradient w.r.t. t is
    zero where clipping happened, and flows to a bound where it was hit (as TF)."""
    lo, hi = clip_value_min, clip_value_max
    if not isinstance(lo, Node) and not isinstance(hi, Node) and np.ndim(lo) == np.ndim(hi) == 0:
        lo, hi = _python_scalar(lo), _python_scalar(hi)
        if lo > hi:
            raise ValueError(
                f"clip_by_value: clip_value_min {lo} is greater than clip_value_max {hi}"
            )
    return ClipByValue([t, lo, hi], name=name)


def _python_scalar(value):
    # A Python number stays weakly typed, so clipping float32 never upcasts it.
    value = value.item() if hasattr(value, "item") else value
    return value if isinstance(value, (int, float)) else float(value)


@RegisterGradient("clip_by_value")
def _clip_grad(op, g):
    # As TF: t gets g where lo <= t <= hi; a bound gets g where t passed it.
    xp = op.xp
    x = xp.asarray(op.inputs[0])
    bounds = op.inputs[1:] or (op.op.attrs["clip_value_min"], op.op.attrs["clip_value_max"])
    lo, hi = bounds
    below, above = x < lo, x > hi
    zero = xp.zeros((), dtype=g.dtype)
    gx = xp.where(below | above, zero, g)
    if len(op.inputs) == 1:
        return (gx,)
    glo = xp.where(below, g, zero) if op.need[1] else None
    ghi = xp.where(above, g, zero) if op.need[2] else None
    return gx, glo, ghi


class ClipByNorm(FirstInputDtype, SameShape, Operation):
    """t * clip_norm / max(||t||, clip_norm), the L2 norm over `axes` (None: all)."""

    op_type = "clip_by_norm"
    accepts_indexed_slices = True
    produces_indexed_slices = True

    def forward(self, xp, t, clip_norm):
        values = xp.asarray(_values(t))
        norm = xp.sqrt((values * values).sum(axis=_axes(self.axes), keepdims=True))
        clipped = values * clip_norm / xp.maximum(norm, clip_norm)
        return _like(t, clipped.astype(values.dtype, copy=False))


class SquaredNorm(Operation):
    """sum(t ** 2) over every element (an IndexedSlices input: over its values)."""

    op_type = "squared_norm"
    accepts_indexed_slices = True

    def forward(self, xp, t):
        values = xp.asarray(_values(t))
        return (values * values).sum()

    def infer_shape(self, t):
        return TensorShape(())


class ClipScale(FirstInputDtype, SameShape, Operation):
    """t * scale for a scalar scale (an IndexedSlices input: its values scaled)."""

    op_type = "clip_scale"
    accepts_indexed_slices = True
    produces_indexed_slices = True

    def forward(self, xp, t, scale):
        values = xp.asarray(_values(t))
        return _like(t, (values * scale).astype(values.dtype, copy=False))


def clip_by_norm(t, clip_norm, axes=None, name=None):
    """t scaled so that its L2 norm over `axes` (None: all) is at most clip_norm."""
    return ClipByNorm([t, clip_norm], name=name, axes=_axis_attr(axes))


def global_norm(t_list, name=None):
    """sqrt(sum of squares of every element of every tensor in t_list; None entries skipped)."""
    if isinstance(t_list, (Node, str)) or not hasattr(t_list, "__iter__"):
        raise TypeError("global_norm: t_list should be a sequence of tensors")
    parts = [SquaredNorm([t]) for t in t_list if t is not None]
    if not parts:
        raise ValueError("global_norm: t_list holds no tensors")
    return sqrt(add_n(parts) if len(parts) > 1 else parts[0], name=name or "global_norm")


def clip_by_global_norm(t_list, clip_norm, use_norm=None, name=None):
    """(t_list scaled by clip_norm / max(global_norm, clip_norm), global_norm), as TF-1: None
    entries stay None, and an infinite or NaN norm makes every entry NaN."""
    if isinstance(t_list, (Node, str)) or not hasattr(t_list, "__iter__"):
        raise TypeError("clip_by_global_norm: t_list should be a sequence of tensors")
    t_list = list(t_list)
    norm = global_norm(t_list) if use_norm is None else use_norm
    scale = multiply(clip_norm, minimum(divide(1.0, norm), divide(1.0, clip_norm)))
    scale = add(scale, subtract(norm, norm))  # nan when the norm is inf or nan (TF-1)
    clipped = [None if t is None else ClipScale([t, scale], name=name) for t in t_list]
    return clipped, norm


@RegisterGradient("clip_by_norm")
def _clip_by_norm_grad(op, g):
    # y = x c / max(n, c), n = ||x|| over axes.  Where n <= c, y = x; else
    # dy/dx = (c / n) (g - x <g, x> / n^2) and dy/dc = <g, x> / n.
    xp = op.xp
    x, c = xp.asarray(op.inputs[0]), op.inputs[1]
    axes = _axes(op.op.attrs["axes"])
    norm = xp.sqrt((x * x).sum(axis=axes, keepdims=True))
    clipping = norm > c
    safe = xp.where(clipping, norm, 1)
    inner = (g * x).sum(axis=axes, keepdims=True)
    gx = xp.where(clipping, (c / safe) * (g - x * inner / (safe * safe)), g)
    gc = None
    if op.need[1]:
        gc = xp.where(clipping, inner / safe, 0).sum()
        shape = getattr(c, "shape", ())
        gc = xp.broadcast_to(gc, shape) if shape else gc
    return gx, gc


@RegisterGradient("squared_norm")
def _squared_norm_grad(op, g):
    return (2 * g * op.inputs[0],)


@RegisterGradient("clip_scale")
def _clip_scale_grad(op, g):
    t, scale = op.inputs
    return g * scale, ((g * t).sum() if op.need[1] else None)
