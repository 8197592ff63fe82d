"""where (TF-1's select, or the coordinates of true entries) and where_v2 (broadcasting)."""

from __future__ import annotations

import numpy as np

from engine.autodiff import NotDifferentiable, RegisterGradient
from engine.graph import Operation
from engine.shape_helpers import format_shape, static_shape_of
from engine.shapes import broadcast_shape

__all__ = ["where", "where_v2"]


class Select(Operation):
    """TF-1's where(condition, x, y): a condition of x's rank picks entries, a vector
    condition of x's first dimension picks whole rows; x, y and a same-rank condition
    broadcast (TF-1 wants equal shapes: every program it takes runs the same here)."""

    op_type = "select"

    @staticmethod
    def _condition(xp, condition, x):
        condition = xp.asarray(condition)
        if condition.ndim == 1 and np.ndim(x) > 1:
            return condition.reshape((-1,) + (1,) * (np.ndim(x) - 1))
        return condition

    def forward(self, xp, condition, x, y):
        return xp.where(self._condition(xp, condition, x), x, y)

    def infer_shape(self, condition, x, y):
        value = broadcast_shape(x, y)
        if condition.rank == 1 and value.rank is not None and value.rank > 1:
            return value
        return broadcast_shape(condition, value)

    def infer_dtype(self, condition, x, y):
        return super().infer_dtype(x, y)


class SelectV2(Select):
    """where_v2(condition, x, y): numpy broadcasting of all three (no row rule)."""

    op_type = "select_v2"

    @staticmethod
    def _condition(xp, condition, x):
        return xp.asarray(condition)

    def infer_shape(self, condition, x, y):
        return broadcast_shape(condition, broadcast_shape(x, y))


@RegisterGradient("select")
@RegisterGradient("select_v2")
def _select_grad(op, g):
    condition, x, _ = op.inputs
    xp = op.xp
    taken = type(op.op)._condition(xp, condition, x)
    zeros = xp.zeros_like(g)
    return None, xp.where(taken, g, zeros), xp.where(taken, zeros, g)


class WhereIndices(Operation):
    """The coordinates of the true entries of `condition`, (count, rank) int64."""

    op_type = "where_indices"

    def forward(self, xp, condition):
        return xp.argwhere(xp.asarray(condition)).astype(np.int64)

    def infer_shape(self, condition):
        return (None, condition.rank)

    def infer_dtype(self, dtype):
        return np.dtype(np.int64)


NotDifferentiable("where_indices")


def _shape_error(name, *shapes):
    listed = ", ".join(format_shape(s) for s in shapes)
    return ValueError(f"where: Dimensions must be equal for {name!r} with input shapes: {listed}")


def where(condition, x=None, y=None, name=None):
    """TF-1's tf.where: with x and y, entries of x where `condition` is true else of y (a
    vector condition picks rows); with neither, the int64 coordinates of the true entries."""
    if (x is None) != (y is None):
        raise ValueError("where: x and y must both be given, or neither")
    if x is None:
        return WhereIndices([condition], name=name or "Where")
    c_shape, x_shape, y_shape = (static_shape_of(v) for v in (condition, x, y))
    rows = c_shape.rank == 1 and x_shape.rank is not None and x_shape.rank > 1
    try:
        value_shape = broadcast_shape(x_shape, y_shape)
        broadcast_shape(c_shape, value_shape[:1] if rows else value_shape)
    except ValueError:
        raise _shape_error(name or "Select", c_shape, x_shape, y_shape) from None
    return Select([condition, x, y], name=name or "Select")


def where_v2(condition, x=None, y=None, name=None):
    """TF's where_v2: entries of x where `condition` is true else of y, all three broadcast
    together; with neither x nor y, the int64 coordinates of the true entries."""
    if (x is None) != (y is None):
        raise ValueError("where_v2: x and y must both be given, or neither")
    if x is None:
        return WhereIndices([condition], name=name or "Where")
    shapes = [static_shape_of(v) for v in (condition, x, y)]
    try:
        broadcast_shape(shapes[0], broadcast_shape(shapes[1], shapes[2]))
    except ValueError:
        raise _shape_error(name or "SelectV2", *shapes) from None
    return SelectV2([condition, x, y], name=name or "SelectV2")
