"""Indexing ops: argmax, argmin, where, one_hot, sequence_mask, unique; slicing and gathers.

`slice`, `strided_slice` and `newaxis` live in `engine.ops_slice`, `gather_nd`,
`boolean_mask` and `top_k` in `engine.ops_index_gather`, `where` and `where_v2` in
`engine.ops_select`, `sort` and `argsort` in `engine.ops_sort`, `scatter_nd` in
`engine.ops_scatter`; they reach TF-1's top level through this module's `__all__`.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from engine.autodiff import NotDifferentiable
from engine.graph import Constant, Node, Operation
from engine.ops_index_gather import boolean_mask, gather_nd, top_k
from engine.ops_scatter import scatter_nd
from engine.ops_select import where, where_v2
from engine.ops_slice import newaxis, slice, strided_slice
from engine.ops_slice_dynamic import StridedSliceDynamic  # noqa: F401 - registers its op type
from engine.ops_sort import argsort, sort
from engine.shape_helpers import (
    constant_value,
    format_shape,
    known_dtype,
    normalize_axis,
    static_int,
    static_shape_of,
)

__all__ = [
    "argmax",
    "argmin",
    "argsort",
    "boolean_mask",
    "gather_nd",
    "newaxis",
    "one_hot",
    "scatter_nd",
    "sequence_mask",
    "slice",
    "sort",
    "strided_slice",
    "top_k",
    "unique",
    "where",
    "where_v2",
]


class _ArgReduceShape:
    # A mixin, not an Operation: it must not register an op type of its own.
    def infer_shape(self, shape):
        if shape.rank is None:
            return None
        axis = self.attrs["axis"] % shape.rank
        return [d for i, d in enumerate(shape) if i != axis]

    def infer_dtype(self, dtype):
        return np.dtype(self.attrs["output_type"])


class ArgMax(_ArgReduceShape, Operation):
    op_type = "argmax"

    def forward(self, xp, x):
        return xp.argmax(x, axis=self.attrs["axis"]).astype(self.attrs["output_type"])


class ArgMin(_ArgReduceShape, Operation):
    op_type = "argmin"

    def forward(self, xp, x):
        return xp.argmin(x, axis=self.attrs["axis"]).astype(self.attrs["output_type"])


def _arg_reduce(cls, input, axis, name, dimension, output_type):  # noqa: A002
    if dimension is not None:
        if axis is not None:
            raise ValueError(f"{cls.op_type}: cannot specify both 'axis' and 'dimension'")
        axis = dimension
    axis = 0 if axis is None else int(constant_value(axis, f"{cls.op_type}: axis"))
    axis = normalize_axis(axis, static_shape_of(input).rank, cls.op_type)
    output_type = np.dtype(output_type)
    if output_type not in (np.int32, np.int64):
        raise TypeError(f"{cls.op_type}: output_type must be int32 or int64, got {output_type}")
    return cls([input], name=name, axis=axis, output_type=output_type.name)


def argmax(input, axis=None, name=None, dimension=None, output_type=np.int64):  # noqa: A002
    """The index of the largest entry along `axis` (default 0); ties: the first."""
    return _arg_reduce(ArgMax, input, axis, name, dimension, output_type)


def argmin(input, axis=None, name=None, dimension=None, output_type=np.int64):  # noqa: A002
    """The index of the smallest entry along `axis` (default 0); ties: the first."""
    return _arg_reduce(ArgMin, input, axis, name, dimension, output_type)


NotDifferentiable("argmax")
NotDifferentiable("argmin")


class OneHot(Operation):
    op_type = "one_hot"

    def forward(self, xp, indices):
        a = self.attrs
        indices = xp.asarray(indices)
        hot = indices[..., None] == xp.arange(a["depth"], dtype=indices.dtype)
        out = xp.where(hot, xp.asarray(a["on_value"]), xp.asarray(a["off_value"]))
        out = out.astype(a["dtype"], copy=False)
        return out if a["axis"] == -1 else xp.moveaxis(out, -1, a["axis"])

    def infer_shape(self, shape):
        if shape.rank is None:
            return None
        dims = list(shape)
        axis = self.attrs["axis"]
        dims.insert(len(dims) if axis == -1 else axis, self.attrs["depth"])
        return dims

    def infer_dtype(self, dtype):
        return np.dtype(self.attrs["dtype"])


NotDifferentiable("one_hot")


def _scalar_dtype(value) -> np.dtype:
    if isinstance(value, bool):
        return np.dtype(np.bool_)
    if isinstance(value, int):
        return np.dtype(np.int32)
    if isinstance(value, float):
        return np.dtype(np.float32)
    return np.asarray(value).dtype


def one_hot(
    indices, depth, on_value=None, off_value=None, axis=None, dtype=None, name=None
):  # fmt: skip
    """`on_value` where the new dimension's position equals the index, `off_value` elsewhere
    (an index outside [0, depth) gives a row of `off_value`); float32 1/0 by default."""
    depth = int(constant_value(depth, "one_hot: depth"))
    if depth < 0:
        raise ValueError(f"one_hot: depth must be non-negative, got {depth}")
    given = next((v for v in (on_value, off_value) if v is not None), None)
    if dtype is None:
        dtype = np.dtype(np.float32) if given is None else _scalar_dtype(_raw(given))
    dtype = np.dtype(dtype)
    on = 1 if on_value is None else _raw(on_value)
    off = 0 if off_value is None else _raw(off_value)
    rank_ = static_shape_of(indices).rank
    axis = -1 if axis is None else int(axis)
    if axis != -1:
        axis = normalize_axis(axis, None if rank_ is None else rank_ + 1, "one_hot")
    return OneHot(
        [indices], name=name, depth=depth, on_value=np.asarray(on).item(),
        off_value=np.asarray(off).item(), axis=axis, dtype=dtype.name,
    )  # fmt: skip


def _raw(value):
    if isinstance(value, Node) and not isinstance(value, Constant):
        raise TypeError(
            f"one_hot: on_value and off_value must be known when the graph is built, "
            f"got the node {value.name!r}"
        )
    return value.value if isinstance(value, Constant) else value


class SequenceMask(Operation):
    """lengths[..., None] > range(maxlen): inputs (lengths,) or (lengths, maxlen)."""

    op_type = "sequence_mask"

    def forward(self, xp, lengths, maxlen=None):
        lengths = xp.asarray(lengths)
        if maxlen is None:
            maxlen = self.attrs["maxlen"]
        if maxlen is None:
            maxlen = int(lengths.max()) if lengths.size else 0
        mask = xp.arange(int(maxlen)) < lengths[..., None]
        return mask.astype(self.attrs["dtype"], copy=False)

    def infer_shape(self, lengths, maxlen=None):
        if lengths.rank is None:
            return None
        return [*lengths, self.attrs["maxlen"]]

    def infer_dtype(self, *dtypes):
        return np.dtype(self.attrs["dtype"])


NotDifferentiable("sequence_mask")


def sequence_mask(lengths, maxlen=None, dtype=np.bool_, name=None):
    """mask[..., j] = j < lengths[...]: a mask of `maxlen` columns (default: max(lengths))."""
    dtype = np.dtype(dtype).name
    if isinstance(maxlen, Node) and not isinstance(maxlen, Constant):
        # The attr keeps what the graph tells of it (tf.shape(x)[1] of a known dim), for shapes.
        return SequenceMask([lengths, maxlen], name=name, maxlen=static_int(maxlen), dtype=dtype)
    if maxlen is not None:
        maxlen = int(constant_value(maxlen, "sequence_mask: maxlen"))
    return SequenceMask([lengths], name=name, maxlen=maxlen, dtype=dtype)


class UniqueValues(Operation):
    """The distinct entries of a vector in order of first appearance (with `which` "y"), or
    each entry's position among them (`which` "idx")."""

    op_type = "unique"

    def forward(self, xp, x):
        values, first, inverse = xp.unique(x, return_index=True, return_inverse=True)
        order = xp.argsort(first)
        if self.attrs["which"] == "y":
            return values[order]
        position = xp.empty_like(order)
        position[order] = xp.arange(order.size, dtype=order.dtype)
        return position[inverse.reshape(-1)].astype(self.attrs["out_idx"])

    def infer_shape(self, shape):
        return (None,) if self.attrs["which"] == "y" else shape

    def infer_dtype(self, dtype):
        if self.attrs["which"] == "idx":
            return np.dtype(self.attrs["out_idx"])
        return known_dtype(dtype)


NotDifferentiable("unique")

UniqueOutput = namedtuple("Unique", ["y", "idx"])


def unique(x, out_idx=np.int32, name=None):
    """(y, idx): the distinct entries of the vector `x` in order of first appearance, and
    for each entry of `x` its index in y (x == gather(y, idx))."""
    shape_ = static_shape_of(x)
    if shape_.rank is not None and shape_.rank != 1:
        raise ValueError(f"unique: x must be a vector, got shape {format_shape(shape_)}")
    out_idx = np.dtype(out_idx).name
    y = UniqueValues([x], name=name or "Unique", which="y", out_idx=out_idx)
    idx = UniqueValues([x], name=(name or "Unique") + "_idx", which="idx", out_idx=out_idx)
    return UniqueOutput(y, idx)
