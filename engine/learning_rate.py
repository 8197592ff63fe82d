"""TF-1's learning-rate schedules, composed from ops as TF-1 composes them.

`exponential_decay`: learning_rate * decay_rate ** (global_step / decay_steps), the exponent
floored when `staircase`.  `piecewise_constant`: a chain of selects on `x <= boundary`.  The
rate's dtype is the learning rate's (float32 for a Python number; the step is cast to it), as
TF-1 converts everything; a schedule is read in the run that trains, so an optimizer takes it
as its learning rate.
"""

from __future__ import annotations

import numpy as np

from engine import ops_binary, ops_math
from engine.graph import Node, constant
from engine.ops_array import cast
from engine.ops_compare import less_equal
from engine.ops_select import where
from engine.ops_unary import floor

__all__ = ["exponential_decay", "piecewise_constant"]


def _python_number(value) -> bool:
    return isinstance(value, (bool, int, float)) and not isinstance(value, np.generic)


def _constant(value, dtype) -> Node:
    """`value` as a node of `dtype` (a node is cast when its dtype differs)."""
    if isinstance(value, Node):
        return value if value.dtype == dtype else cast(value, dtype)
    return constant(np.asarray(value, dtype=dtype))


def exponential_decay(
    learning_rate, global_step, decay_steps, decay_rate, staircase=False, name=None
):
    """TF-1's decayed rate: learning_rate * decay_rate ^ (global_step / decay_steps)."""
    if global_step is None:
        raise ValueError("global_step is required for exponential_decay.")
    if isinstance(learning_rate, Node):
        dtype = learning_rate.dtype or np.dtype(np.float32)
    elif _python_number(learning_rate) or np.asarray(learning_rate).dtype.kind != "f":
        dtype = np.dtype(np.float32)
    else:
        dtype = np.asarray(learning_rate).dtype
    lr = _constant(learning_rate, dtype)
    p = ops_math.divide(cast(global_step, dtype), _constant(decay_steps, dtype))
    if staircase:
        p = floor(p)
    rate = ops_binary.pow(_constant(decay_rate, dtype), p)
    return ops_math.multiply(lr, rate, name=name or "ExponentialDecay")


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
    dtype = _values_dtype(values)
    x_dtype = x.dtype if isinstance(x, Node) else None
    result = _constant(values[-1], dtype)
    for boundary, value in zip(reversed(boundaries), reversed(values[:-1]), strict=True):
        below = less_equal(x, _constant(boundary, x_dtype or np.asarray(boundary).dtype))
        result = where(below, _constant(value, dtype), result)
    return cast(result, dtype, name=name or "PiecewiseConstant")


def _values_dtype(values) -> np.dtype:
    # TF-1 converts each value to a tensor and requires one dtype: ints -> int32, floats ->
    # float32, numpy scalars keep theirs.
    dtypes = set()
    for v in values:
        if isinstance(v, Node):
            dtypes.add(v.dtype)
        elif _python_number(v):
            dtypes.add(np.dtype(np.float32 if isinstance(v, float) else np.int32))
        else:
            dtypes.add(np.asarray(v).dtype)
    if len(dtypes) != 1:
        raise ValueError(f"piecewise_constant: values must all have one dtype, got {values}")
    return dtypes.pop()
