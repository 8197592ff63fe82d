"""Shape ops: shape, size, rank, expand_dims, squeeze, stack, unstack, tile, split, pad, ...

`pad` and `reverse` live in `engine.ops_pad`, `split` and `unstack` in `engine.ops_split`,
`stack` in `engine.ops_stack`, `broadcast_to` in `engine.ops_scatter`; they reach TF-1's top
level through this module's `__all__`.
"""

from __future__ import annotations

import numpy as np

from engine.autodiff import NotDifferentiable, RegisterGradient
from engine.graph import Operation
from engine.ops_pad import pad, reverse
from engine.ops_scatter import broadcast_to
from engine.ops_split import split, unstack
from engine.ops_stack import int_vector, stack
from engine.shape_helpers import (
    format_shape,
    int_list,
    known_dtype,
    normalize_axis,
    static_shape_of,
)

__all__ = [
    "broadcast_to",
    "expand_dims",
    "pad",
    "rank",
    "reverse",
    "reverse_v2",
    "shape",
    "size",
    "split",
    "squeeze",
    "stack",
    "tile",
    "unstack",
]


reverse_v2 = reverse  # TF-1.15's alias


class Shape(Operation):
    """The run-time shape of the input as an integer vector."""

    op_type = "shape"

    def forward(self, xp, x):
        # np.shape reads .shape (numpy or CuPy) and takes Python scalars (shape ())
        return xp.asarray(np.shape(x), dtype=self.attrs["out_type"])

    def infer_shape(self, shape):
        return (shape.rank,)

    def infer_dtype(self, dtype):
        return np.dtype(self.attrs["out_type"])


class Size(Operation):
    """The run-time number of elements of the input, a scalar."""

    op_type = "size"

    def forward(self, xp, x):
        return xp.asarray(np.size(x), dtype=self.attrs["out_type"])

    def infer_shape(self, shape):
        return ()

    def infer_dtype(self, dtype):
        return np.dtype(self.attrs["out_type"])


class Rank(Operation):
    """The number of dimensions of the input, an int32 scalar."""

    op_type = "rank"

    def forward(self, xp, x):
        return xp.asarray(np.ndim(x), dtype=np.int32)

    def infer_shape(self, shape):
        return ()

    def infer_dtype(self, dtype):
        return np.dtype(np.int32)


for _op_type in ("shape", "size", "rank"):
    NotDifferentiable(_op_type)


def shape(input, name=None, out_type=np.int32):  # noqa: A002 - TF-1's keyword names
    """The shape of `input` as a 1-D int tensor, known at run time (TF-1's `tf.shape`)."""
    return Shape([input], name=name, out_type=np.dtype(out_type).name)


def size(input, name=None, out_type=np.int32):  # noqa: A002
    """The number of elements of `input`, a scalar."""
    return Size([input], name=name, out_type=np.dtype(out_type).name)


def rank(input, name=None):  # noqa: A002
    """The number of dimensions of `input`, an int32 scalar."""
    return Rank([input], name=name)


class ExpandDims(Operation):
    op_type = "expand_dims"

    def forward(self, xp, x):
        return xp.expand_dims(x, self.attrs["axis"])

    def infer_shape(self, shape):
        if shape.rank is None:
            return None
        dims = list(shape)
        axis = self.attrs["axis"]
        dims.insert(axis if axis >= 0 else len(dims) + 1 + axis, 1)
        return dims


class Squeeze(Operation):
    op_type = "squeeze"

    def forward(self, xp, x):
        axis = self.attrs["axis"]
        return xp.squeeze(x, axis=None if axis is None else tuple(axis))

    def infer_shape(self, shape):
        if shape.rank is None:
            return None
        axis = self.attrs["axis"]
        if axis is None:
            if any(d is None for d in shape):
                return None  # which unknown dims are 1 only a run can tell
            return [d for d in shape if d != 1]
        drop = {a % shape.rank for a in axis}
        return [d for i, d in enumerate(shape) if i not in drop]


@RegisterGradient("expand_dims")
@RegisterGradient("squeeze")
def _reshape_back_grad(op, g):
    return (g.reshape(np.shape(op.inputs[0])),)


