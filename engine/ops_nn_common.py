"""Helpers shared by the tf.nn / tf.losses / tf.layers modules: static shapes and the few
math ops they compose from (another module's op when it exists, else an exact composition).
"""

from __future__ import annotations

import importlib

import numpy as np

from engine import ops_math
from engine.graph import Node
from engine.shapes import TensorShape, as_shape

__all__ = [
    "abs_value",
    "check_same_shape",
    "maximum_with",
    "minimum_with",
    "rsqrt",
    "static_dtype",
    "static_shape",
]


def static_shape(value) -> TensorShape:
    """What is known of `value`'s shape before a run (a node, an array or a Python number)."""
    if isinstance(value, Node):
        try:
            shape = value.shape
        except Exception:  # an op whose inference fails tells nothing: unknown, as TF
            return TensorShape(None)
        if shape is None:
            return TensorShape(None)
        return as_shape(shape)
    return TensorShape(np.shape(value))


def static_dtype(value):
    """`value`'s numpy dtype when known before a run, else None."""
    if isinstance(value, Node):
        return getattr(value, "dtype", None)
    return np.asarray(value).dtype


def check_same_shape(op_name: str, labels, logits) -> None:
    """TF-1's build-time check: labels and logits of known, different shapes are an error."""
    a, b = static_shape(logits), static_shape(labels)
    if not a.is_compatible_with(b):
        raise ValueError(f"{op_name}: logits and labels must have the same shape ({a} vs {b})")


def _math_op(name: str):
    # The math family's richer ops (abs, maximum, rsqrt, ...) live in modules another helper
    # is writing; use them where they exist, else the exact compositions below.
    for module in ("engine.ops_unary", "engine.ops_math", "engine.ops_binary"):
        try:
            op = getattr(importlib.import_module(module), name, None)
        except ImportError:
            continue
        if op is not None:
            return op
    return None


def abs_value(x) -> Node:
    """|x|: ops_math.abs when it exists, else relu(x) + relu(-x) (the same value and gradient,
    0 at 0 as TF's sign(0))."""
    op = _math_op("abs")
    if op is not None:
        return op(x)
    return ops_math.relu(x) + ops_math.relu(ops_math.negative(x))


def maximum_with(x, bound: float) -> Node:
    """max(x, bound) for a Python-number bound."""
    op = _math_op("maximum")
    if op is not None:
        return op(x, bound)
    return ops_math.relu(ops_math.subtract(x, bound)) + bound


def minimum_with(x, bound: float) -> Node:
    """min(x, bound) for a Python-number bound."""
    op = _math_op("minimum")
    if op is not None:
        return op(x, bound)
    return ops_math.subtract(x, ops_math.relu(ops_math.subtract(x, bound)))


def rsqrt(x) -> Node:
    """1 / sqrt(x)."""
    op = _math_op("rsqrt")
    if op is not None:
        return op(x)
    return ops_math.divide(1.0, ops_math.sqrt(x))
