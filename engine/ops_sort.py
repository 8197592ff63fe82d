"""sort and argsort along any axis (ties keep their order, as TF-1's top_k-based sort)."""

from __future__ import annotations

import numpy as np

from engine.autodiff import NotDifferentiable, RegisterGradient
from engine.graph import Operation
from engine.shape_helpers import known_dtype, normalize_axis, static_shape_of

__all__ = ["argsort", "sort"]

_DIRECTIONS = ("ASCENDING", "DESCENDING")


class ArgSort(Operation):
    """The positions that sort the input along `axis` (int32); stable."""

    op_type = "argsort"

    def forward(self, xp, x):
        x = xp.asarray(x)
        keys = x if x.dtype.kind in "fc" else x.astype(np.int64)
        if self.attrs["direction"] == "DESCENDING":
            keys = -keys  # a stable ascending sort of -x: ties keep the lower position first
        stable = {"kind": "stable"} if xp is np else {}  # CuPy's sort is always stable
        return xp.argsort(keys, axis=self.attrs["axis"], **stable).astype(np.int32)

    def infer_shape(self, shape):
        return shape

    def infer_dtype(self, dtype):
        return np.dtype(np.int32)


NotDifferentiable("argsort")


class TakeAlongAxis(Operation):
    """x's entries at `indices` along `axis` (sort's values; indices distinct per row)."""

    op_type = "take_along_axis"

    def forward(self, xp, x, indices):
        return xp.take_along_axis(xp.asarray(x), indices.astype(np.int64), axis=self.attrs["axis"])

    def infer_shape(self, x, indices):
        return indices

    def infer_dtype(self, x, indices):
        return known_dtype(x)


@RegisterGradient("take_along_axis")
def _take_along_axis_grad(op, g):
    x, indices = op.inputs
    xp = op.xp
    axis = op.op.attrs["axis"]
    # With the axis moved last, each row's gradient is scattered back by fancy indexing.
    g_last = xp.moveaxis(g, axis, -1)
    idx_last = xp.moveaxis(indices, axis, -1)
    x_last_shape = [*x.shape]
    x_last_shape.append(x_last_shape.pop(axis))
    leading = int(np.prod(x_last_shape[:-1], dtype=np.int64))
    full = xp.zeros((leading, x_last_shape[-1]), dtype=g.dtype)
    rows = xp.arange(leading)[:, None]
    picked = idx_last.reshape(leading, -1)
    full[rows, picked] = g_last.reshape(leading, -1)  # a permutation per row: no repeats
    return xp.moveaxis(full.reshape(x_last_shape), -1, axis), None


def _checked(values, axis, direction, what):
    direction = str(direction).upper()
    if direction not in _DIRECTIONS:
        raise ValueError(f"{what}: direction must be one of {_DIRECTIONS}, got {direction!r}")
    shape = static_shape_of(values)
    if shape.rank == 0:
        raise ValueError(f"{what}: values must have rank at least 1")
    return normalize_axis(int(axis), shape.rank, what), direction


def argsort(values, axis=-1, direction="ASCENDING", stable=False, name=None):
    """The int32 positions that sort `values` along `axis` (always stable here)."""
    axis, direction = _checked(values, axis, direction, "argsort")
    return ArgSort([values], name=name or "argsort", axis=axis, direction=direction)


def sort(values, axis=-1, direction="ASCENDING", name=None):
    """`values` sorted along `axis`; the gradient flows back to each entry's position."""
    axis, direction = _checked(values, axis, direction, "sort")
    base = name or "sort"
    order = ArgSort([values], name=base + "_indices", axis=axis, direction=direction)
    return TakeAlongAxis([values, order], name=base, axis=axis)
