"""clip_by_norm, clip_by_global_norm and global_norm (TF-1 names and semantics).

As in TF-1, an IndexedSlices value (the gradient of an embedding table) stays IndexedSlices
through them: norms are taken over its values as they are (duplicate rows not summed
first) and the values are scaled, so sparse optimizer rules still apply.  The ops doing
this set `accepts_indexed_slices` (the Session then hands them IndexedSlices unchanged) and
`produces_indexed_slices` (what they give may be IndexedSlices).
"""

from __future__ import annotations

from engine.autodiff import RegisterGradient
from engine.graph import Node, Operation
from engine.ops_math import add, add_n, divide, minimum, multiply, sqrt, subtract
from engine.ops_reduce import _axis_attr
from engine.shape_rules import FirstInputDtype, SameShape
from engine.shapes import TensorShape
from engine.sparse import IndexedSlices

__all__ = ["clip_by_global_norm", "clip_by_norm", "global_norm"]


def _values(x):
    return x.values if type(x) is IndexedSlices else x


def _like(x, values):
    if type(x) is IndexedSlices:
        return IndexedSlices(x.indices, values, x.dense_shape)
    return values


def _axes(axis):
    return tuple(axis) if isinstance(axis, list) else axis


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
