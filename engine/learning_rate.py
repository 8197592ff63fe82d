"""TF-1's learning-rate schedules: `exponential_decay` and `piecewise_constant`.

Each is one small op (its inputs: the rate and the step), so a schedule reads the global
step in the run that trains and an optimizer takes it as its learning rate.  The output
dtype is the learning rate's (float32 for a Python number), as TF-1 converts everything to.
Neither is differentiable (TF-1 never trains through a schedule).
"""

from __future__ import annotations

import numpy as np

from engine.autodiff import NotDifferentiable
from engine.graph import Node, Operation, as_node
from engine.shapes import TensorShape, broadcast_shape

__all__ = ["exponential_decay", "piecewise_constant"]


def _float_dtype(value) -> np.dtype:
    python_number = isinstance(value, (int, float)) and not isinstance(value, np.generic)
    dtype = value.dtype if isinstance(value, Node) else np.asarray(value).dtype
    if dtype is None or python_number or dtype.kind != "f":
        return np.dtype(np.float32)
    return np.dtype(dtype)


class ExponentialDecay(Operation):
    """learning_rate * decay_rate ** (global_step / decay_steps), floored when staircase."""

    op_type = "exponential_decay"

    def forward(self, xp, learning_rate, global_step, decay_steps, decay_rate):
        dtype = np.dtype(self.attrs["dtype"])
        p = xp.asarray(global_step).astype(dtype) / xp.asarray(decay_steps).astype(dtype)
        if self.attrs["staircase"]:
            p = xp.floor(p)
        rate = xp.asarray(decay_rate).astype(dtype)
        return (xp.asarray(learning_rate).astype(dtype) * xp.power(rate, p)).astype(dtype)

    def infer_shape(self, *input_shapes):
        shape = TensorShape(())
        for s in input_shapes:
            shape = broadcast_shape(shape, s)
        return shape

    def infer_dtype(self, *input_dtypes):
        return np.dtype(self.attrs["dtype"])


class PiecewiseConstant(Operation):
    """values[i] where boundaries[i-1] < x <= boundaries[i] (values[0] up to boundaries[0])."""

    op_type = "piecewise_constant"

    def forward(self, xp, x):
        boundaries = xp.asarray(self.attrs["boundaries"], dtype=xp.asarray(x).dtype)
        values = xp.asarray(self.attrs["values"], dtype=np.dtype(self.attrs["dtype"]))
        return values[xp.searchsorted(boundaries, x, side="left")]

    def infer_shape(self, x_shape):
        return x_shape

    def infer_dtype(self, x_dtype):
        return np.dtype(self.attrs["dtype"])


NotDifferentiable("exponential_decay")
NotDifferentiable("piecewise_constant")


def exponential_decay(
    learning_rate, global_step, decay_steps, decay_rate, staircase=False, name=None
):
    """TF-1's decayed rate: learning_rate * decay_rate ^ (global_step / decay_steps)."""
    if global_step is None:
        raise ValueError("global_step is required for exponential_decay.")
    dtype = _float_dtype(learning_rate)
    inputs = [learning_rate, global_step, decay_steps, decay_rate]
    graph = next((n.graph for n in inputs if isinstance(n, Node)), None)
    inputs = [as_node(x, graph) for x in inputs]
    return ExponentialDecay(
        inputs, name=name or "ExponentialDecay", staircase=bool(staircase), dtype=dtype.name
    )


def piecewise_constant(x, boundaries, values, name=None):
    """TF-1's step function of `x`: values[0] while x <= boundaries[0], ..., values[-1] after."""
    boundaries, values = list(boundaries), list(values)
    if len(values) != len(boundaries) + 1:
        raise ValueError(
            "The length of boundaries should be 1 less than the length of values; got "
            f"{len(boundaries)} boundaries and {len(values)} values"
        )
    if any(b2 < b1 for b1, b2 in zip(boundaries, boundaries[1:], strict=False)):
        raise ValueError(f"boundaries must be sorted ascending, got {boundaries}")
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        dtype = np.dtype(values[0].dtype if isinstance(values[0], np.integer) else np.int32)
    elif all(isinstance(v, (float, int, np.floating, np.integer)) for v in values):
        dtype = next(
            (np.dtype(v.dtype) for v in values if isinstance(v, np.floating)),
            np.dtype(np.float32),
        )
    else:
        raise TypeError(f"piecewise_constant: values must be numbers, got {values}")
    return PiecewiseConstant(
        [x],
        name=name or "PiecewiseConstant",
        boundaries=[b.item() if isinstance(b, np.generic) else b for b in boundaries],
        values=[v.item() if isinstance(v, np.generic) else v for v in values],
        dtype=dtype.name,
    )
