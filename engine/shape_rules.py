"""Static shape/dtype rules shared by element-wise and reduction ops (mixins, not op classes).

They are plain mixins rather than `Operation` subclasses so that they never register an op
type of their own in `OP_TYPES`.
"""

from __future__ import annotations

import numpy as np

from engine.shapes import TensorShape, as_shape, broadcast_shape

__all__ = [
    "BoolOutput",
    "BroadcastShape",
    "FirstInputDtype",
    "SameShape",
    "attr_dtype",
    "binary_operands",
    "checked",
    "reduced_shape",
    "shape_argument",
]


class SameShape:
    """The output has the first input's static shape (unary element-wise ops)."""

    def infer_shape(self, *input_shapes):
        return as_shape(input_shapes[0])


class BroadcastShape:
    """The output has the numpy broadcast of every input's static shape."""

    def infer_shape(self, *input_shapes):
        out = as_shape(input_shapes[0])
        for shape in input_shapes[1:]:
            try:
                out = broadcast_shape(out, shape)
            except ValueError:
                raise ValueError(
                    f"{self.op_type} {self.name!r}: shapes {as_shape(input_shapes[0])} and "
                    f"{as_shape(shape)} are incompatible (they do not broadcast)"
                ) from None
        return out


class BoolOutput:
    """The output is boolean whatever the inputs (comparisons, logical ops)."""

    def infer_dtype(self, *input_dtypes):
        return np.dtype(np.bool_)


class FirstInputDtype:
    """The output keeps the first input's dtype (bounds / indices never promote it)."""

    def infer_dtype(self, *input_dtypes):
        return input_dtypes[0] if input_dtypes else None


def attr_dtype(op):
    """The op's `dtype` attr as a numpy dtype, or None."""
    dtype = op.attrs.get("dtype")
    return None if dtype is None else np.dtype(dtype)


def reduced_shape(shape, axis, keepdims: bool) -> TensorShape:
    """The static shape of reducing `shape` over `axis` (None: all axes)."""
    shape = as_shape(shape)
    if shape.rank is None:
        if axis is None and not keepdims:
            return TensorShape(())
        return TensorShape(None)
    rank = len(shape)
    if axis is None:
        axes = set(range(rank))
    else:
        raw = axis if isinstance(axis, (list, tuple)) else [axis]
        for a in raw:
            if not -rank <= a < max(rank, 1):
                raise ValueError(f"axis {a} is out of range for a tensor of shape {shape}")
        axes = {a % rank for a in raw} if rank else set()
    if keepdims:
        return TensorShape([1 if i in axes else d for i, d in enumerate(shape)])
    return TensorShape([d for i, d in enumerate(shape) if i not in axes])


def checked(op):
    """`op`, after its static shape rule ran on its inputs' shapes: a shape TF-1 rejects at
    graph-build time raises ValueError here (graph inference itself never raises)."""
    op.infer_shape(*[p.shape for p in op.input_nodes])
    return op


def shape_argument(shape):
    """A shape argument as (static dims, node): static dims is a list with an int where the
    value is known at build time and None where only a run tells; node is an int32 vector
    node holding the whole shape when some part is a node (`[-1, tf.shape(x)[1]]`,
    `tf.shape(x)`), else None."""
    from engine.graph import Constant, Node

    if isinstance(shape, Constant):
        shape = np.asarray(shape.value)
    if isinstance(shape, Node):
        static = as_shape(shape.shape)
        length = static[0] if static.rank == 1 else None
        return (None if length is None else [None] * length), shape
    items = list(np.reshape(np.asarray(shape, dtype=object), (-1,)))
    if not any(isinstance(d, Node) for d in items):
        return [int(d) for d in items], None
    from engine.ops_array import cast
    from engine.ops_shape import stack

    parts = [
        cast(d, np.int32) if isinstance(d, Node) else np.asarray(int(d), np.int32) for d in items
    ]
    static = [None if isinstance(d, Node) else int(d) for d in items]
    return static, stack(parts)


def binary_operands(x, y) -> list:
    """[x, y] with a non-node operand (a list, numpy array or numpy scalar) converted to the
    other operand's dtype, as TF-1 converts it (`x_float32 + [1, 2]` stays float32).
    Python numbers stay weakly typed; a float value is never truncated to an integer dtype."""
    from engine.graph import Node

    x_node, y_node = isinstance(x, Node), isinstance(y, Node)
    if x_node and not y_node:
        y = _to_dtype_of(y, x)
    elif y_node and not x_node:
        x = _to_dtype_of(x, y)
    return [x, y]


def _to_dtype_of(value, node):
    if type(value) in (bool, int, float):
        return value
    dtype = node.dtype
    if dtype is None:
        return value
    array = np.asarray(value)
    if array.dtype.kind not in "biuf" or dtype.kind not in "biuf":
        return value
    if array.dtype.kind == "f" and dtype.kind in "biu":
        return value  # TF refuses this; numpy's promotion keeps the values
    return array.astype(dtype)