def expand_dims(input, axis=None, name=None, dim=None):  # noqa: A002
    """`input` with a dimension of size 1 inserted at `axis` (-1: last)."""
    if dim is not None:
        if axis is not None:
            raise ValueError("expand_dims: cannot specify both 'axis' and 'dim'")
        axis = dim
    if axis is None:
        raise ValueError("expand_dims: 'axis' must be given")
    axis = int(np.asarray(axis).reshape(()))
    rank_ = static_shape_of(input).rank
    if rank_ is not None and not -rank_ - 1 <= axis <= rank_:
        raise ValueError(f"expand_dims: axis {axis} out of range for a tensor of rank {rank_}")
    return ExpandDims([input], name=name, axis=axis)


def squeeze(input, axis=None, name=None, squeeze_dims=None):  # noqa: A002
    """`input` without dimensions of size 1 (only those in `axis` when given)."""
    if squeeze_dims is not None:
        if axis is not None:
            raise ValueError("squeeze: cannot specify both 'axis' and 'squeeze_dims'")
        axis = squeeze_dims
    shape_ = static_shape_of(input)
    if axis is not None:
        axis = [axis] if np.ndim(axis) == 0 else int_list(axis, "squeeze: axis")
        for a in axis:
            a = normalize_axis(a, shape_.rank, "squeeze")
            if shape_.rank is not None and shape_[a] not in (None, 1):
                raise ValueError(
                    f"squeeze: Can not squeeze dim[{a}], expected a dimension of 1, got "
                    f"{shape_[a]} for {name or 'Squeeze'!r} with input shapes: "
                    f"{format_shape(shape_)}"
                )
    return Squeeze([input], name=name, axis=axis)


class Tile(Operation):
    """`input` repeated along each dimension; inputs (x,) with the multiples in the attr, or
    (x, multiples) when only a run can tell them (attr: the known entries, None elsewhere)."""

    op_type = "tile"

    def _reps(self, multiples) -> list[int]:
        if multiples is None:
            return self.attrs["multiples"]
        return [int(m) for m in multiples.tolist()]  # a device vector comes to the host once

    def forward(self, xp, x, multiples=None):
        return xp.tile(x, self._reps(multiples))

    def infer_shape(self, shape, multiples_shape=None):
        multiples = self.attrs["multiples"]
        if multiples is None:
            return None if shape.rank is None else [None] * shape.rank
        if shape.rank is None:
            return [None] * len(multiples)
        return [
            None if d is None or m is None else d * m for d, m in zip(shape, multiples, strict=True)
        ]

    def infer_dtype(self, dtype, multiples_dtype=None):
        return known_dtype(dtype)


@RegisterGradient("tile")
def _tile_grad(op, g):
    # g viewed as (m0, d0, m1, d1, ...): summing the m axes folds every copy back.
    x_shape = np.shape(op.inputs[0])
    multiples = op.op._reps(op.inputs[1] if len(op.inputs) > 1 else None)
    split_shape = [n for pair in zip(multiples, x_shape, strict=True) for n in pair]
    folded = g.reshape(split_shape).sum(axis=tuple(range(0, len(split_shape), 2)))
    return (folded.reshape(x_shape),) + (None,) * (len(op.inputs) - 1)


def tile(input, multiples, name=None):  # noqa: A002
    """`input` repeated `multiples[i]` times along dimension i (multiples may be a node, or a
    list holding scalar nodes such as `tf.shape(y)[0]`)."""
    known, multiples_node = int_vector(multiples, "tile: multiples")
    rank_ = static_shape_of(input).rank
    if known is not None and rank_ is not None and rank_ != len(known):
        raise ValueError(
            f"tile: Shape must be rank {rank_} for multiples, got {len(known)} multiples"
        )
    if known is not None and any(m is not None and m < 0 for m in known):
        raise ValueError(f"tile: multiples must be non-negative, got {known}")
    if multiples_node is None:
        return Tile([input], name=name, multiples=known)
    return Tile([input, multiples_node], name=name, multiples=known)
