"""Helpers shared by the tf.nn / tf.losses / tf.layers modules: what is known of a value's
shape and dtype before a run, and TF-1's labels-and-logits shape check."""

from __future__ import annotations

import numpy as np

from engine.graph import Node
from engine.shapes import TensorShape, as_shape

__all__ = [
    "check_same_shape",
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
