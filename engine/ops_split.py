"""split and unstack: a list of pieces of a tensor, each its own op with a gradient.

Each piece reads its slice of the input (a view); its gradient writes into zeros of the
input's shape, and the pieces' gradients sum.
"""

from __future__ import annotations

from engine.autodiff import RegisterGradient
from engine.graph import Operation
from engine.ops_slice import strided_slice, strided_slice_attrs
from engine.shape_helpers import int_list, normalize_axis, static_shape_of

__all__ = ["split", "unstack"]


class Split(Operation):
    """Piece `index` of `value` split along `axis` into `num` equal parts or `sizes`."""

    op_type = "split"

    def _bounds(self, dim: int) -> tuple[int, int]:
        sizes, index = self.attrs["sizes"], self.attrs["index"]
        if sizes is None:
            num = self.attrs["num"]
            if dim % num:
                raise ValueError(f"split: dimension of size {dim} is not divisible by {num}")
            piece = dim // num
            return index * piece, (index + 1) * piece
        sizes = list(sizes)
        if -1 in sizes:
            sizes[sizes.index(-1)] = dim - (sum(sizes) + 1)
        if sum(sizes) != dim or min(sizes) < 0:
            raise ValueError(f"split: sizes {self.attrs['sizes']} do not add up to {dim}")
        start = sum(sizes[:index])
        return start, start + sizes[index]

    def _key(self, ndim: int, dim: int) -> tuple:
        axis = self.attrs["axis"] % ndim
        start, stop = self._bounds(dim)
        return (slice(None),) * axis + (slice(start, stop),)

    def forward(self, xp, x):
        return x[self._key(x.ndim, x.shape[self.attrs["axis"]])]

    def infer_shape(self, shape):
        if shape.rank is None:
            return None
        axis = self.attrs["axis"] % shape.rank
        dims = list(shape)
        sizes = self.attrs["sizes"]
        if sizes is not None and -1 not in sizes:
            dims[axis] = sizes[self.attrs["index"]]
        elif dims[axis] is not None:
            start, stop = self._bounds(dims[axis])
            dims[axis] = stop - start
        return dims


@RegisterGradient("split")
def _split_grad(op, g):
    x = op.inputs[0]
    full = op.xp.zeros(x.shape, dtype=g.dtype)
    full[op.op._key(x.ndim, x.shape[op.op.attrs["axis"]])] = g
    return (full,)


def split(value, num_or_size_splits, axis=0, num=None, name="split"):
    """A list of pieces of `value` along `axis`: `num_or_size_splits` equal parts (an int), or
    parts of the listed sizes (one may be -1: the rest)."""
    shape = static_shape_of(value)
    axis = normalize_axis(axis, shape.rank, "split")
    dim = None if shape.rank is None else shape[axis]
    if isinstance(num_or_size_splits, int) or getattr(num_or_size_splits, "ndim", 1) == 0:
        count = int(num_or_size_splits)
        if count <= 0:
            raise ValueError(f"split: the number of splits must be positive, got {count}")
        if dim is not None and dim % count:
            raise ValueError(f"split: dimension {axis} of size {dim} is not divisible by {count}")
        sizes = None
    else:
        sizes = int_list(num_or_size_splits, "split: num_or_size_splits")
        count = len(sizes) if num is None else int(num)
        if count != len(sizes):
            raise ValueError(f"split: num={num} but {len(sizes)} sizes were given")
        if sizes.count(-1) > 1:
            raise ValueError("split: at most one size may be -1")
        if dim is not None and -1 not in sizes and sum(sizes) != dim:
            raise ValueError(f"split: sizes {sizes} do not add up to dimension {axis} ({dim})")
    return [
        Split([value], name=name, axis=axis, num=count, sizes=sizes, index=i) for i in range(count)
    ]


def unstack(value, num=None, axis=0, name="unstack"):
    """The slices of `value` along `axis`, each without that dimension (a list of `num` nodes;
    `num` defaults to the static size of that dimension)."""
    shape = static_shape_of(value)
    axis = int(axis)
    if shape.rank is not None:
        axis = normalize_axis(axis, shape.rank, "unstack")
    if num is None:
        num = None if shape.rank is None else shape[axis]
        if num is None:
            raise ValueError(f"unstack: cannot infer num from shape {shape}; pass num=")
    head = (slice(None),) * axis if axis >= 0 else (Ellipsis,)
    tail = () if axis >= 0 else (slice(None),) * (-axis - 1)
    return [
        strided_slice(value, **strided_slice_attrs(head + (i,) + tail), name=name)
        for i in range(int(num))
    ]
