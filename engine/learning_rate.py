"""TF-1's learning-rate schedules, composed from ops as TF-1 composes them.

`exponential_decay`: learning_rate * decay_rate ** (global_step / decay_steps), the exponent
floored when `staircase` (likewise natural_exp_decay, inverse_time_decay); polynomial_decay,
cosine_decay; `piecewise_constant`: a chain of selects on `x <= boundary`.  The
rate's dtype is the learning rate's (float32 for a Python number; the step is cast to it), as
TF-1 converts everything; a schedule is read in the run that trains, so an optimizer takes it
as its learning rate.
"""

from __future__ import annotations

import numpy as np

from engine import ops_binary, ops_math
from engine.graph import Node, constant
from engine.ops_array import cast
from engine.ops_compare import equal, less_equal
from engine.ops_select import where
from engine.ops_unary import ceil, cos, exp, floor

__all__ = [
    "cosine_decay",
    "exponential_decay",
    "inverse_time_decay",
    "natural_exp_decay",
    "piecewise_constant",
    "polynomial_decay",
]


def _python_number(value) -> bool:
    return isinstance(value, (bool, int, float)) and not isinstance(value, np.generic)


def _constant(value, dtype) -> Node:
    """`value` as a node of `dtype` (a node is cast when its dtype differs)."""
    if isinstance(value, Node):
        return value if value.dtype == dtype else cast(value, dtype)
    return constant(np.asarray(value, dtype=dtype))


def _rate_dtype(learning_rate) -> np.dtype:
    if isinstance(learning_rate, Node):
        return learning_rate.dtype or np.dtype(np.float32)
    if _python_number(learning_rate) or np.asarray(learning_rate).dtype.kind != "f":
        return np.dtype(np.float32)
    return np.asarray(learning_rate).dtype


def _progress(global_step, decay_steps, dtype, staircase=False):
    """(learning rate dtype) global_step / decay_steps, floored when `staircase`."""
    if global_step is None:
        raise ValueError("global_step is required for learning rate decay.")
    p = ops_math.divide(cast(global_step, dtype), _constant(decay_steps, dtype))
    return floor(p) if staircase else p


def exponential_decay(
    learning_rate, global_step, decay_steps, decay_rate, staircase=False, name=None
):
    """TF-1's decayed rate: learning_rate * decay_rate ^ (global_step / decay_steps)."""
    if global_step is None:
        raise ValueError("global_step is required for exponential_decay.")
    dtype = _rate_dtype(learning_rate)
    p = _progress(global_step, decay_steps, dtype, staircase)
    rate = ops_binary.pow(_constant(decay_rate, dtype), p)
    return ops_math.multiply(_constant(learning_rate, dtype), rate, name=name or "ExponentialDecay")


def natural_exp_decay(
    learning_rate, global_step, decay_steps, decay_rate, staircase=False, name=None
):
    """TF-1's learning_rate * exp(-decay_rate * global_step / decay_steps)."""
    dtype = _rate_dtype(learning_rate)
    p = _progress(global_step, decay_steps, dtype, staircase)
    factor = exp(ops_math.multiply(ops_math.negative(_constant(decay_rate, dtype)), p))
    return ops_math.multiply(
        _constant(learning_rate, dtype), factor, name=name or "NaturalExpDecay"
    )


def inverse_time_decay(
    learning_rate, global_step, decay_steps, decay_rate, staircase=False, name=None
):
    """TF-1's learning_rate / (1 + decay_rate * global_step / decay_steps)."""
    dtype = _rate_dtype(learning_rate)
    p = _progress(global_step, decay_steps, dtype, staircase)
    denom = ops_math.add(_constant(1, dtype), ops_math.multiply(_constant(decay_rate, dtype), p))
    return ops_math.divide(_constant(learning_rate, dtype), denom, name=name or "InverseTimeDecay")


def polynomial_decay(
    learning_rate,
    global_step,
    decay_steps,
    end_learning_rate=0.0001,
    power=1.0,
    cycle=False,
    name=None,
):
    """TF-1's (lr - end) * (1 - step / decay_steps) ^ power + end; the step is capped at
    decay_steps, or with `cycle` decay_steps grows to the next multiple past the step."""
    if global_step is None:
        raise ValueError("global_step is required for polynomial_decay.")
    dtype = _rate_dtype(learning_rate)
    step = cast(global_step, dtype)
    steps = _constant(decay_steps, dtype)
    if cycle:
        multiplier = where(
            equal(step, _constant(0, dtype)),
            _constant(1, dtype),
            ceil(ops_math.divide(step, steps)),
        )
        steps = ops_math.multiply(steps, multiplier)
    else:
        step = ops_binary.minimum(step, steps)
    remaining = ops_math.subtract(_constant(1, dtype), ops_math.divide(step, steps))
    end = _constant(end_learning_rate, dtype)
    span = ops_math.subtract(_constant(learning_rate, dtype), end)
    decayed = ops_math.multiply(span, ops_binary.pow(remaining, _constant(power, dtype)))
    return ops_math.add(decayed, end, name=name or "PolynomialDecay")


def cosine_decay(learning_rate, global_step, decay_steps, alpha=0.0, name=None):
    """TF-1's learning_rate * ((1 - alpha) * 0.5 * (1 + cos(pi * step / decay_steps)) + alpha),
    the step capped at decay_steps."""
    if global_step is None:
        raise ValueError("cosine decay requires global_step")
    dtype = _rate_dtype(learning_rate)
    steps = _constant(decay_steps, dtype)
    done = ops_math.divide(ops_binary.minimum(cast(global_step, dtype), steps), steps)
    cosine = ops_math.multiply(
        _constant(0.5, dtype),
        ops_math.add(_constant(1, dtype), cos(ops_math.multiply(_constant(np.pi, dtype), done))),
    )
    alpha_node = _constant(alpha, dtype)
    decayed = ops_math.add(
        ops_math.multiply(ops_math.subtract(_constant(1, dtype), alpha_node), cosine), alpha_node
    )
    return ops_math.multiply(_constant(learning_rate, dtype), decayed, name=name or "CosineDecay")


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
