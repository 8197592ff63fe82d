"""Small helpers the shape, slicing and indexing ops share (static shapes, attr values)."""

from __future__ import annotations

import numpy as np

from engine.graph import Constant, Node
from engine.shapes import TensorShape, as_shape

__all__ = [
    "constant_value",
    "format_shape",
    "int_list",
    "known_dtype",
    "normalize_axis",
    "static_int",
    "static_shape_of",
]


def static_shape_of(value) -> TensorShape:
    """The static shape of a node, array or Python value (unknown rank when not told)."""
    if isinstance(value, Node):
        shape = getattr(value, "shape", None)
        return shape if isinstance(shape, TensorShape) else as_shape(shape)
    return TensorShape(np.shape(value))


def constant_value(value, what: str):
    """`value` as a numpy value when it is known at build time (a Constant node's value too);
    TypeError naming `what` for a node only a run can tell."""
    if isinstance(value, Constant):
        return np.asarray(value.value)
    if isinstance(value, Node):
        raise TypeError(
            f"{what} must be known when the graph is built (Python ints, a list or a constant), "
            f"got the node {value.name!r}"
        )
    return np.asarray(value)


def int_list(value, what: str) -> list[int]:
    """A build-time list of ints (a Python sequence, numpy array or Constant node)."""
    array = constant_value(value, what)
    return [int(v) for v in array.reshape(-1)]


def known_dtype(dtype):
    """`dtype` when it is a numpy dtype (not unknown, not a weak Python scalar's marker)."""
    return dtype if isinstance(dtype, np.dtype) else None


def normalize_axis(axis: int, rank: int | None, what: str) -> int:
    """`axis` in [0, rank) (negative counts from the end); ValueError when out of range."""
    axis = int(axis)
    if rank is None:
        return axis
    if not -rank <= axis < rank:
        raise ValueError(f"{what}: axis {axis} is out of range for a tensor of rank {rank}")
    return axis % rank if rank else axis


def format_shape(shape) -> str:
    """TF's way of writing a shape in messages: [2,?,3] (or <unknown>)."""
    shape = as_shape(shape)
    if shape.rank is None:
        return "<unknown>"
    return "[" + ",".join("?" if d is None else str(d) for d in shape) + "]"


def static_int(node) -> int | None:
    """A scalar node's value when the graph tells it without a run (None otherwise): a scalar
    constant, or one known dimension of a `tf.shape(x)[i]` (as TF-1's shape inference)."""
    if isinstance(node, Constant):
        value = np.asarray(node.value)
        return int(value) if value.ndim == 0 and value.dtype.kind in "iu" else None
    if getattr(node, "op_type", None) != "strided_slice":
        return None
    source = node.input_nodes[0]
    key = getattr(node, "key", ())
    if source.op_type != "shape" or len(key) != 1 or not isinstance(key[0], int):
        return None
    dims = static_shape_of(source.input_nodes[0])
    if dims.rank is None or not -dims.rank <= key[0] < dims.rank:
        return None
    return dims[key[0]]
