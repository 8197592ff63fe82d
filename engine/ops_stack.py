"""stack, and the packing of int vectors that mix ints with scalar nodes (TF-1's auto-pack).

`int_vector` is how ops taking a shape-like argument (tile's multiples, broadcast_to's shape)
accept `[tf.shape(y)[0], 1]` or `tf.shape(y)` as well as Python ints.
"""

from __future__ import annotations

import numpy as np

from engine.autodiff import RegisterGradient
from engine.graph import Constant, Node, Operation
from engine.shape_helpers import format_shape, int_list, static_int, static_shape_of
from engine.shapes import TensorShape

__all__ = ["int_vector", "stack"]


class Stack(Operation):
    op_type = "stack"

    def forward(self, xp, *values):
        return xp.stack([xp.asarray(v) for v in values], axis=self.attrs["axis"])

    def infer_shape(self, *shapes):
        merged = TensorShape(None)
        for s in shapes:
            merged = merged.merge_with(s)
        if merged.rank is None:
            return None
        dims = list(merged)
        axis = self.attrs["axis"]
        dims.insert(axis if axis >= 0 else len(dims) + 1 + axis, len(shapes))
        return dims


@RegisterGradient("stack")
def _stack_grad(op, g):
    axis = op.op.attrs["axis"]
    return tuple(op.xp.take(g, i, axis=axis) for i in range(len(op.inputs)))


def stack(values, axis=0, name="stack"):
    """The tensors `values` (all one shape) joined along a new dimension `axis`."""
    values = list(values)
    if not values:
        raise ValueError("stack: needs at least one value")
    shapes = [static_shape_of(v) for v in values]
    merged = TensorShape(None)
    for s in shapes:
        if not merged.is_compatible_with(s):
            raise ValueError(
                f"stack: Shapes must be equal rank and compatible, but are "
                f"{format_shape(merged)} and {format_shape(s)} for {name!r}"
            )
        merged = merged.merge_with(s)
    axis = int(axis)
    if merged.rank is not None and not -merged.rank - 1 <= axis <= merged.rank:
        raise ValueError(f"stack: axis {axis} out of range for values of rank {merged.rank}")
    return Stack(values, name=name, axis=axis)


def int_vector(value, what: str):
    """(entries known at build time, None where not; None when even the length is not known)
    and the node holding the vector when a run must tell it (else None).  A list mixing ints
    and scalar nodes is packed with `stack`, as TF-1 packs it."""
    if isinstance(value, (list, tuple)) and any(
        isinstance(v, Node) and not isinstance(v, Constant) for v in value
    ):
        known = [static_int(v) if isinstance(v, Node) else int(v) for v in value]
        return known, stack([v if isinstance(v, Node) else np.int32(v) for v in value])
    if isinstance(value, Node) and not isinstance(value, Constant):
        if value.op_type == "shape":  # tf.shape(y): y's static dims are what is known
            dims = static_shape_of(value.input_nodes[0])
            return (None if dims.rank is None else list(dims)), value
        shape_ = static_shape_of(value)
        length = shape_[0] if shape_.rank == 1 else None
        return (None if length is None else [None] * length), value
    return int_list(value, what), None
